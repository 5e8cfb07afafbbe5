# message: plain.eml
require ["reject", "fileinto"];
fileinto "Saved";
reject "Too late";
