# message: mime.eml
require ["body", "fileinto"];
if body :text :contains "due within 30 days" { fileinto "Invoices"; }
if body :contains "SecretPayload" { fileinto "NeverDecodedAttachment"; }
