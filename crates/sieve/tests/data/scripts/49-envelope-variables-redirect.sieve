# message: plain.eml
require ["envelope", "variables", "copy"];
if envelope :matches "to" "*@*" { set "user" "${1}"; }
redirect :copy "${user}-archive@example.net";
