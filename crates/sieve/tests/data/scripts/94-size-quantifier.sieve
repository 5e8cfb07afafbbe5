# message: mime.eml
require "fileinto";
if size :under 1k { fileinto "UnderOneKLower"; }
if size :over 1K { fileinto "Over1K"; }
