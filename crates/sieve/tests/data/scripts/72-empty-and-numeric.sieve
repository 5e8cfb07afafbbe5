# message: utf8.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if header :is "x-empty" "" { fileinto "EmptyValue"; }
if exists "x-empty" { fileinto "EmptyExists"; }
if header :value "eq" :comparator "i;ascii-numeric" "x-number" "42" { fileinto "LeadingZeros"; }
if header :is :comparator "i;ascii-numeric" "x-empty" "" { fileinto "EmptyNumericEq"; }
