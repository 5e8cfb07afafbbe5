# message: spam.eml
require "fileinto";
if header :contains "from" "spam.example" {
  if size :over 10M { discard; }
  elsif header :contains "subject" "won" {
    if not exists "x-virus-score" { fileinto "A"; } else { fileinto "B"; }
  }
  else { fileinto "C"; }
} else {
  fileinto "D";
}
