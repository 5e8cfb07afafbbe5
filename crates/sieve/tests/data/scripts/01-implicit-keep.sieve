# message: plain.eml
# Nothing happens: the implicit keep files the message.
if header :is "subject" "no such subject" { discard; }
