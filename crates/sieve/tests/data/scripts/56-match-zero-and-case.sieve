# message: plain.eml
require ["fileinto", "variables"];
if header :matches "subject" "meeting *" { set "all" "${0}"; set "rest" "${1}"; }
IF STRING :IS "${ALL}/${Rest}" "Meeting tomorrow/tomorrow" { FileInto "Upper"; }
