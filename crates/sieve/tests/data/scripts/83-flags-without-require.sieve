# message: plain.eml
keep :flags "\\Seen";
