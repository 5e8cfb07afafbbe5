# message: plain.eml
require ["date", "fileinto", "relational", "comparator-i;ascii-numeric"];
if currentdate :value "ge" :comparator "i;ascii-numeric" "year" "2024" { fileinto "Recent"; }
if currentdate :zone "+0000" :value "lt" "year" "2000" { fileinto "Past"; }
