# message: plain.eml
require ["include"];
include :personal "to-work";
include :global "spam-rules";
include :once :personal "to-work";
