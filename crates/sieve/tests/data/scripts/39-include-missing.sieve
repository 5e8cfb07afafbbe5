# message: plain.eml
require ["include"];
include :optional "not-there";
include "not-there-either";
