# message: subaddr.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if address :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "GroupHasNoAddress"; }
if address :is :domain "cc" "EXAMPLE.NET" { fileinto "DomainCaseless"; }
if address :is "from" "dave+lists@example.org" { fileinto "DisplayNameWithComma"; }
