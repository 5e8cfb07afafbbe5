# message: plain.eml
require "include";
include "../etc/passwd";
