# message: utf8.eml
require ["date", "fileinto", "variables"];
if date :originalzone :matches "date" "zone" "*" { fileinto "Zone${1}"; }
if date :originalzone :matches "date" "iso8601" "*" { fileinto "Iso${1}"; }
