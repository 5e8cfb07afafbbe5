# message: subaddr.eml
# from: dave@example.org
require "vacation";
vacation :addresses ["bob+work@example.com"] :from "bob@example.com" :handle "summer" "Back in September.";
