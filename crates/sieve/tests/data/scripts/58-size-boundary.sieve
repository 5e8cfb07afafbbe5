# message: plain.eml
require "fileinto";
if size :over 234 { fileinto "Over234"; }
if size :under 236 { fileinto "Under236"; }
if size :over 1K { fileinto "Over1K"; }
