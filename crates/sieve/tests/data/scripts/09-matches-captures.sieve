# message: subaddr.eml
require ["fileinto", "variables"];
if header :matches "subject" "* report" { fileinto "Reports.${1}"; }
if address :matches "from" "*+*@*" { fileinto "${2}-${3}"; }
