# message: plain.eml
require ["spamtestplus", "virustest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "SpamUntested"; }
if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "PercentUntested"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "VirusUntested"; }
