# message: plain.eml
redirect "carol@example.net";
redirect "carol@example.net";
redirect "dave@example.net";
