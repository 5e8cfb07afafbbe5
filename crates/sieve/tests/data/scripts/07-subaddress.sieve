# message: subaddr.eml
require ["fileinto", "subaddress"];
if address :user "to" "bob" { fileinto "User"; }
if address :detail "to" "work" { fileinto "Detail"; }
if address :detail "cc" "" { fileinto "NoDetail"; }
