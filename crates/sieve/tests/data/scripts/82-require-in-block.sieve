# message: plain.eml
if true { require "fileinto"; }
