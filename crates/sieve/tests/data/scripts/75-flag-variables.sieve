# message: plain.eml
require ["imap4flags", "variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
set "mine" "";
addflag "mine" ["\\Seen", "Custom"];
removeflag "mine" "\\seen";
if hasflag "mine" "custom" { fileinto "HasCustom"; }
if hasflag :count "eq" :comparator "i;ascii-numeric" ["mine", "none"] "1" { fileinto "CountOne"; }
fileinto :flags "${mine}" "WithVar";
