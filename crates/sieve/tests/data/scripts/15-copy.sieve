# message: plain.eml
require ["copy", "fileinto"];
redirect :copy "archive@example.net";
fileinto :copy "Copies";
