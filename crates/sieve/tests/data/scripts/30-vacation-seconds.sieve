# message: plain.eml
require "vacation-seconds";
vacation :seconds 172800 "Two days";
