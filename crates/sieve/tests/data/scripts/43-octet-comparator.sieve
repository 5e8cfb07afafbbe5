# message: plain.eml
require "fileinto";
if header :contains :comparator "i;octet" "subject" "meeting" { fileinto "OctetLower"; }
if header :contains :comparator "i;octet" "subject" "Meeting" { fileinto "OctetExact"; }
