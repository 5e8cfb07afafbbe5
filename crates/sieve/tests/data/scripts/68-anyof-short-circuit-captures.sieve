# message: plain.eml
require ["fileinto", "variables"];
if anyof (header :matches "subject" "Meet*", header :matches "from" "*Example*") { fileinto "C-${1}"; }
if allof (header :matches "from" "Alice*", not header :matches "subject" "x*") { fileinto "D-${1}"; }
