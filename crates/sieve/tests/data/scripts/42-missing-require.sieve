# message: plain.eml
fileinto "NoRequire";
