# message: subaddr.eml
require ["fileinto", "variables"];
if header :matches "subject" "*r*" { fileinto "${1}|${2}"; }
if address :matches "cc" "*.*" { fileinto "${0}=${1}|${2}"; }
if header :matches "x-priority" "? (*)" { fileinto "P${1}-${2}"; }
