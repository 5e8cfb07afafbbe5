# message: plain.eml
require ["fileinto", "variables"];
set :lower :upperfirst "who" "aLICE";
set :length "n" "${who}";
set :quotewildcard "q" "a*b?";
if string :is "${who}-${n}" "Alice-5" { fileinto "${who}"; }
if string :is "${q}" "a\\*b\\?" { fileinto "Quoted"; }
