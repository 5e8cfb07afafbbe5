# message: plain.eml
require "reject";
reject text:   # the reason follows
Line one
.
;
