# message: plain.eml
require "fileinto";
if address :all :contains "subject" "Meeting" { fileinto "AddressOnSubject"; }
