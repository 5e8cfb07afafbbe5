# message: plain.eml
require "fileinto";
if HEADER :CONTAINS :COMPARATOR "i;octet" "Subject" "Meeting" { FILEINTO "Upper"; }
