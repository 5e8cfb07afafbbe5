# message: plain.eml
require ["fileinto", "relational"];
if header :value "eq" "subject" "MEETING TOMORROW" { fileinto "EqCaseless"; }
if header :value "ne" :comparator "i;octet" "subject" "MEETING TOMORROW" { fileinto "NeOctet"; }
if header :value "le" "from" "alice" { fileinto "Never"; }
