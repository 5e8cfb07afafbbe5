# message: plain.eml
require ["fileinto", "imap4flags"];
fileinto :flags "first" "Twice";
fileinto :flags "second" "Twice";
fileinto "INBOX";
keep;
