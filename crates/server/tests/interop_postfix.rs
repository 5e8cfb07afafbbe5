//! Interop with a real Postfix (Debian's 3.7), run as a private instance on loopback (see
//! `common/postfix.rs`): Posthorn delivering to Postfix (STARTTLS, CHUNKING, SMTPUTF8,
//! 8BITMIME, a bounce Postfix sends back to us) and Postfix relaying into Posthorn
//! (trace headers, Return-Path, PIPELINING). Each test has its own Postfix, Posthorn and sink.
//!
//! Remote recipients are reached through an alias (`fwd@localhost`) because Posthorn's mx
//! listener does not relay for clients.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use common::sink::Sink;
use common::{Client, Options, TestServer, queue_id, split_message};
use posthorn_testkit::postfix::{HOSTNAME as POSTFIX_HOSTNAME, PostfixOptions, free_port};

/// A Posthorn whose `fwd@localhost` forwards to `user@remote.test`, routed to
/// `[127.0.0.1]:port` with `tls`; `extra` is appended to the configuration.
fn posthorn_routing_to(port: u16, tls: &str, extra: &str) -> TestServer {
    Options::default()
        .config(&format!(
            "[delivery]\nconnect_timeout = \"2s\"\ncommand_timeout = \"10s\"\n\
             final_timeout = \"10s\"\n\n[queue]\nretry_schedule = [\"1s\"]\n\n\
             [aliases]\n\"fwd@localhost\" = [\"user@remote.test\"]\n\n\
             [[route]]\ndomain = \"remote.test\"\nhost = \"[127.0.0.1]:{port}\"\ntls = \"{tls}\"\n\n\
             {extra}"
        ))
        .start()
}

/// A message whose content is easy to damage: dot lines (stuffing), a lone dot, a line of
/// exactly 998 octets (RFC 5322's limit, and Postfix's `smtp_line_length_limit`), leading
/// and trailing white space, a "From " line, and complete headers so that nobody adds any.
fn tricky_message(to: &str, subject: &str) -> String {
    let long: String = (0..998).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    format!(
        "From: Alice <alice@example.com>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{}@example.com>\r\n\r\n\
         .leading dot\r\n..two dots\r\n.\r\n...\r\nFrom the start of a line\r\n\
         \ttab and trailing space \r\n \r\n{long}\r\n\r\nlast line\r\n",
        subject.replace(' ', "-")
    )
}

/// The header fields of a message (up to the first empty line), unfolded, in order.
fn header_fields(message: &[u8]) -> Vec<String> {
    let (head, _) = split_message(message);
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim_start());
            }
            _ => fields.push(line.to_string()),
        }
    }
    // The checking stage's verdict fields (tested in checks.rs) are not what these
    // tests are about.
    fields.retain(|f| !f.starts_with("X-Spam-") && !f.starts_with("X-Posthorn-Checks:"));
    fields
}

/// EHLO, `MAIL FROM:<from> params`, RCPT for `to`, DATA with `content` dot-stuffed; the
/// final reply.
fn send_with_params(
    client: &mut Client,
    from: &str,
    params: &str,
    to: &str,
    content: &str,
) -> String {
    client.expect("EHLO client.test", "250");
    client.expect(&format!("MAIL FROM:<{from}> {params}"), "250 2.1.0");
    client.expect(&format!("RCPT TO:<{to}>"), "250 2.1.5");
    client.expect("DATA", "354");
    let mut stuffed = String::new();
    for line in content.split_inclusive("\r\n") {
        if line.starts_with('.') {
            stuffed.push('.');
        }
        stuffed.push_str(line);
    }
    client.send(stuffed);
    client.command(".")
}

/// The line of Postfix's log for smtpd's session with Posthorn ("disconnect from ...
/// ehlo=2 starttls=1 mail=1 rcpt=1 bdat=1 quit=1 commands=7"): the commands it got.
fn smtpd_disconnect_line(log: &str) -> String {
    log.lines()
        .find(|l| l.contains("postfix/smtpd[") && l.contains("disconnect from"))
        .unwrap_or_else(|| panic!("no smtpd disconnect line in Postfix's log:\n{log}"))
        .to_string()
}

#[test]
fn postfix_receives_our_delivery_over_starttls() {
    let sink = Sink::start();
    let postfix = PostfixOptions::default()
        .starttls()
        .relayhost(sink.addr.port())
        .start();
    let server = posthorn_routing_to(postfix.port(), "required", "");
    let content = tricky_message("fwd@localhost", "over starttls");
    let reply = server
        .client()
        .send_message("alice@example.com", &["fwd@localhost"], &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let messages = sink.wait_for_messages(1);
    let message = &messages[0];
    // Forwarded by an alias: Postfix takes the rewritten (SRS) sender.
    common::assert_rewritten(&message.sender(), "alice@example.com", "localhost");
    assert_eq!(message.recipients(), ["user@remote.test"]);
    assert!(
        message.content.ends_with(content.as_bytes()),
        "the content must arrive byte for byte:\n{}",
        message.text()
    );
    let fields = header_fields(&message.content);
    // Postfix's trace header, then ours, then the original header.
    assert!(
        fields[0].starts_with("Received: from mx.test (unknown [127.0.0.1]) by postfix.interop.test (Postfix) with ESMTPS id "),
        "Postfix's Received header must say ESMTPS (RFC 3848): {fields:?}"
    );
    assert!(
        fields[1].starts_with(
            "Received: from client.test ([127.0.0.1]) by mx.test (Posthorn) with ESMTP id "
        ),
        "{fields:?}"
    );
    assert_eq!(fields[2], "From: Alice <alice@example.com>");
    let added = String::from_utf8_lossy(&message.content[..message.content.len() - content.len()]);
    assert_eq!(
        added
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
            .filter(|l| !l.starts_with("X-Spam-") && !l.starts_with("X-Posthorn-Checks:"))
            .count(),
        2,
        "nothing but the two Received headers (and our verdict) was added:\n{added}"
    );

    let log = postfix.wait_for_log("disconnect from");
    assert!(
        log.contains("Anonymous TLS connection established from unknown[127.0.0.1]"),
        "Postfix must log our STARTTLS:\n{log}"
    );
    // Postfix 3.7's smtpd offers CHUNKING, so we send BDAT (RFC 3030), not DATA.
    let session = smtpd_disconnect_line(&log);
    assert!(
        session.contains(" starttls=1 ")
            && session.contains(" bdat=1 ")
            && !session.contains(" data="),
        "{session}"
    );
    server.wait_for_log("TLS established");
    server.wait_for_empty_queue();
    postfix.wait_for_empty_queue();
}

#[test]
fn postfix_relays_into_us() {
    let server = TestServer::start();
    let postfix = PostfixOptions::default()
        .relayhost(server.addr.port())
        .start();
    let content = tricky_message("postmaster@localhost", "relayed into us");
    let reply = Client::greeted(postfix.addr()).send_message(
        "alice@example.com",
        &["postmaster@localhost"],
        &content,
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let postfix_id = queue_id(&reply);

    let messages = server.wait_for_messages("postmaster", 1);
    let delivered = &messages[0];
    assert!(
        delivered.ends_with(content.as_bytes()),
        "the content must arrive byte for byte:\n{}",
        String::from_utf8_lossy(delivered)
    );
    let fields = header_fields(delivered);
    assert_eq!(fields[0], "Return-Path: <alice@example.com>", "{fields:?}");
    assert_eq!(
        fields[1], "Delivered-To: postmaster@localhost",
        "{fields:?}"
    );
    assert!(
        fields[2].starts_with(&format!(
            "Received: from {POSTFIX_HOSTNAME} ([127.0.0.1]) by mx.test (Posthorn) with ESMTP id "
        )) && fields[2].contains("for <postmaster@localhost>;"),
        "our Received header: {fields:?}"
    );
    assert!(
        fields[3].starts_with(&format!(
            "Received: from client.test (unknown [127.0.0.1]) by {POSTFIX_HOSTNAME} (Postfix) with ESMTP id {postfix_id} for <postmaster@localhost>;"
        )),
        "Postfix's Received header: {fields:?}"
    );
    assert_eq!(fields[4], "From: Alice <alice@example.com>", "{fields:?}");

    let log = postfix.wait_for_log("status=sent");
    assert!(
        log.contains(&format!(
            "{postfix_id}: to=<postmaster@localhost>, relay=127.0.0.1[127.0.0.1]:{}",
            server.addr.port()
        )),
        "{log}"
    );
    server.wait_for_log(&format!("helo=\"{POSTFIX_HOSTNAME}\""));
    server.wait_for_empty_queue();
    postfix.wait_for_empty_queue();
}

#[test]
fn postfix_gets_our_bounce_path_right() {
    // We forward to Postfix, Postfix accepts, its next hop refuses the recipient: Postfix
    // must return the message to our original sender, through us.
    let sink = Sink::builder()
        .rcpt(|address| {
            if address == "user@remote.test" {
                "550 5.1.1 no such user"
            } else {
                "250 2.1.5 ok"
            }
        })
        .start();
    let postfix_port = free_port();
    let server = posthorn_routing_to(
        postfix_port,
        "none",
        "[[account]]\nname = \"alice\"\n\n[[account]]\nname = \"postmaster\"\n",
    );
    let postfix = PostfixOptions::default()
        .port(postfix_port)
        .relayhost(sink.addr.port())
        .transport("localhost", server.addr.port())
        .start();
    let content = tricky_message("fwd@localhost", "will bounce");
    let reply = server
        .client()
        .send_message("alice@localhost", &["fwd@localhost"], &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let notices = server.wait_for_messages("alice", 1);
    let notice = String::from_utf8_lossy(&notices[0]).into_owned();
    let fields = header_fields(&notices[0]);
    assert_eq!(
        fields[0], "Return-Path: <>",
        "a notice has the null sender: {fields:?}"
    );
    assert_eq!(fields[1], "Delivered-To: alice@localhost", "{fields:?}");
    assert!(
        fields[2].starts_with(&format!(
            "Received: from {POSTFIX_HOSTNAME} ([127.0.0.1]) by mx.test (Posthorn)"
        )),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("Content-Type: multipart/report; report-type=delivery-status;")),
        "{notice}"
    );
    for expected in [
        "Final-Recipient: rfc822; user@remote.test",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 no such user",
        "Subject: will bounce",
    ] {
        assert!(notice.contains(expected), "{expected:?} missing:\n{notice}");
    }
    // We gave Postfix the address the sender used (ORCPT, RFC 3461), so its report names it.
    assert!(
        notice.contains("Original-Recipient: rfc822;fwd@localhost"),
        "ORCPT missing from the report:\n{notice}"
    );
    assert!(sink.messages().is_empty(), "{}", sink.transcript());

    let log = postfix.wait_for_log("status=bounced");
    assert!(log.contains("to=<user@remote.test>"), "{log}");
    server.wait_for_log("recipient=user@remote.test result=\"delivered\"");
    server.wait_for_empty_queue();
    postfix.wait_for_empty_queue();
}

/// A message that needs SMTPUTF8 (a non-ASCII sender) and 8BITMIME (raw UTF-8 text).
fn utf8_message(to: &str) -> String {
    format!(
        "From: =?utf-8?q?J=C3=B6s=C3=A9?= <jösé@example.com>\r\nTo: <{to}>\r\n\
         Subject: Grüße\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
         Message-ID: <utf8@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Äpfel, Öl und Größe: 日本語のテキスト\r\n.ünicode after a dot\r\n\u{a0}\r\n"
    )
}

#[test]
fn smtputf8_and_8bitmime_from_us_through_postfix() {
    let sink = Sink::start();
    let postfix = PostfixOptions::default()
        .relayhost(sink.addr.port())
        .start();
    let server = posthorn_routing_to(postfix.port(), "opportunistic", "");
    let content = utf8_message("fwd@localhost");
    let reply = send_with_params(
        &mut server.client(),
        "jösé@example.com",
        "BODY=8BITMIME SMTPUTF8",
        "fwd@localhost",
        &content,
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let messages = sink.wait_for_messages(1);
    let message = &messages[0];
    common::assert_rewritten(&message.sender(), "jösé@example.com", "localhost");
    assert_eq!(message.mail_param("SMTPUTF8").as_deref(), Some(""));
    assert_eq!(message.mail_param("BODY").as_deref(), Some("8BITMIME"));
    assert!(
        message.content.ends_with(content.as_bytes()),
        "8-bit content must arrive unconverted:\n{}",
        message.text()
    );
    let fields = header_fields(&message.content);
    // Postfix names the protocol UTF8SMTP only if we gave it SMTPUTF8 (RFC 6531 §3.7.3).
    assert!(
        fields[0].contains(&format!(
            "by {POSTFIX_HOSTNAME} (Postfix) with UTF8SMTP id "
        )),
        "{fields:?}"
    );
    assert!(
        fields[1].contains("by mx.test (Posthorn) with UTF8SMTP id "),
        "{fields:?}"
    );
    let log = postfix.wait_for_log("disconnect from");
    assert!(smtpd_disconnect_line(&log).contains(" bdat=1 "), "{log}");
    server.wait_for_empty_queue();
    postfix.wait_for_empty_queue();
}

#[test]
fn smtputf8_and_8bitmime_from_postfix_into_us() {
    let server = TestServer::start();
    let postfix = PostfixOptions::default()
        .relayhost(server.addr.port())
        .start();
    let content = utf8_message("postmaster@localhost");
    let reply = send_with_params(
        &mut Client::greeted(postfix.addr()),
        "jösé@example.com",
        "BODY=8BITMIME SMTPUTF8",
        "postmaster@localhost",
        &content,
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let messages = server.wait_for_messages("postmaster", 1);
    let delivered = &messages[0];
    // Had we not offered 8BITMIME, Postfix would have converted the text to
    // quoted-printable; had we not offered SMTPUTF8, it would have bounced.
    assert!(
        delivered.ends_with(content.as_bytes()),
        "8-bit content must arrive unconverted:\n{}",
        String::from_utf8_lossy(delivered)
    );
    let fields = header_fields(delivered);
    assert_eq!(fields[0], "Return-Path: <jösé@example.com>", "{fields:?}");
    assert!(
        fields[2].contains("by mx.test (Posthorn) with UTF8SMTP id "),
        "{fields:?}"
    );
    assert!(
        fields[3].contains(&format!(
            "by {POSTFIX_HOSTNAME} (Postfix) with UTF8SMTP id "
        )),
        "{fields:?}"
    );
    server.wait_for_empty_queue();
    postfix.wait_for_empty_queue();
}

#[test]
fn postfix_pipelines_into_us() {
    let server = TestServer::start();
    let postfix = PostfixOptions::default()
        .relayhost(server.addr.port())
        // Verbose logging of the SMTP dialogue with 127.0.0.1 (both smtpd and smtp).
        .main_cf("debug_peer_list = 127.0.0.1")
        .start();
    let content = tricky_message("postmaster@localhost", "pipelined");
    let reply = Client::greeted(postfix.addr()).send_message(
        "alice@example.com",
        &["postmaster@localhost"],
        &content,
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(messages[0].ends_with(content.as_bytes()));

    let log = postfix.wait_for_log("status=sent");
    assert!(log.contains("Using ESMTP PIPELINING"), "{log}");
    let peer = format!("127.0.0.1[127.0.0.1]:{}", server.addr.port());
    let dialogue: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("postfix/smtp[")
                && (l.contains(&format!("> {peer}: ")) || l.contains(&format!("< {peer}: ")))
        })
        .collect();
    let position = |needle: &str| {
        dialogue
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in the dialogue:\n{}", dialogue.join("\n")))
    };
    let mail = position(&format!("> {peer}: MAIL FROM:<alice@example.com>"));
    let data = position(&format!("> {peer}: DATA"));
    let mail_reply = position(&format!("< {peer}: 250 2.1.0"));
    assert!(
        mail < data && data < mail_reply,
        "Postfix must send MAIL, RCPT and DATA before it reads the reply to MAIL \
         (PIPELINING, RFC 2920):\n{}",
        dialogue.join("\n")
    );
    server.wait_for_empty_queue();
    postfix.wait_for_empty_queue();
}
