# message: plain.eml
require ["include", "variables", "fileinto"];
global "folder";
set "folder" "Main";
include "set-folder";
fileinto "${folder}";
