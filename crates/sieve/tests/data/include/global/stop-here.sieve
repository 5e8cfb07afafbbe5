require "fileinto";
fileinto "InGlobal";
stop;
