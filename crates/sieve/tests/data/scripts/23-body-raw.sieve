# message: mime.eml
require ["body", "fileinto"];
if body :raw :contains "U2VjcmV0UGF5bG9hZA==" { fileinto "RawSeen"; }
if body :raw :contains "due =" { fileinto "RawQP"; }
