# message: list.eml
require ["fileinto", "imap4flags", "variables", "mailbox"];
if header :matches "list-id" "*<*>*" { set :lower "list" "${2}"; }
set "flag" "$List";
fileinto :create :flags "${flag} \\Seen" "Lists/${list}";
