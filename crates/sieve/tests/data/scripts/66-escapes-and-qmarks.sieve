# message: plain.eml
require "fileinto";
if header :matches "subject" "???????*" { fileinto "SevenOrMore"; }
if header :matches "subject" "?????????????????" { fileinto "ExactlySixteen"; }
if header :is "subject" "Meeting\ tomorrow" { fileinto "UnknownEscapeDropped"; }
