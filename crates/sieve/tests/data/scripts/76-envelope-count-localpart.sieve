# message: plain.eml
require ["envelope", "fileinto", "relational", "comparator-i;ascii-numeric"];
if envelope :localpart :is "to" "bob" { fileinto "ToLocal"; }
if envelope :count "eq" :comparator "i;ascii-numeric" ["from", "to"] "2" { fileinto "TwoParts"; }
