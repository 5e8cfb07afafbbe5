# message: list.eml
require ["fileinto", "variables"];
if header :matches "list-id" "*<?*.*>" { fileinto "L.${2}${3}"; }
if header :matches "subject" "\\[*\\]*" { fileinto "Bracket.${1}"; }
if header :matches "subject" "[announce] New release" { fileinto "NoEscapeNeededForBrackets"; }
