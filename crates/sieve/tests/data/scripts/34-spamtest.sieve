# message: spam.eml
require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric", "variables"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "5" { fileinto "Junk"; }
if spamtest :matches "*" { fileinto "Score${1}"; }
