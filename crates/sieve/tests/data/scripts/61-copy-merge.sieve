# message: plain.eml
require ["fileinto", "copy"];
fileinto :copy "Box";
fileinto "Box";
redirect :copy "x@example.net";
