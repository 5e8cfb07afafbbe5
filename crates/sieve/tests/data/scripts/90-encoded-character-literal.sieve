# message: plain.eml
require "fileinto";
fileinto "Box${hex:41}";
