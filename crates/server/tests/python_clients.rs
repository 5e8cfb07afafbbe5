//! Python's standard smtplib against the real server: `sendmail` (DATA) and, through its
//! low-level calls, CHUNKING (BDAT), which lettre and swaks do not speak.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use common::TestServer;

/// Runs `script` with `HOST` and `PORT` set; returns its stdout, failing on error.
fn python(server: &TestServer, script: &str) -> String {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("HOST", server.addr.ip().to_string())
        .env("PORT", server.addr.port().to_string())
        .output()
        .expect("python3 must be installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python failed:\n{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn smtplib_sendmail_delivers() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import os, smtplib
with smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"])) as s:
    refused = s.sendmail("py@example.com", ["postmaster@localhost"],
                         "Subject: from smtplib\r\n\r\nHello.\r\n..dot\r\n")
    print("refused", refused)
    code, text = s.noop()
    print("noop", code)
"#,
    );
    assert!(out.contains("refused {}"), "{out}");
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(messages[0].ends_with(b"Subject: from smtplib\r\n\r\nHello.\r\n..dot\r\n"));
}

#[test]
fn smtplib_bdat_chunks_deliver_binary_exact_content() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import os, smtplib
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.ehlo("py.example")
assert s.has_extn("chunking"), s.esmtp_features
print("mail", s.mail("py@example.com", ["BODY=8BITMIME"])[0])
print("rcpt", s.rcpt("postmaster@localhost")[0])
chunks = [b"Subject: bdat\r\n\r\n", b".line starting with a dot\r\n\xc3\xa9\xc3\xa8\r\n", b"end\r\n"]
for i, chunk in enumerate(chunks):
    last = " LAST" if i == len(chunks) - 1 else ""
    s.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
    code, text = s.getreply()
    print("bdat", code, text.decode())
s.quit()
"#,
    );
    assert!(
        out.contains("mail 250") && out.contains("rcpt 250"),
        "{out}"
    );
    assert_eq!(out.matches("bdat 250").count(), 3, "{out}");
    assert!(out.contains("OK queued as"), "{out}");
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(messages[0].ends_with(
        b"Subject: bdat\r\n\r\n.line starting with a dot\r\n\xc3\xa9\xc3\xa8\r\nend\r\n"
    ));
}

#[test]
fn smtplib_sees_the_advertised_extensions() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import os, smtplib
with smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"])) as s:
    s.ehlo("py.example")
    print(sorted(s.esmtp_features))
    print("size", s.esmtp_features["size"])
    print("vrfy", s.verify("postmaster")[0])
    print("expn", s.expn("staff")[0])
"#,
    );
    for extension in [
        "8bitmime",
        "chunking",
        "dsn",
        "enhancedstatuscodes",
        "pipelining",
        "smtputf8",
    ] {
        assert!(
            out.contains(&format!("'{extension}'")),
            "{extension} missing: {out}"
        );
    }
    assert!(out.contains("size 52428800"), "{out}");
    assert!(
        out.contains("vrfy 252") && out.contains("expn 502"),
        "{out}"
    );
}
