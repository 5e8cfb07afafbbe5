//! Sieve end to end: scripts uploaded and activated over ManageSieve with Debian's
//! `sieve-connect` (a broken one refused with the compiler's words), then run at local
//! delivery: `fileinto` lands in the folder, a vacation reply reaches the sender's server
//! once, a redirect reaches a remote server, and a script that fails leaves the message
//! in the inbox. A reject is answered at DATA (swaks for a submission) when every
//! recipient rejects, and bounced when one of two does; virustest reads the checking
//! stage's verdict; `include :global` reads `[sieve] global_dir`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::dns::TestDns;
use common::mailbox::{listeners, maildir_files, subject_of};
use common::sink::Sink;
use common::{Options, TestServer, wait_until};

const PW: &str = "alice-sieve-password";

/// A server for alice (password `PW`) at example.com with a ManageSieve listener,
/// delivering mail for other domains to `sink` (MX from `dns`).
fn server(dns: &TestDns, sink: &Sink, extra: &str) -> TestServer {
    let hash = posthorn::accounts::passwords::hash(PW).unwrap();
    Options::default()
        .config(&format!(
            r#"
[delivery]
nameserver = "{}"
port = {}
connect_timeout = "2s"
command_timeout = "3s"

[queue]
retry_schedule = ["1s"]

[[listener]]
role = "mx"
address = "127.0.0.1:0"

[[listener]]
role = "sieve"
address = "127.0.0.1:0"

[[domain]]
name = "example.com"

[[account]]
name = "postmaster"

[[account]]
name = "alice"
password = "{hash}"

[[account]]
name = "bob"

[[listener]]
role = "submission"
address = "127.0.0.1:0"

{extra}"#,
            dns.addr,
            sink.addr.port()
        ))
        .start()
}

fn world() -> TestDns {
    TestDns::builder()
        .mx("far.test", 10, "mx.far.test")
        .a("mx.far.test", "127.0.0.1")
        .start()
}

/// Runs sieve-connect as alice with `args` (STARTTLS, our self-signed certificate).
fn sieve_connect(server: &TestServer, args: &[&str]) -> Output {
    sieve_connect_with(server, PW, args)
}

/// [`sieve_connect`] with `password`.
fn sieve_connect_with(server: &TestServer, password: &str, args: &[&str]) -> Output {
    let port = listeners(server, "sieve")[0].port().to_string();
    let mut child = Command::new("sieve-connect")
        .args(["--server", "127.0.0.1", "--port", &port, "--user", "alice"])
        .args(["--passwordfd", "0", "--notlsverify", "--nosrv"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sieve-connect must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn succeeded(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sieve-connect failed: {text}");
    text
}

/// Uploads `script` as `name` and makes it active.
fn activate(server: &TestServer, dir: &Path, name: &str, script: &str) {
    let file = dir.join(name);
    std::fs::write(&file, script).unwrap();
    let file = file.to_str().unwrap();
    succeeded(&sieve_connect(
        server,
        &["--upload", "--localsieve", file, "--remotesieve", name],
    ));
    succeeded(&sieve_connect(
        server,
        &["--activate", "--remotesieve", name],
    ));
}

/// Sends a message from `from` to alice as another server would.
fn send(server: &TestServer, from: &str, subject: &str, body: &str) {
    let reply = send_to(server, from, &["alice@example.com"], subject, body);
    assert!(reply.starts_with("250"), "{reply}");
}

/// Sends a message from `from` to `to` as another server would; the reply to DATA.
fn send_to(server: &TestServer, from: &str, to: &[&str], subject: &str, body: &str) -> String {
    let content = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: <{}@far.test>\r\n\r\n{body}\r\n",
        to.join(", "),
        subject.replace(' ', ".")
    );
    send_content(server, from, to, &content)
}

/// Sends `content` from `from` to `to` as another server would; the reply to DATA.
fn send_content(server: &TestServer, from: &str, to: &[&str], content: &str) -> String {
    let mut client = server.client();
    client.expect("EHLO mail.far.test", "250");
    client.send_message(from, to, content)
}

/// Waits for the message with `subject` in alice's `folder` ("INBOX" or a name).
fn wait_in(server: &TestServer, folder: &str, subject: &str) -> String {
    let dir = match folder {
        "INBOX" => server.maildir("alice"),
        name => server.maildir("alice").join(format!(".{name}")),
    };
    wait_until(&format!("{subject:?} in {folder}"), || {
        maildir_files(&dir)
            .into_iter()
            .find(|(_, content)| subject_of(content) == subject)
            .map(|(name, content)| format!("{name}\n{}", String::from_utf8_lossy(&content)))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

#[test]
fn managesieve_with_sieve_connect_lists_checks_downloads_and_refuses_broken_scripts() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let dir = tempfile::tempdir().unwrap();
    activate(
        &server,
        dir.path(),
        "rules",
        "require \"fileinto\";\nfileinto \"Lists\";\n",
    );
    let listed = succeeded(&sieve_connect(&server, &["--list"]));
    assert!(listed.contains("\"rules\" ACTIVE"), "{listed}");
    let back = dir.path().join("back");
    succeeded(&sieve_connect(
        &server,
        &[
            "--download",
            "--remotesieve",
            "rules",
            "--localsieve",
            back.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "require \"fileinto\";\nfileinto \"Lists\";\n"
    );
    // A script that does not compile is refused, with the line and what is wrong.
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "require \"fileinto\";\nfilein \"Lists\";\n").unwrap();
    let said = refused_upload(&server, &broken, "broken");
    assert!(said.contains("filein") && said.contains('2'), "{said}");
    let listed = succeeded(&sieve_connect(&server, &["--list"]));
    assert!(!listed.contains("broken"), "{listed}");
    // A wrong password is refused.
    assert!(
        !sieve_connect_with(&server, "wrong", &["--list"])
            .status
            .success()
    );
}

#[test]
fn fileinto_lands_in_its_folder_and_a_broken_script_keeps_in_the_inbox() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let dir = tempfile::tempdir().unwrap();
    activate(
        &server,
        dir.path(),
        "rules",
        "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\n\
         if header :contains \"subject\" \"report\" { fileinto :create :flags \"\\\\Flagged\" \"Reports\"; }\n\
         elsif address :domain \"from\" \"noise.test\" { discard; }\n",
    );
    send(&server, "boss@far.test", "weekly report", "numbers");
    let filed = wait_in(&server, "Reports", "weekly report");
    let name = filed.lines().next().unwrap();
    assert!(name.ends_with(":2,F"), "{name}");
    send(&server, "ads@noise.test", "noise", "buy");
    send(&server, "friend@far.test", "hello", "hi");
    wait_in(&server, "INBOX", "hello");
    let log = server.settled_log();
    assert!(
        log.contains("discarded by the recipient's Sieve script"),
        "{log}"
    );
    assert!(
        maildir_files(&server.maildir("alice"))
            .iter()
            .all(|(_, c)| subject_of(c) != "noise")
    );

    // A script that cannot run (too many redirects here) leaves mail in the inbox.
    std::fs::write(
        server.maildir("alice").join("sieve/rules.sieve"),
        "redirect \"a@far.test\"; redirect \"b@far.test\"; redirect \"c@far.test\";\n\
         redirect \"d@far.test\"; redirect \"e@far.test\";\n",
    )
    .unwrap();
    send(&server, "friend@far.test", "still here", "hi");
    wait_in(&server, "INBOX", "still here");
    assert!(
        server.log().contains("the Sieve script failed; keeping"),
        "{}",
        server.log()
    );
}

#[test]
fn a_vacation_reply_arrives_once_and_a_redirect_reaches_a_remote_server() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let dir = tempfile::tempdir().unwrap();
    activate(
        &server,
        dir.path(),
        "away",
        "require [\"vacation\", \"copy\"];\n\
         redirect :copy \"assistant@far.test\";\n\
         vacation :days 7 :subject \"Out of office\" \"I am away until Monday.\";\n",
    );
    send(&server, "bob@far.test", "question one", "hi");
    wait_in(&server, "INBOX", "question one");
    send(&server, "bob@far.test", "question two", "hi again");
    wait_in(&server, "INBOX", "question two");
    // Two redirected copies and one reply reach far.test's server.
    let messages = sink.wait_for_messages(3);
    server.wait_for_log("vacation reply queued");
    let replies: Vec<_> = messages
        .iter()
        .filter(|m| m.recipients() == ["bob@far.test"])
        .collect();
    assert_eq!(replies.len(), 1, "{}", sink.transcript());
    let reply = replies[0].text();
    assert_eq!(replies[0].sender(), "", "a reply goes from the null sender");
    assert!(reply.contains("Subject: Out of office"), "{reply}");
    assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
    assert!(
        reply.contains("In-Reply-To: <question.one@far.test>"),
        "{reply}"
    );
    assert!(reply.contains("I am away until Monday."), "{reply}");
    // Signed for alice's domain, so it passes DMARC where it lands.
    assert!(
        reply.contains("DKIM-Signature:") && reply.contains("d=example.com"),
        "{reply}"
    );
    let redirected: Vec<_> = messages
        .iter()
        .filter(|m| m.recipients() == ["assistant@far.test"])
        .collect();
    assert_eq!(redirected.len(), 2, "{}", sink.transcript());
    // From the original sender, rewritten for our domain (SRS) so far.test's SPF check
    // of the redirect passes.
    common::assert_rewritten(&redirected[0].sender(), "bob@far.test", "example.com");
    assert!(
        redirected[0].text().contains("Posthorn Sieve redirect"),
        "{}",
        redirected[0].text()
    );
    // A list message gets no reply (RFC 5230 §4.5).
    let content = "From: list@far.test\r\nTo: alice@example.com\r\nSubject: digest\r\n\
                   List-Id: <news.far.test>\r\n\r\nnews\r\n";
    let mut client = server.client();
    client.expect("EHLO mail.far.test", "250");
    client.send_message("list-bounces@far.test", &["alice@example.com"], content);
    wait_in(&server, "INBOX", "digest");
    sink.wait_for_messages(4);
    let settled = server.settled_log();
    assert_eq!(
        settled.matches("vacation reply queued").count(),
        1,
        "{settled}"
    );
}

const NO_OFFERS: &str = "require [\"reject\", \"ereject\"];\n\
    if header :contains \"subject\" \"offer\" { reject \"No offers,\r\n thanks.\"; }\n\
    if header :contains \"subject\" \"deal\" { ereject \"No deals.\"; }\n";

#[test]
fn a_reject_for_the_only_recipient_is_a_550_at_data_and_nothing_is_queued() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let dir = tempfile::tempdir().unwrap();
    activate(&server, dir.path(), "no", NO_OFFERS);
    // From another server, reject and ereject alike: the reason on one line.
    let reply = send_to(
        &server,
        "seller@far.test",
        &["alice@example.com"],
        "great offer",
        "buy",
    );
    assert_eq!(reply, "550 5.7.1 No offers, thanks.\r\n");
    let reply = send_to(
        &server,
        "seller@far.test",
        &["alice@example.com"],
        "a deal",
        "buy",
    );
    assert_eq!(reply, "550 5.7.1 No deals.\r\n");
    // From our own user through submission, to herself; the large one is in the spool
    // file before the end of DATA, and its start is read back for the script.
    let big = dir.path().join("big-body");
    std::fs::write(&big, "0123456789abcdef\r\n".repeat(20_000)).unwrap();
    for body in ["a small one", &format!("@{}", big.display())] {
        let output = Command::new("swaks")
            .args([
                "--server",
                &listeners(&server, "submission")[0].to_string(),
                "--tls",
            ])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                PW,
            ])
            .args(["--from", "alice@example.com", "--to", "alice@example.com"])
            .args([
                "--header",
                "Subject: my offer",
                "--body",
                body,
                "--timeout",
                "20",
            ])
            .output()
            .expect("swaks must be installed");
        let said = String::from_utf8_lossy(&output.stdout);
        // swaks marks an error reply read over TLS with `<~*`.
        assert!(!output.status.success(), "{said}");
        assert!(said.contains("<~* 550 5.7.1 No offers, thanks."), "{said}");
    }
    // Nothing was queued, so nothing is delivered or bounced.
    let log = server.settled_log();
    assert_eq!(log.matches("Sieve reject at DATA").count(), 4, "{log}");
    assert!(!log.contains("accepted queue_id="), "{log}");
    assert!(server.queued_messages().is_empty());
    assert!(sink.messages().is_empty(), "{}", sink.transcript());
    assert!(maildir_files(&server.maildir("alice")).is_empty());
}

#[test]
fn a_large_unchecked_message_is_shown_to_the_script_from_the_spool_file() {
    // Without checks or signatures nothing reads the whole message back: the script sees
    // the spool file's start at DATA (64 KiB), and up to `max_body_size` at delivery.
    let (dns, sink) = (world(), Sink::start());
    let server = server(
        &dns,
        &sink,
        "[checks]\nenabled = false\n\n[sieve]\nmax_body_size = \"1MiB\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    activate(
        &server,
        dir.path(),
        "body",
        "require [\"body\", \"reject\", \"fileinto\", \"mailbox\"];\n\
         if body :contains \"needle\" { reject \"Found it.\"; }\n\
         elsif body :contains \"pin\" { fileinto :create \"Pins\"; }\n",
    );
    let line = "0123456789abcdef\r\n";
    let body = format!("needle\r\n{}", line.repeat(20_000));
    let reply = send_to(&server, "a@far.test", &["alice@example.com"], "big", &body);
    assert_eq!(reply, "550 5.7.1 Found it.\r\n");
    // 360 KB in: past what DATA reads, within what delivery reads.
    let body = format!("{}pin\r\n", line.repeat(20_000));
    let reply = send_to(&server, "a@far.test", &["alice@example.com"], "far", &body);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    wait_in(&server, "Pins", "far");
    // 2 MB in: past what delivery reads.
    let body = format!("{}pin\r\n", line.repeat(120_000));
    let reply = send_to(
        &server,
        "a@far.test",
        &["alice@example.com"],
        "too far",
        &body,
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    wait_in(&server, "INBOX", "too far");
}

#[test]
fn a_reject_for_one_of_two_recipients_bounces_for_it_and_delivers_to_the_other() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let dir = tempfile::tempdir().unwrap();
    activate(&server, dir.path(), "no", NO_OFFERS);
    let both = ["alice@example.com", "bob@example.com"];
    for (n, (subject, reason)) in [("great offer", "No offers,"), ("a deal", "No deals.")]
        .into_iter()
        .enumerate()
    {
        // ereject falls back to a bounce: SMTP has no per-recipient reply to DATA.
        let reply = send_to(&server, "seller@far.test", &both, subject, "buy");
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        let copies = server.wait_for_messages("bob", n + 1);
        assert!(String::from_utf8_lossy(&copies[n]).contains(subject));
        let bounce = &sink.wait_for_messages(n + 1)[n];
        assert_eq!(bounce.sender(), "");
        assert_eq!(bounce.recipients(), ["seller@far.test"]);
        let text = bounce.text();
        assert_eq!(text.matches("Final-Recipient:").count(), 1, "{text}");
        assert!(
            text.contains("Final-Recipient: rfc822; alice@example.com"),
            "{text}"
        );
        assert!(
            text.contains("Status: 5.7.1") && text.contains(reason),
            "{text}"
        );
    }
    server.wait_for_empty_queue();
    let log = server.settled_log();
    // Decided at DATA: delivery never ran alice's script on these messages.
    assert_eq!(log.matches("Sieve reject at DATA").count(), 2, "{log}");
    assert_eq!(log.matches("accepted queue_id=").count(), 2, "{log}");
    assert!(
        !log.contains("rejected by the recipient's Sieve script"),
        "{log}"
    );
    assert!(maildir_files(&server.maildir("alice")).is_empty());
    assert_eq!(sink.messages().len(), 2, "{}", sink.transcript());
}

/// A message with an attachment named `name`.
fn with_attachment(subject: &str, name: &str) -> String {
    format!(
        "From: a@far.test\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{}@far.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThe file.\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\naGVsbG8K\r\n--b1--\r\n",
        subject.replace(' ', ".")
    )
}

#[test]
fn virustest_reads_the_checks_verdict_at_data_and_at_delivery() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let dir = tempfile::tempdir().unwrap();
    activate(
        &server,
        dir.path(),
        "virus",
        "require [\"virustest\", \"reject\", \"fileinto\", \"mailbox\", \"relational\",\n\
                  \"comparator-i;ascii-numeric\"];\n\
         if virustest :value \"ge\" :comparator \"i;ascii-numeric\" \"4\" { reject \"No programs, please.\"; }\n\
         elsif virustest :value \"eq\" :comparator \"i;ascii-numeric\" \"1\" { fileinto :create \"Scanned\"; }\n",
    );
    // An executable's name: possibly a virus (4), refused at DATA.
    let reply = send_content(
        &server,
        "a@far.test",
        &["alice@example.com"],
        &with_attachment("a program", "setup.exe"),
    );
    assert_eq!(reply, "550 5.7.1 No programs, please.\r\n");
    // A harmless file: scanned and clean (1), filed at delivery.
    let reply = send_content(
        &server,
        "a@far.test",
        &["alice@example.com"],
        &with_attachment("notes", "notes.txt"),
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let filed = wait_in(&server, "Scanned", "notes");
    assert!(
        filed.contains("\r\nX-Spam-Virus: No, virustest=1\r\n"),
        "{filed}"
    );
}

#[test]
fn include_global_runs_at_delivery_and_uploads_must_name_existing_global_scripts() {
    let (dns, sink) = (world(), Sink::start());
    let global = tempfile::tempdir().unwrap();
    std::fs::write(
        global.path().join("sorting.sieve"),
        "require [\"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"news\" { fileinto :create \"Global\"; stop; }\n",
    )
    .unwrap();
    let server = server(
        &dns,
        &sink,
        &format!("[sieve]\nglobal_dir = \"{}\"\n", global.path().display()),
    );
    let dir = tempfile::tempdir().unwrap();
    activate(
        &server,
        dir.path(),
        "main",
        "require \"include\";\ninclude :global \"sorting\";\ninclude :global :optional \"absent\";\n",
    );
    send(&server, "paper@far.test", "daily news", "headlines");
    wait_in(&server, "Global", "daily news");
    send(&server, "friend@far.test", "hello", "hi");
    wait_in(&server, "INBOX", "hello");
    // An upload naming a global script that is not there, or not a name, is refused.
    for name in ["absent", "../sorting"] {
        let file = dir.path().join("bad");
        std::fs::write(
            &file,
            format!("require \"include\";\ninclude :global \"{name}\";\n"),
        )
        .unwrap();
        let said = refused_upload(&server, &file, "bad");
        assert!(said.contains("no global script"), "{said}");
    }
}

/// Reads ManageSieve response lines up to the one starting with OK, NO or BYE.
fn until_status(reader: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "closed after {all:?}"
        );
        all.push_str(&line);
        if ["OK", "NO", "BYE"].iter().any(|s| line.starts_with(s)) {
            return all;
        }
    }
}

#[test]
fn before_login_a_big_literal_is_read_but_not_kept() {
    let (dns, sink) = (world(), Sink::start());
    let server = server(&dns, &sink, "");
    let stream = TcpStream::connect(listeners(&server, "sieve")[0]).unwrap();
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    assert!(until_status(&mut reader).starts_with("\"IMPLEMENTATION\""));
    // 20 000 octets: over the 8 KiB an unauthenticated client may make us hold.
    let script = "#".repeat(20_000);
    write!(
        writer,
        "PUTSCRIPT \"x\" {{{}+}}\r\n{script}\r\n",
        script.len()
    )
    .unwrap();
    let refused = until_status(&mut reader);
    assert!(refused.starts_with("NO (QUOTA/MAXSIZE)"), "{refused}");
    // Every octet was read: the next command is understood.
    writer.write_all(b"NOOP\r\n").unwrap();
    let noop = until_status(&mut reader);
    assert!(noop.starts_with("OK"), "{noop}");
}

/// Uploads the script in `file` as `name` with sieve-connect, which must fail; returns
/// what it said (the server's reason among it).
fn refused_upload(server: &TestServer, file: &std::path::Path, name: &str) -> String {
    let refused = sieve_connect(
        server,
        &[
            "--upload",
            "--localsieve",
            file.to_str().unwrap(),
            "--remotesieve",
            name,
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{said}");
    said
}
