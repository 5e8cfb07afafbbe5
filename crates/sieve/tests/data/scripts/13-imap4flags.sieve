# message: plain.eml
require ["imap4flags", "fileinto"];
setflag "\\Seen";
addflag ["\\Flagged", "$Work"];
removeflag "\\Seen";
if hasflag :is "\\flagged" { fileinto "Flagged"; }
if hasflag :contains "$work" { keep; }
