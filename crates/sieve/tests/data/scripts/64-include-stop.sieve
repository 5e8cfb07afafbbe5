# message: plain.eml
require ["include", "fileinto"];
include :global "stop-here";
fileinto "AfterInclude";
