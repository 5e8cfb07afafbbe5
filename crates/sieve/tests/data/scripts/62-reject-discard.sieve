# message: spam.eml
require "reject";
reject "no";
discard;
