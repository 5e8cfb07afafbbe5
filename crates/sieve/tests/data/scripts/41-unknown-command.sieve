# message: plain.eml
require "fileinto";
filein "Typo";
