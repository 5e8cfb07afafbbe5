require ["include", "variables"];
global "folder";
if string :is "${folder}" "Main" { set "folder" "FromInclude"; return; }
set "folder" "Wrong";
