# message: subaddr.eml
require "fileinto";
if address :domain :is "cc" "example.net" { fileinto "NetDomain"; }
if address :localpart :is "from" "dave+lists" { fileinto "LocalPart"; }
if address :all :is "to" "BOB+WORK@example.com" { fileinto "AllCaseless"; }
if address :all :comparator "i;octet" :is "cc" "eve@example.net" { fileinto "NotOctet"; }
