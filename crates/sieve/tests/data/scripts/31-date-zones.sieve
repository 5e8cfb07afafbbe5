# message: plain.eml
require ["date", "fileinto", "variables"];
if date :originalzone "date" "hour" "16" { fileinto "OrigHour16"; }
if date :zone "+0900" :matches "date" "iso8601" "*" { fileinto "Tokyo.${1}"; }
if date :zone "-0500" "date" "date" "2010-03-13" { fileinto "NewYorkDate"; }
if date "date" "time" "15:59:07" { fileinto "LocalUTC"; }
