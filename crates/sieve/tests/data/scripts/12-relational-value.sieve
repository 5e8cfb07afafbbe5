# message: subaddr.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto "High"; }
if header :value "gt" "subject" "P" { fileinto "AfterP"; }
if header :value "ge" :comparator "i;ascii-numeric" "subject" "999" { fileinto "NonNumericIsInfinite"; }
