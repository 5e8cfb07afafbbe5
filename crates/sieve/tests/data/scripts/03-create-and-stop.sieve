# message: plain.eml
require ["fileinto", "mailbox"];
fileinto :create "Archive/2010";
stop;
fileinto "Never";
