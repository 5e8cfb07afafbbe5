# message: spam.eml
require ["virustest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if virustest :value "ge" :comparator "i;ascii-numeric" "3" { fileinto "Quarantine"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "Unscanned"; }
