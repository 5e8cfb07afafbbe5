# message: plain.eml
require "fileinto";
fileinto "inbox";
keep;
fileinto "Inbox";
