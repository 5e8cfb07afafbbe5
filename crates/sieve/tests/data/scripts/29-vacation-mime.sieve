# message: plain.eml
require "vacation";
vacation :mime :days 100 text:
Content-Type: text/plain; charset=utf-8

..Away (dot-stuffed line)
.
;
