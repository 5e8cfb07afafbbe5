# message: subaddr.eml
require ["date", "fileinto", "variables", "relational"];
if date :originalzone :matches "date" "weekday" "*" { set "wd" "${1}"; }
if date :matches "date" "julian" "*" { set "j" "${1}"; }
if date :matches "date" "std11" "*" { set "s" "${1}"; }
if date :zone "+0000" :value "ge" "date" "zone" "+0000" { fileinto "D${wd}-${j}"; }
if string :is "${s}" "Wed, 02 Feb 2022 04:30:00 +0000" { fileinto "Std11"; }
