//! Receiving mail for local users: real clients against the real server, checked in the
//! Maildir. Plain exchanges of commands and replies (BDAT chunks, SMTPUTF8 addresses) are
//! scripts in `tests/data/dialogs/`, played by `dialogs.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use common::{Client, Options, TestServer, queue_id, split_message};

use lettre::message::header::ContentType;
use lettre::{Message, SmtpTransport, Transport};

fn lettre_transport(server: &TestServer) -> SmtpTransport {
    SmtpTransport::builder_dangerous(server.addr.ip().to_string())
        .port(server.addr.port())
        .build()
}

#[test]
fn lettre_message_lands_in_maildir_with_trace_headers() {
    let server = TestServer::start();
    let email = Message::builder()
        .from("Alice <alice@example.com>".parse().unwrap())
        .to("postmaster@localhost".parse().unwrap())
        .subject("Hello from lettre")
        .header(ContentType::TEXT_PLAIN)
        .body("First line\r\n.leading dot\r\nLast line, 8-bit: \u{e9}t\u{e9}\r\n".to_string())
        .unwrap();
    let sent = email.formatted();
    let response = lettre_transport(&server).send(&email).unwrap();
    assert_eq!(response.code().to_string(), "250");
    let text = response.message().collect::<Vec<_>>().join(" ");
    let id = text.rsplit(' ').next().unwrap().to_string();

    let messages = server.wait_for_messages("postmaster", 1);
    let delivered = &messages[0];
    // lettre ends DATA with "\r\n.\r\n" after the content, so that CRLF is content too.
    let wire = [sent.as_slice(), b"\r\n"].concat();
    assert!(
        delivered.ends_with(&wire),
        "content must arrive byte for byte"
    );
    let trace = common::without_verdict(&String::from_utf8_lossy(
        &delivered[..delivered.len() - wire.len()],
    ));
    assert!(trace.starts_with("Return-Path: <alice@example.com>\r\nDelivered-To: postmaster@localhost\r\nReceived: from "), "{trace}");
    assert!(
        trace.contains(&format!("by mx.test (Posthorn) with ESMTP id {id}")),
        "{trace}"
    );
    assert!(trace.contains("for <postmaster@localhost>;"), "{trace}");
    assert_eq!(
        trace.matches("\r\n").count(),
        6,
        "exactly our three headers: {trace}"
    );
    server.wait_for_empty_queue();
}

#[test]
fn pipelined_transaction_in_one_write() {
    let server = TestServer::start();
    let mut client = server.client();
    client.send(
        "EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<postmaster@localhost>\r\n\
         RCPT TO:<nobody@localhost>\r\nDATA\r\n",
    );
    assert!(client.reply().starts_with("250-mx.test"));
    assert!(client.reply().starts_with("250 2.1.0"));
    assert!(client.reply().starts_with("250 2.1.5"));
    assert!(client.reply().starts_with("550 5.1.1"));
    assert!(client.reply().starts_with("354"));
    client.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    let queued = client.reply();
    assert!(queued.starts_with("250 2.0.0 OK queued as "), "{queued}");
    assert!(client.reply().starts_with("221"));
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(messages[0].ends_with(b"Subject: pipelined\r\n\r\nbody\r\n"));
    assert!(String::from_utf8_lossy(&messages[0]).contains(&queue_id(&queued)));
}

#[test]
fn swaks_with_pipelining_is_accepted() {
    let server = TestServer::start();
    let output = std::process::Command::new("swaks")
        .args([
            "--server",
            &server.addr.to_string(),
            "--to",
            "postmaster@localhost",
        ])
        .args([
            "--from",
            "sender@example.com",
            "--pipeline",
            "--header",
            "Subject: swaks",
        ])
        .output()
        .expect("swaks must be installed (scripts/test-all installs it)");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 OK queued as"),
        "{transcript}"
    );
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(String::from_utf8_lossy(&messages[0]).contains("Subject: swaks"));
}

const DIRECTORY: &str = r#"
[[domain]]
name = "example.test"
catch_all = "bob"

[[domain]]
name = "other.test"

[[account]]
name = "alice"

[[account]]
name = "bob"
addresses = ["bob@example.test", "jöran@other.test"]

[[account]]
name = "postmaster"

[aliases]
"team@other.test" = ["alice@example.test", "bob@example.test"]
"#;

#[test]
fn directory_routes_recipients() {
    let server = Options::default().config(DIRECTORY).start();
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    client.expect("MAIL FROM:<x@example.com>", "250");
    client.expect("RCPT TO:<nobody@other.test>", "550 5.1.1");
    client.expect("RCPT TO:<someone@remote.example>", "554 5.7.1");
    client.expect("RCPT TO:<alice+news@other.test>", "250 2.1.5");
    client.expect("RCPT TO:<team@other.test>", "250 2.1.5");
    client.expect("RCPT TO:<anything@example.test>", "250 2.1.5");
    client.expect("RCPT TO:<Postmaster>", "250 2.1.5");
    client.expect("DATA", "354");
    client.send("Subject: routed\r\n\r\nhi\r\n.\r\n");
    assert!(client.reply().starts_with("250 2.0.0"));

    let alice = server.wait_for_messages("alice", 2);
    let delivered_to: Vec<String> = alice
        .iter()
        .map(|m| split_message(m).0.lines().nth(1).unwrap().to_string())
        .collect();
    assert!(
        delivered_to.contains(&"Delivered-To: alice+news@other.test".to_string()),
        "{delivered_to:?}"
    );
    assert!(
        delivered_to.contains(&"Delivered-To: alice@example.test".to_string()),
        "{delivered_to:?}"
    );
    // bob: once through the alias, once through the catch-all; never twice for one address.
    let bob = server.wait_for_messages("bob", 2);
    assert_eq!(bob.len(), 2);
    server.wait_for_messages("postmaster", 1);
    let (headers, _) = split_message(&alice[0]);
    assert!(
        !headers.contains("\tfor <"),
        "several recipients stay private: {headers}"
    );
    server.wait_for_empty_queue();
}

#[test]
fn full_mailbox_is_refused_at_rcpt() {
    let server = Options::default()
        .config("[[account]]\nname = \"postmaster\"\nquota = 10\n")
        .start();
    std::fs::create_dir_all(server.maildir("postmaster").join("cur")).unwrap();
    std::fs::write(
        server.maildir("postmaster").join("cur/1.x,S=20:2,S"),
        vec![b'x'; 20],
    )
    .unwrap();
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    client.expect("MAIL FROM:<x@example.com>", "250");
    client.expect("RCPT TO:<postmaster@localhost>", "552 5.2.2");
}

#[test]
fn message_that_would_overflow_quota_stays_queued() {
    let server = Options::default()
        .config("[[account]]\nname = \"postmaster\"\nquota = 300\n")
        .start();
    let mut client = server.client();
    let body = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(400));
    let reply = client.send_message("x@example.com", &["postmaster@localhost"], &body);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    server.wait_for_log("result=\"deferred\"");
    assert!(
        server
            .settled_log()
            .contains("4.2.2 mailbox of postmaster is full")
    );
    assert!(server.messages("postmaster").is_empty());
    assert!(server.queue_files().iter().any(|f| f == &queue_id(&reply)));
}

#[test]
fn quota_checks_read_the_cached_figure_not_the_mailbox() {
    let server = Options::default()
        .config("[[account]]\nname = \"postmaster\"\nquota = 1000\n")
        .start();
    let mut client = server.client();
    let reply = client.send_message(
        "x@example.com",
        &["postmaster@localhost"],
        "Subject: a\r\n\r\nb\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    server.wait_for_messages("postmaster", 1);
    let maildir = server.maildir("postmaster");
    let rcpt = |client: &mut Client, expected: &str| {
        client.expect("MAIL FROM:<x@example.com>", "250");
        let reply = client.expect("RCPT TO:<postmaster@localhost>", expected);
        client.expect("RSET", "250");
        reply
    };
    // This check counts the mailbox (there is no figure yet) and keeps the figure.
    rcpt(&mut client, "250");
    let figure = std::fs::read_to_string(maildir.join("maildirsize")).unwrap();
    assert!(figure.starts_with("1000S\n"), "{figure:?}");
    // A message put in behind the store's back is not seen: no check walks the mailbox.
    std::fs::write(maildir.join("cur/1.x,S=2000:2,S"), vec![b'x'; 2000]).unwrap();
    rcpt(&mut client, "250");
    // Until the figure is recalculated: here because its file went.
    std::fs::remove_file(maildir.join("maildirsize")).unwrap();
    rcpt(&mut client, "552 5.2.2");
}

#[test]
fn check_config_names_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[limits]\nmax_recipients = 10\nmax_message_size = \"lots\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("limits.max_message_size"), "{stderr}");

    std::fs::write(&path, "[server]\nhostname = \"mx.example.org\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn check_config_refuses_two_listeners_on_one_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.toml");
    std::fs::write(
        &path,
        "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:2525\"\n\n\
         [[listener]]\nrole = \"submission\"\naddress = \"127.0.0.1:2525\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("line 7: key `listener[1].address` = \"127.0.0.1:2525\""),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[account]]\nname = \"alice\"\nsurname = \"x\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("surname"),
        "{stderr}"
    );
}

/// The embedded default data folder is relative (`posthorn-data`): made in a fresh folder,
/// its parent is the current folder, which is synced too.
#[test]
fn a_relative_data_folder_is_made_in_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("posthorn.toml"),
        "[server]\ndata_dir = \"posthorn-data\"\n\n\
         [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["serve", "--config", "posthorn.toml"])
        .current_dir(dir.path())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = common::wait_until("the server to start or fail", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("posthorn started") {
            Some(Ok(()))
        } else if let Ok(Some(status)) = server.try_wait() {
            Some(Err(format!("exited with {status}: {text}")))
        } else {
            None
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    started.unwrap().unwrap();
    assert!(dir.path().join("posthorn-data/queue").is_dir());
    assert!(dir.path().join("posthorn-data/mail").is_dir());
}
