# message: autoreply.eml
require "vacation";
vacation "I am away.";
