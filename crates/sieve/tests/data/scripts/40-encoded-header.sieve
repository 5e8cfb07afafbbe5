# message: encoded.eml
require ["fileinto", "variables"];
if header :is "subject" "Grüße aus Berlin" { fileinto "Decoded"; }
if header :matches "from" "* <*>" { fileinto "${1}"; }
