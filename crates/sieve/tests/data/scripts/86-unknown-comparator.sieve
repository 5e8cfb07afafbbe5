# message: plain.eml
if header :comparator "i;unicode-casemap" "subject" "a" { discard; }
