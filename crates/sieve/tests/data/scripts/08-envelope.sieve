# message: plain.eml
# from: alice+x@example.org
require ["envelope", "fileinto", "subaddress"];
if envelope :domain :is "from" "example.org" { fileinto "EnvDomain"; }
if envelope :all :is "to" "bob@example.com" { fileinto "EnvTo"; }
if envelope :detail "from" "x" { fileinto "EnvDetail"; }
