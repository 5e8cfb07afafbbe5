# message: utf8.eml
require ["fileinto", "subaddress"];
if address :localpart "sender" "list-bounces" { fileinto "Sender"; }
if address :domain "reply-to" "example.org" { fileinto "ReplyTo"; }
if address :user "sender" "list-bounces" { fileinto "UserNoSeparator"; }
if address :detail "sender" "" { fileinto "NeverDetail"; }
