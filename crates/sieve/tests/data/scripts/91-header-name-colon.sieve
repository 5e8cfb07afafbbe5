# message: plain.eml
if header :is "Subject:" "x" { discard; }
