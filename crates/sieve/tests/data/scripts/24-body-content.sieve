# message: mime.eml
require ["body", "fileinto"];
if body :content "text/html" :contains "<b>invoice</b>" { fileinto "Html"; }
if body :content "text/plain" :contains "<b>" { fileinto "NotInPlain"; }
