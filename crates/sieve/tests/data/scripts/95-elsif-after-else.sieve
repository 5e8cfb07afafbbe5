# message: plain.eml
if false { discard; } else { keep; } elsif true { discard; }
