# message: plain.eml
# from: MAILER-DAEMON@example.org
require "vacation";
vacation "Away";
