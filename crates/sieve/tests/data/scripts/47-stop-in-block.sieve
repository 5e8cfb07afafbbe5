# message: ham.eml
require "fileinto";
if header :contains "subject" "lunch" { fileinto "Food"; stop; }
fileinto "NotReached";
