# message: utf8.eml
require ["fileinto", "variables"];
if header :matches "subject" "?nïcödé*" { fileinto "Unicode"; }
if header :contains "subject" "ÜNÏCÖDÉ" { fileinto "CasemapIsAsciiOnly"; }
if header :contains "subject" "back\\slash" { fileinto "Backslash"; }
if header :matches "subject" "*\\\\*" { fileinto "EscapedBackslash${2}"; }
set :length "len" "Zoë";
fileinto "Len${len}";
