# message: plain.eml
require "envelope";
if envelope "sender" "x" { discard; }
