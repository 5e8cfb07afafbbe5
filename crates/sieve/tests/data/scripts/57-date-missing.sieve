# message: plain.eml
require ["date", "fileinto", "relational"];
if date :value "ge" "x-missing" "year" "0000" { fileinto "Never"; }
if date :is "message-id" "year" "2010" { fileinto "NotADate"; }
if date :count "eq" "date" "year" "1" { fileinto "CountOne"; }
