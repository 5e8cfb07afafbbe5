# message: encoded.eml
require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric", "variables"];
if spamtest :percent :value "lt" :comparator "i;ascii-numeric" "10" { fileinto "Clean"; }
if spamtest :percent :matches "*" { fileinto "Pct${1}"; }
