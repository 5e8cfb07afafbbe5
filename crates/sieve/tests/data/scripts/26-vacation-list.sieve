# message: list.eml
require "vacation";
vacation "I am away.";
