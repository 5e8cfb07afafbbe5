# message: plain.eml
require "fileinto";
if header :contains "subject" "MEETING" { fileinto "Meetings"; }
