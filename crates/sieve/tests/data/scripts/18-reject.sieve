# message: spam.eml
require "reject";
if header :contains "subject" "won" { reject "No lotteries, thank you."; }
