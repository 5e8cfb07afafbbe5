# message: plain.eml
if not (true, false) { discard; }
