# message: subaddr.eml
require "fileinto";
if header :is ["x-none", "X-Priority"] "1 (Highest)" { fileinto "Trimmed"; }
if header :contains "to" "undisclosed" { fileinto "Group"; }
if header :contains "subject" "" { fileinto "EmptyKey"; }
if header :contains "x-none" "" { fileinto "NoHeaderNoMatch"; }
