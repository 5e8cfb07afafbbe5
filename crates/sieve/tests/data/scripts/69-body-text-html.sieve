# message: mime.eml
require ["body", "fileinto"];
if body :text :contains "<b>invoice</b>" { fileinto "HtmlTagsInText"; }
if body :text :contains "Please find the invoice attached." { fileinto "PlainSentence"; }
if body :content "multipart" :contains "multi-part message" { fileinto "Preamble"; }
