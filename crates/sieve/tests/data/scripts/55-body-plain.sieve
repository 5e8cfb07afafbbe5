# message: plain.eml
require ["body", "fileinto"];
if body :contains "agenda is attached" { fileinto "Agenda"; }
if body :raw :matches "*Alice*" { fileinto "RawMatches"; }
if body :content "" :contains "meet tomorrow" { fileinto "AnyContent"; }
