# message: plain.eml
require ["imap4flags", "fileinto"];
addflag "\\Answered";
fileinto :flags ["\\Seen", "\\Deleted \\Seen"] "Read";
fileinto "Unread";
