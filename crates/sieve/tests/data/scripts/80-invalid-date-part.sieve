# message: plain.eml
require ["date", "fileinto"];
if date "date" "fortnight" "1" { fileinto "Never"; }
