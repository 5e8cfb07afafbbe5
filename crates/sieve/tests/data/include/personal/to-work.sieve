require "fileinto";
fileinto "Work";
