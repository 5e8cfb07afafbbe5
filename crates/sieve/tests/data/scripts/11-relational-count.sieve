# message: subaddr.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "Many"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto "TwoPriorities"; }
if header :count "gt" :comparator "i;ascii-numeric" "x-none" "0" { fileinto "Never"; }
