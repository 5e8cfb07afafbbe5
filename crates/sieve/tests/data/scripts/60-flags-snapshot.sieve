# message: plain.eml
require ["fileinto", "imap4flags"];
addflag "one";
fileinto "First";
addflag "two";
fileinto "Second";
removeflag ["one", "two"];
