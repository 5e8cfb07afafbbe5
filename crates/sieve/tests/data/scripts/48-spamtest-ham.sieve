# message: ham.eml
require ["spamtest", "virustest", "fileinto", "relational", "comparator-i;ascii-numeric", "variables"];
if spamtest :matches "*" { set "s" "${1}"; }
if virustest :matches "*" { set "v" "${1}"; }
fileinto "S${s}V${v}";
