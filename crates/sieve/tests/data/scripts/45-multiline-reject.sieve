# message: spam.eml
require "reject";
reject text:
Your message was refused.
It looked like a lottery.
.
;
