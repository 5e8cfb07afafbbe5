# message: plain.eml
require "fileinto";
if size :over 100K { fileinto "Big"; }
elsif size :under 10 { fileinto "Tiny"; }
elsif size :over 200 { fileinto "Medium"; }
else { fileinto "Small"; }
