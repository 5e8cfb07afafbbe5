# message: plain.eml
require ["date", "fileinto"];
if date :zone "garbage" "date" "year" "2010" { fileinto "GarbageZone"; }
