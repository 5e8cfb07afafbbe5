//! How outbound delivery reacts to what the next hop does: acceptance, temporary and permanent
//! refusals, dropped and stalled connections, TLS policies, relay authentication, routes,
//! connection reuse, and the SMTP extensions that change what goes on the wire (CHUNKING,
//! SIZE, 8BITMIME, SMTPUTF8, DSN). Each test runs the real `posthorn` binary against its own
//! scripted sink and DNS server, and checks the sink's records, the spool, the log, and the
//! notices delivered to the (local) sender, parsed as RFC 3464 reports.
//!
//! Remote recipients are reached through the alias `fwd@localhost` (the mx listener does not
//! relay), and the sender is `postmaster@localhost` whenever a notice must be seen.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};

use common::dns::TestDns;
use common::sink::{DEFAULT_EXTENSIONS, Sink, SinkMessage, SinkTls, Stage};
use common::{Client, Options, TestServer, queue_id, wait_until};

/// The sender whose notices land in the `postmaster` Maildir.
const LOCAL_SENDER: &str = "postmaster@localhost";

// ---------------------------------------------------------------------------------------
// Set-up helpers
// ---------------------------------------------------------------------------------------

/// `remote.test` has one MX, `mx.remote.test`, on 127.0.0.1.
fn zone() -> TestDns {
    TestDns::builder()
        .mx("remote.test", 10, "mx.remote.test")
        .a("mx.remote.test", "127.0.0.1")
        .start()
}

/// A server resolving through `dns`, whose MX port is `port`, where `fwd@localhost`
/// forwards to `targets`. `delivery` adds keys to `[delivery]`; `extra` adds tables. The
/// accounts are `postmaster` and `bob`; retries come after one second.
fn server(dns: &TestDns, port: u16, targets: &[&str], delivery: &str, extra: &str) -> TestServer {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    Options::default()
        .config(&format!(
            "[delivery]\nnameserver = \"{}\"\nport = {port}\nconnect_timeout = \"2s\"\n\
             command_timeout = \"2s\"\nfinal_timeout = \"2s\"\n{delivery}\n\n\
             [queue]\nretry_schedule = [\"1s\"]\n\n\
             [[account]]\nname = \"postmaster\"\n\n[[account]]\nname = \"bob\"\n\n\
             [aliases]\n\"fwd@localhost\" = [{}]\n\n{extra}",
            dns.addr,
            targets.join(", ")
        ))
        .start()
}

/// The default sink extensions without those starting with any of `dropped`.
fn extensions_without(dropped: &[&str]) -> Vec<&'static str> {
    DEFAULT_EXTENSIONS
        .iter()
        .copied()
        .filter(|e| !dropped.iter().any(|d| e.starts_with(d)))
        .collect()
}

/// Dot-stuffs `content` for DATA.
fn dot_stuff(content: &str) -> String {
    let mut stuffed = String::new();
    for line in content.split_inclusive("\r\n") {
        if line.starts_with('.') {
            stuffed.push('.');
        }
        stuffed.push_str(line);
    }
    stuffed
}

/// One transaction on an introduced session: `mail` and each of `rcpts` are the whole
/// argument (`<a@b> PARAM=...`). Returns the queue id.
fn transaction(client: &mut Client, mail: &str, rcpts: &[&str], content: &str) -> String {
    client.expect(&format!("MAIL FROM:{mail}"), "250 2.1.0");
    for rcpt in rcpts {
        client.expect(&format!("RCPT TO:{rcpt}"), "250 2.1.5");
    }
    client.expect("DATA", "354");
    client.send(dot_stuff(content));
    let reply = client.command(".");
    assert!(reply.starts_with("250 2.0.0"), "end of data: {reply}");
    queue_id(&reply)
}

/// A new session, EHLO, and one transaction. Returns the queue id.
fn submit(server: &TestServer, mail: &str, rcpts: &[&str], content: &str) -> String {
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    let id = transaction(&mut client, mail, rcpts, content);
    client.expect("QUIT", "221");
    id
}

/// The usual message: from the local postmaster to `fwd@localhost`.
fn submit_fwd(server: &TestServer, content: &str) -> String {
    submit(
        server,
        &format!("<{LOCAL_SENDER}>"),
        &["<fwd@localhost>"],
        content,
    )
}

/// Waits for the log line recording `result` ("delivered", "deferred", "failed") for
/// `recipient`, and returns it.
fn wait_for_result(server: &TestServer, recipient: &str, result: &str) -> String {
    let who = format!("recipient={recipient} ");
    let what = format!("result=\"{result}\"");
    wait_until(&format!("{result} for {recipient}"), || {
        server
            .log()
            .lines()
            .find(|l| l.contains(" delivery ") && l.contains(&who) && l.contains(&what))
            .map(str::to_string)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// Waits for the `attempt`-th deferral of `recipient`.
fn wait_for_deferral(server: &TestServer, recipient: &str, attempt: u32) -> String {
    let who = format!("recipient={recipient} ");
    let nth = format!("result=\"deferred\" attempt={attempt} ");
    wait_until(&format!("deferral {attempt} of {recipient}"), || {
        server
            .log()
            .lines()
            .find(|l| l.contains(" delivery ") && l.contains(&who) && l.contains(&nth))
            .map(str::to_string)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// The message is still in the spool and nothing reached the sink.
fn assert_still_queued(server: &TestServer, sink: &Sink) {
    assert!(
        !server.queue_files().is_empty(),
        "the message left the queue\n{}",
        server.log()
    );
    assert!(
        sink.messages().is_empty(),
        "the sink got a message\n{}",
        sink.transcript()
    );
}

/// Exactly `count` messages at the sink, checked once the spool is empty: the sink records
/// a message before it replies, so the server had every message the sink took before it
/// could let the message go, and with the spool empty nothing more can come.
fn assert_delivered_exactly(sink: &Sink, count: usize) -> Vec<SinkMessage> {
    let messages = sink.messages();
    assert_eq!(
        messages.len(),
        count,
        "messages at the sink\n{}",
        sink.transcript()
    );
    messages
}

/// No notice was written for the test's messages, `queued` of which are still in the spool.
/// Called once the spool is empty or a later attempt has begun (its "delivery" line seen),
/// when the write-back of the attempts that matter is over. A notice enters the spool
/// before the message that owes it is written back, and leaves it only once delivered; so
/// the spool is looked at first (the test's own messages only), then the Maildir: a notice
/// cannot slip between the two looks.
fn assert_no_notice(server: &TestServer, queued: usize) {
    let spooled = server.queued_messages();
    assert_eq!(
        spooled.len(),
        queued,
        "messages in the spool: {spooled:?}\n{}",
        server.log()
    );
    let notices = server.messages("postmaster");
    assert!(
        notices.is_empty(),
        "unexpected notice: {}\n{}",
        String::from_utf8_lossy(&notices[0]),
        server.log()
    );
}

// ---------------------------------------------------------------------------------------
// Parsing notices (RFC 3464)
// ---------------------------------------------------------------------------------------

/// The fields of one group of a `message/delivery-status` body, in order.
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a field that must be there.
    fn field(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no {name} field in {:?}", self.0))
    }
}

/// A delivery status notification as a sender receives it.
#[derive(Debug)]
struct Report {
    /// The whole delivered message (with our Return-Path and Delivered-To).
    raw: String,
    subject: String,
    from: String,
    /// `type/subtype` of each part of the multipart/report.
    part_types: Vec<String>,
    /// The human-readable first part.
    human: String,
    per_message: Fields,
    recipients: Vec<Fields>,
    /// The third part, decoded (headers or the whole message).
    returned: Vec<u8>,
}

impl Report {
    fn recipient(&self, final_recipient: &str) -> &Fields {
        self.recipients
            .iter()
            .find(|f| f.get("Final-Recipient") == Some(final_recipient))
            .unwrap_or_else(|| panic!("no group for {final_recipient}: {:#?}", self.recipients))
    }

    fn returned_text(&self) -> String {
        String::from_utf8_lossy(&self.returned).into_owned()
    }
}

/// Splits a `message/delivery-status` body into its groups of (unfolded) fields.
fn delivery_status_groups(body: &str) -> Vec<Fields> {
    let body = body.replace("\r\n", "\n");
    body.split("\n\n")
        .filter(|group| !group.trim().is_empty())
        .map(|group| {
            let mut fields: Vec<(String, String)> = Vec::new();
            for line in group.lines() {
                if line.starts_with([' ', '\t']) {
                    if let Some((_, value)) = fields.last_mut() {
                        value.push(' ');
                        value.push_str(line.trim());
                    }
                } else if let Some((name, value)) = line.split_once(':') {
                    fields.push((name.trim().to_string(), value.trim().to_string()));
                }
            }
            Fields(fields)
        })
        .collect()
}

/// Parses a notice and checks what every notice must be: From MAILER-DAEMON, delivered with
/// the null reverse path, a multipart/report of report-type delivery-status with three
/// parts, the second message/delivery-status.
fn parse_report(raw: &[u8]) -> Report {
    let text = String::from_utf8_lossy(raw).into_owned();
    assert!(
        text.starts_with("Return-Path: <>\r\n"),
        "a notice is sent with the null reverse path:\n{text}"
    );
    let message = MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("unparsable notice:\n{text}"));
    let subject = message.subject().unwrap_or_default().to_string();
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    assert!(
        from.to_ascii_uppercase().starts_with("MAILER-DAEMON@"),
        "From: {from}\n{text}"
    );
    let root = message.root_part();
    let content_type = root.content_type().expect("Content-Type of the notice");
    assert_eq!(content_type.ctype(), "multipart", "{text}");
    assert_eq!(content_type.subtype(), Some("report"), "{text}");
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status"),
        "{text}"
    );
    let ids = root.sub_parts().expect("parts of the report").to_vec();
    let parts: Vec<_> = ids
        .iter()
        .map(|&id| message.part(id).expect("report part"))
        .collect();
    let part_types: Vec<String> = parts
        .iter()
        .map(|p| {
            let ct = p.content_type().expect("part Content-Type");
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
        })
        .collect();
    assert_eq!(parts.len(), 3, "three parts: {part_types:?}\n{text}");
    assert_eq!(part_types[0], "text/plain", "{text}");
    assert_eq!(part_types[1], "message/delivery-status", "{text}");
    let human = String::from_utf8_lossy(parts[0].contents()).into_owned();
    let status = String::from_utf8_lossy(parts[1].contents()).into_owned();
    let mut groups = delivery_status_groups(&status);
    assert!(
        groups.len() >= 2,
        "per-message and recipient groups:\n{status}"
    );
    let per_message = groups.remove(0);
    let returned = match &parts[2].body {
        PartType::Message(inner) => inner.raw_message().to_vec(),
        _ => parts[2].contents().to_vec(),
    };
    Report {
        raw: text,
        subject,
        from,
        part_types,
        human,
        per_message,
        recipients: groups,
        returned,
    }
}

/// Waits for the `count`-th message of the postmaster and parses it as a notice.
fn wait_for_notice(server: &TestServer, count: usize) -> Report {
    let messages = server.wait_for_messages("postmaster", count);
    parse_report(&messages[count - 1])
}

/// Checks the per-message fields every notice of ours carries.
fn assert_per_message_fields(report: &Report) {
    assert_eq!(
        report.per_message.field("Reporting-MTA"),
        "dns; mx.test",
        "{}",
        report.raw
    );
    assert!(
        mail_parser::DateTime::parse_rfc822(report.per_message.field("Arrival-Date")).is_some(),
        "Arrival-Date is an RFC 5322 date: {}",
        report.raw
    );
}

// ---------------------------------------------------------------------------------------
// A connection that takes its time (for connection reuse)
// ---------------------------------------------------------------------------------------

/// A TCP proxy to `target` that waits `delay` before connecting each accepted connection
/// through, so the first reply of every session comes late. Its threads end with the
/// connections; the listener lives as long as the test process.
fn slow_proxy(target: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let Ok(upstream) = TcpStream::connect(target) else {
                    return;
                };
                pipe(client, upstream);
            });
        }
    });
    addr
}

/// Copies bytes both ways until both sides are done.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(mut a_read), Ok(mut b_write)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let forward = std::thread::spawn(move || {
        copy(&mut a_read, &mut b_write);
    });
    let (mut b_read, mut a_write) = (b, a);
    copy(&mut b_read, &mut a_write);
    let _ = forward.join();
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------------------------------
// 1. Acceptance
// ---------------------------------------------------------------------------------------

#[test]
fn accepted_message_is_delivered_once_with_envelope_and_received_header() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    let original = "Subject: one\r\nFrom: alice@example.com\r\n\r\nHello there\r\n";
    let id = submit(
        &server,
        "<alice@example.com>",
        &["<fwd@localhost>"],
        original,
    );
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    let message = &messages[0];
    common::assert_rewritten(&message.sender(), "alice@example.com", "localhost");
    assert_eq!(message.recipients(), ["user@remote.test"]);
    assert_eq!(message.helo, "mx.test");
    assert!(message.ehlo && message.tls, "{}", sink.transcript());

    let text = message.text();
    let received = common::without_verdict(
        text.strip_suffix(original)
            .unwrap_or_else(|| panic!("the original content is passed on unchanged:\n{text}")),
    );
    let expected_start = format!(
        "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (Posthorn) with ESMTP id {id}\r\n\tfor <fwd@localhost>;\r\n\t"
    );
    assert!(received.starts_with(&expected_start), "{received}");
    assert!(received.ends_with("\r\n"), "{received}");
    let lines: Vec<&str> = received.split_terminator("\r\n").collect();
    assert!(
        lines.iter().skip(1).all(|l| l.starts_with('\t')),
        "exactly one (folded) Received header is added: {received:?}"
    );
    wait_for_result(&server, "user@remote.test", "delivered");
}

// ---------------------------------------------------------------------------------------
// 2. Temporary refusals
// ---------------------------------------------------------------------------------------

/// A sink answering 451 somewhere defers the message; once it accepts, a later attempt
/// delivers it, once.
fn temporary_refusal_then_acceptance(sink: Sink, accept: impl FnOnce(&Sink)) {
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: later\r\n\r\nretry me\r\n");
    let deferral = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(deferral.contains("451 4.3.0"), "{deferral}");
    assert_still_queued(&server, &sink);
    accept(&sink);
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert!(
        messages[0]
            .text()
            .ends_with("Subject: later\r\n\r\nretry me\r\n")
    );
    let delivered = wait_for_result(&server, "user@remote.test", "delivered");
    assert!(
        !delivered.contains(" attempt=1 "),
        "delivered on a later attempt: {delivered}"
    );
    assert_no_notice(&server, 0);
}

#[test]
fn rcpt_451_defers_and_a_later_attempt_delivers() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .rcpt(|_| "451 4.3.0 try again later")
        .start();
    temporary_refusal_then_acceptance(sink, |sink| {
        sink.reconfigure(|b| b.rcpt(|_| "250 2.1.5 ok"));
    });
}

#[test]
fn data_451_defers_and_a_later_attempt_delivers() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .data_reply("451 4.3.0 try again later")
        .start();
    temporary_refusal_then_acceptance(sink, |sink| {
        sink.reconfigure(|b| b.data_reply("250 2.0.0 queued"));
    });
}

// ---------------------------------------------------------------------------------------
// 3. Permanent refusal and the bounce
// ---------------------------------------------------------------------------------------

#[test]
fn rcpt_550_bounces_to_the_sender_with_a_full_delivery_status_report() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .rcpt(|_| "550 5.1.1 no such user here")
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(
        &server,
        "Subject: the original subject\r\n\r\nbody line that stays home\r\n",
    );
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();

    assert_eq!(report.subject, "Undelivered Mail Returned to Sender");
    assert_eq!(report.from, "MAILER-DAEMON@mx.test");
    assert_eq!(
        report.part_types,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    assert!(
        report.human.contains("user@remote.test"),
        "{}",
        report.human
    );
    assert_per_message_fields(&report);
    assert_eq!(report.recipients.len(), 1, "{}", report.raw);
    let recipient = &report.recipients[0];
    assert_eq!(
        recipient.field("Final-Recipient"),
        "rfc822; user@remote.test"
    );
    assert_eq!(
        recipient.field("Original-Recipient"),
        "rfc822; fwd@localhost"
    );
    assert_eq!(recipient.field("Action"), "failed");
    assert_eq!(recipient.field("Status"), "5.1.1");
    assert_eq!(recipient.field("Remote-MTA"), "dns; mx.remote.test");
    assert_eq!(
        recipient.field("Diagnostic-Code"),
        "smtp; 550 5.1.1 no such user here"
    );
    assert!(
        mail_parser::DateTime::parse_rfc822(recipient.field("Last-Attempt-Date")).is_some(),
        "{}",
        report.raw
    );
    let returned = report.returned_text();
    assert!(
        returned.contains("Subject: the original subject"),
        "{returned}"
    );
    assert!(
        !returned.contains("body line that stays home"),
        "RET=HDRS (the default) returns the headers only: {returned}"
    );
    assert!(sink.messages().is_empty());
}

#[test]
fn rcpt_550_with_ret_full_returns_the_whole_original() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .rcpt(|_| "550 5.1.1 no such user here")
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    let original = "Subject: send it all back\r\n\r\nfirst body line\r\nsecond body line\r\n";
    submit(
        &server,
        &format!("<{LOCAL_SENDER}> RET=FULL"),
        &["<fwd@localhost>"],
        original,
    );
    let report = wait_for_notice(&server, 1);
    assert_eq!(
        report.part_types,
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );
    let returned = report.returned_text();
    assert!(
        returned.starts_with("Received: from client.test"),
        "the original as we received it: {returned}"
    );
    assert!(
        returned.ends_with(original),
        "the whole original, body included: {returned:?}"
    );
    assert_eq!(
        report.recipient("rfc822; user@remote.test").field("Status"),
        "5.1.1"
    );
    server.wait_for_empty_queue();
}

// ---------------------------------------------------------------------------------------
// 4. One recipient refused, one accepted
// ---------------------------------------------------------------------------------------

#[test]
fn refused_and_accepted_recipients_of_one_message() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .rcpt(|address| {
            if address.starts_with("bad") {
                "550 5.1.1 no such user"
            } else {
                "250 2.1.5 ok"
            }
        })
        .start();
    let dns = zone();
    let server = server(
        &dns,
        sink.addr.port(),
        &["good@remote.test", "bad@remote.test"],
        "",
        "",
    );
    submit_fwd(&server, "Subject: half\r\n\r\nhalf of it\r\n");
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert_eq!(messages[0].recipients(), ["good@remote.test"]);
    assert_eq!(report.recipients.len(), 1, "{}", report.raw);
    let bad = report.recipient("rfc822; bad@remote.test");
    assert_eq!(bad.field("Action"), "failed");
    assert_eq!(bad.field("Status"), "5.1.1");
    assert!(
        !report.raw.contains("good@remote.test"),
        "the bounce names only the refused recipient:\n{}",
        report.raw
    );
}

// ---------------------------------------------------------------------------------------
// 5. Connection dropped in the middle of the content
// ---------------------------------------------------------------------------------------

fn dropped_mid_content(sink: Sink, bdat: bool) {
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    let original = "Subject: dropped\r\n\r\nline one\r\nline two\r\nline three\r\n";
    submit_fwd(&server, original);
    wait_for_deferral(&server, "user@remote.test", 1);
    assert!(
        sink.transcript().contains("* dropping the connection"),
        "{}",
        sink.transcript()
    );
    assert_still_queued(&server, &sink);
    sink.reconfigure(|b| b.drop_mid_data(false));
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert_eq!(messages[0].bdat, bdat);
    assert!(messages[0].text().ends_with(original));
    assert_no_notice(&server, 0);
}

#[test]
fn connection_dropped_mid_data_defers_then_delivers_once() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .extensions(&extensions_without(&["CHUNKING"]))
        .drop_mid_data(true)
        .start();
    dropped_mid_content(sink, false);
}

#[test]
fn connection_dropped_mid_bdat_defers_then_delivers_once() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .drop_mid_data(true)
        .start();
    dropped_mid_content(sink, true);
}

// ---------------------------------------------------------------------------------------
// 6. Stalled server
// ---------------------------------------------------------------------------------------

fn stalled_then_answering(stage: Stage, waiting_for: &str) {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .stall_at(stage)
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: slow\r\n\r\nslow server\r\n");
    let deferral = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(
        deferral.contains("timeout waiting for") && deferral.contains(waiting_for),
        "{deferral}"
    );
    assert_still_queued(&server, &sink);
    sink.reconfigure(|b| b.stall_at(None));
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    assert_delivered_exactly(&sink, 1);
}

#[test]
fn stall_at_greeting_times_out_defers_then_delivers() {
    stalled_then_answering(Stage::Greeting, "Greeting");
}

#[test]
fn stall_after_mail_times_out_defers_then_delivers() {
    stalled_then_answering(Stage::AfterMail, "Command");
}

// ---------------------------------------------------------------------------------------
// 7. STARTTLS refused or absent
// ---------------------------------------------------------------------------------------

#[test]
fn starttls_refused_with_opportunistic_tls_delivers_in_clear() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .tls(SinkTls::Refuse)
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: clear\r\n\r\nin clear\r\n");
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert!(!messages[0].tls);
    assert!(sink.transcript().contains("C: STARTTLS"));
    server.wait_for_log("STARTTLS refused, going on without TLS");
}

#[test]
fn starttls_refused_with_tls_required_stays_queued() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .tls(SinkTls::Refuse)
        .start();
    let dns = zone();
    let server = server(
        &dns,
        sink.addr.port(),
        &["user@remote.test"],
        "tls = \"required\"",
        "",
    );
    submit_fwd(&server, "Subject: secret\r\n\r\nTLS or nothing\r\n");
    let first = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(first.contains("454 4.7.0"), "{first}");
    wait_for_deferral(&server, "user@remote.test", 2);
    assert_still_queued(&server, &sink);
    assert!(
        !sink.transcript().contains("C: MAIL FROM"),
        "{}",
        sink.transcript()
    );
    assert_no_notice(&server, 1);
}

#[test]
fn no_starttls_with_tls_required_stays_queued() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .tls(SinkTls::None)
        .start();
    let dns = zone();
    let server = server(
        &dns,
        sink.addr.port(),
        &["user@remote.test"],
        "tls = \"required\"",
        "",
    );
    submit_fwd(&server, "Subject: secret\r\n\r\nTLS or nothing\r\n");
    let first = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(first.contains("TLS, which is required"), "{first}");
    wait_for_deferral(&server, "user@remote.test", 2);
    assert_still_queued(&server, &sink);
    assert!(!sink.transcript().contains("C: MAIL FROM"));
    assert_no_notice(&server, 1);
}

// ---------------------------------------------------------------------------------------
// 8. Certificate verification
// ---------------------------------------------------------------------------------------

fn verify_settings(sink: &Sink) -> String {
    format!(
        "tls = \"verify\"\nca_file = \"{}\"",
        sink.ca_pem_path().display()
    )
}

#[test]
fn verify_policy_delivers_when_the_certificate_matches_the_mx_name() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(
        &dns,
        sink.addr.port(),
        &["user@remote.test"],
        &verify_settings(&sink),
        "",
    );
    submit_fwd(&server, "Subject: verified\r\n\r\nchecked\r\n");
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert!(messages[0].tls);
    server.wait_for_log("verified=true");
}

#[test]
fn verify_policy_refuses_a_certificate_for_another_name() {
    let sink = Sink::builder().hostname("other.test").start();
    let dns = zone();
    let server = server(
        &dns,
        sink.addr.port(),
        &["user@remote.test"],
        &verify_settings(&sink),
        "",
    );
    submit_fwd(&server, "Subject: verified\r\n\r\nchecked\r\n");
    let first = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(
        first.contains("TLS handshake failed") && first.contains("not valid for name"),
        "{first}"
    );
    wait_for_deferral(&server, "user@remote.test", 2);
    assert_still_queued(&server, &sink);
    assert!(!sink.transcript().contains("C: MAIL FROM"));
    assert_no_notice(&server, 1);
}

// ---------------------------------------------------------------------------------------
// 9. Relay host with authentication
// ---------------------------------------------------------------------------------------

fn relay_table(sink: &Sink, keys: &str) -> String {
    format!(
        "[relay]\nhost = \"[127.0.0.1]:{}\"\n{keys}\n",
        sink.addr.port()
    )
}

#[test]
fn relay_with_auth_plain_over_starttls_takes_every_remote_recipient() {
    let sink = Sink::builder().auth("user", "secret").start();
    let dns = zone();
    let server = server(
        &dns,
        9,
        &["user@remote.test", "someone@elsewhere.test"],
        "",
        &relay_table(&sink, "username = \"user\"\npassword = \"secret\""),
    );
    submit_fwd(&server, "Subject: relayed\r\n\r\nvia the relay\r\n");
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    let message = &messages[0];
    let mut recipients = message.recipients();
    recipients.sort();
    assert_eq!(recipients, ["someone@elsewhere.test", "user@remote.test"]);
    assert!(message.tls, "{}", sink.transcript());
    assert_eq!(message.auth_user.as_deref(), Some("user"));
    assert!(sink.transcript().contains("C: AUTH PLAIN"));
    assert!(
        dns.queries().is_empty(),
        "the relay is used without any lookup: {:?}",
        dns.queries()
    );
}

/// 535 is a permanent reply, but wrong credentials are the operator's to fix, not the
/// sender's fault: the message waits, with no bounce, as with Postfix's default
/// (smtp_sasl_auth_soft_bounce), and goes once the relay takes the password.
#[test]
fn relay_refusing_the_password_with_535_defers_until_fixed() {
    let sink = Sink::builder().auth("user", "secret").start();
    let dns = zone();
    let server = server(
        &dns,
        9,
        &["user@remote.test"],
        "",
        &relay_table(&sink, "username = \"user\"\npassword = \"wrong\""),
    );
    submit_fwd(&server, "Subject: relayed\r\n\r\nvia the relay\r\n");
    // Wrong credentials are the operator's to fix, not the sender's fault: no bounce.
    server.wait_for_log("AUTH refused; check the credentials configured for this hop");
    assert!(sink.transcript().contains("S: 535 5.7.8"));
    // The second attempt, refused the same way, begins after the first is written back.
    let first = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(first.contains("535 5.7.8"), "{first}");
    wait_for_deferral(&server, "user@remote.test", 2);
    assert_no_notice(&server, 1);
    sink.reconfigure(|b| b.auth("user", "wrong"));
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    assert!(server.messages("postmaster").is_empty());
}

#[test]
fn relay_with_implicit_tls() {
    let sink = Sink::builder()
        .implicit_tls(true)
        .auth("user", "secret")
        .start();
    let dns = zone();
    let server = server(
        &dns,
        9,
        &["user@remote.test"],
        "",
        &relay_table(
            &sink,
            "implicit_tls = true\nusername = \"user\"\npassword = \"secret\"",
        ),
    );
    submit_fwd(&server, "Subject: 465\r\n\r\nimplicit\r\n");
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert!(messages[0].tls);
    assert_eq!(messages[0].auth_user.as_deref(), Some("user"));
    assert!(
        !sink.transcript().contains("C: STARTTLS"),
        "{}",
        sink.transcript()
    );
}

#[test]
fn relay_credentials_are_never_sent_without_tls() {
    let sink = Sink::builder()
        .tls(SinkTls::None)
        .auth("user", "secret")
        .start();
    let dns = zone();
    let server = server(
        &dns,
        9,
        &["user@remote.test"],
        "",
        &relay_table(&sink, "username = \"user\"\npassword = \"secret\""),
    );
    submit_fwd(&server, "Subject: relayed\r\n\r\nvia the relay\r\n");
    let first = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(first.contains("credentials without TLS"), "{first}");
    wait_for_deferral(&server, "user@remote.test", 2);
    assert_still_queued(&server, &sink);
    let transcript = sink.transcript();
    assert!(!transcript.contains("C: AUTH"), "{transcript}");
    assert!(!transcript.contains(&base64_plain("user", "secret")));
}

fn base64_plain(user: &str, password: &str) -> String {
    common::sink::base64_encode(format!("\0{user}\0{password}").as_bytes())
}

// ---------------------------------------------------------------------------------------
// 10. Routes
// ---------------------------------------------------------------------------------------

#[test]
fn route_for_a_domain_wins_over_mx_lookup() {
    let routed = Sink::builder().hostname("routed.test").start();
    let by_mx = Sink::builder().hostname("mx.remote.test").start();
    let dns = TestDns::builder()
        .mx("remote.test", 10, "mx.remote.test")
        .a("mx.remote.test", "127.0.0.1")
        .mx("mxonly.test", 10, "mx.mxonly.test")
        .a("mx.mxonly.test", "127.0.0.1")
        .start();
    let server = server(
        &dns,
        by_mx.addr.port(),
        &["user@remote.test", "user@mxonly.test"],
        "",
        &format!(
            "[[route]]\ndomain = \"remote.test\"\nhost = \"[127.0.0.1]:{}\"\n",
            routed.addr.port()
        ),
    );
    submit_fwd(&server, "Subject: routes\r\n\r\ntwo ways\r\n");
    routed.wait_for_messages(1);
    by_mx.wait_for_messages(1);
    server.wait_for_empty_queue();
    assert_eq!(
        assert_delivered_exactly(&routed, 1)[0].recipients(),
        ["user@remote.test"]
    );
    assert_eq!(
        assert_delivered_exactly(&by_mx, 1)[0].recipients(),
        ["user@mxonly.test"]
    );
    let queries = dns.queries();
    assert!(
        queries.iter().any(|(name, _)| name == "mxonly.test"),
        "the other domain is looked up: {queries:?}"
    );
    assert!(
        !queries
            .iter()
            .any(|(name, _)| name == "remote.test" || name == "mx.remote.test"),
        "no lookup for the routed domain: {queries:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 11. Connection reuse
// ---------------------------------------------------------------------------------------

/// Three messages for one destination: with one connection allowed per destination and the
/// first session slow to start (a proxy holds the greeting back half a second), the second
/// and third message are queued for the destination while the first connection is being
/// set up, and the worker takes them on the same connection.
#[test]
fn messages_for_one_destination_share_one_connection() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let proxy = slow_proxy(sink.addr, Duration::from_millis(500));
    let dns = zone();
    let server = server(
        &dns,
        proxy.port(),
        &["user@remote.test"],
        "max_connections_per_destination = 1",
        "",
    );
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    for n in 1..=3 {
        transaction(
            &mut client,
            &format!("<{LOCAL_SENDER}>"),
            &["<fwd@localhost>"],
            &format!("Subject: message {n}\r\n\r\nnumber {n}\r\n"),
        );
    }
    client.expect("QUIT", "221");
    sink.wait_for_messages(3);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 3);
    assert!(
        messages
            .iter()
            .all(|m| m.connection == messages[0].connection),
        "one connection: {:?}\n{}",
        messages.iter().map(|m| m.connection).collect::<Vec<_>>(),
        sink.transcript()
    );
    assert_eq!(sink.connections(), 1, "{}", sink.transcript());
    for n in 1..=3 {
        let body = format!("Subject: message {n}\r\n\r\nnumber {n}\r\n");
        assert!(
            messages.iter().any(|m| m.text().ends_with(&body)),
            "message {n} missing"
        );
    }
}

/// Mail that comes one message at a time: each delivery run ends with the queue empty, and
/// the next run takes the connection the last one left open (as Postfix's connection cache
/// does) instead of connecting, greeting and quitting again. Once nothing comes for the
/// idle limit (2 s), the connection is closed with QUIT.
#[test]
fn a_connection_left_idle_serves_the_next_message_then_is_closed() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: first\r\n\r\none\r\n");
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    submit_fwd(&server, "Subject: second\r\n\r\ntwo\r\n");
    sink.wait_for_messages(2);
    let messages = assert_delivered_exactly(&sink, 2);
    assert_eq!(
        messages[0].connection,
        messages[1].connection,
        "{}",
        sink.transcript()
    );
    let transcript = sink.wait_for_transcript("C: QUIT");
    assert_eq!(sink.connections(), 1, "{transcript}");
    assert_eq!(
        transcript.matches("* TLS established").count(),
        1,
        "one TLS handshake for both: {transcript}"
    );
}

/// A server that closed the idle connection (its own timeout, a restart) does not cost
/// the next message an attempt: the closed connection is passed over and the message goes
/// out at once on a new one, exactly once.
#[test]
fn an_idle_connection_the_server_closed_is_not_used() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let (proxy, open) = cutting_proxy(sink.addr);
    let dns = zone();
    let server = server(&dns, proxy.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: first\r\n\r\none\r\n");
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    for stream in open.lock().unwrap().drain(..) {
        let _ = stream.shutdown(Shutdown::Both);
    }
    submit_fwd(&server, "Subject: second\r\n\r\ntwo\r\n");
    sink.wait_for_messages(2);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 2);
    assert_ne!(
        messages[0].connection,
        messages[1].connection,
        "{}",
        sink.transcript()
    );
    assert!(
        !server.log().contains("result=\"deferred\""),
        "no attempt was lost to the closed connection:\n{}",
        server.log()
    );
}

/// A TCP proxy to `target` that keeps the client side of each connection it carries, so a
/// test can cut them all as a server closing idle connections would.
fn cutting_proxy(
    target: SocketAddr,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&open);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(handle) = client.try_clone() else {
                continue;
            };
            kept.lock().unwrap().push(handle);
            std::thread::spawn(move || {
                if let Ok(upstream) = TcpStream::connect(target) {
                    pipe(client, upstream);
                }
            });
        }
    });
    (addr, open)
}

// ---------------------------------------------------------------------------------------
// 12. CHUNKING
// ---------------------------------------------------------------------------------------

#[test]
fn content_is_identical_by_bdat_and_by_data() {
    let chunking = Sink::builder().hostname("chunk.test").start();
    let plain = Sink::builder()
        .hostname("plain.test")
        .extensions(&extensions_without(&["CHUNKING"]))
        .start();
    let dns = zone();
    let server = server(
        &dns,
        9,
        &["a@chunk.test", "b@plain.test"],
        "",
        &format!(
            "[[route]]\ndomain = \"chunk.test\"\nhost = \"[127.0.0.1]:{}\"\n\n\
             [[route]]\ndomain = \"plain.test\"\nhost = \"[127.0.0.1]:{}\"\n",
            chunking.addr.port(),
            plain.addr.port()
        ),
    );
    let original =
        "Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...three\r\nmiddle\r\n. \r\n.\r\nend\r\n";
    submit_fwd(&server, original);
    chunking.wait_for_messages(1);
    plain.wait_for_messages(1);
    server.wait_for_empty_queue();
    let by_bdat = &assert_delivered_exactly(&chunking, 1)[0];
    let by_data = &assert_delivered_exactly(&plain, 1)[0];
    assert!(by_bdat.bdat, "{}", chunking.transcript());
    assert!(!by_data.bdat, "{}", plain.transcript());
    assert!(by_bdat.text().ends_with(original), "{:?}", by_bdat.text());
    assert_eq!(
        by_bdat.content, by_data.content,
        "the same octets both ways"
    );
}

// ---------------------------------------------------------------------------------------
// 13. SIZE
// ---------------------------------------------------------------------------------------

#[test]
fn message_larger_than_the_advertised_size_bounces_with_5_3_4() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .extensions(&["PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES"])
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    let mut original = String::from("Subject: big\r\n\r\n");
    while original.len() < 5000 {
        original.push_str("0123456789012345678901234567890123456789012345678\r\n");
    }
    submit_fwd(&server, &original);
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    let recipient = report.recipient("rfc822; user@remote.test");
    assert_eq!(recipient.field("Action"), "failed");
    assert_eq!(recipient.field("Status"), "5.3.4");
    assert!(sink.messages().is_empty());
    assert!(
        !sink.transcript().contains("C: MAIL FROM"),
        "nothing is sent that the server said it would refuse:\n{}",
        sink.transcript()
    );
}

#[test]
fn size_parameter_gives_the_exact_length_when_size_is_advertised() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: sized\r\n\r\nhow big am I\r\n");
    let messages = sink.wait_for_messages(1);
    assert_eq!(
        messages[0].mail_param("SIZE"),
        Some(messages[0].content.len().to_string()),
        "{}",
        messages[0].mail_from
    );
    server.wait_for_empty_queue();
}

// ---------------------------------------------------------------------------------------
// 14. 8BITMIME
// ---------------------------------------------------------------------------------------

fn seven_bit_sink() -> Sink {
    Sink::builder()
        .hostname("mx.remote.test")
        .extensions(&extensions_without(&["8BITMIME"]))
        .start()
}

#[test]
fn eight_bit_body_to_a_hop_without_8bitmime_bounces_with_5_6_3() {
    let sink = seven_bit_sink();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}> BODY=8BITMIME"),
        &["<fwd@localhost>"],
        "Subject: eight bits\r\n\r\nCaf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e\r\n",
    );
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    let recipient = report.recipient("rfc822; user@remote.test");
    assert_eq!(recipient.field("Action"), "failed");
    assert_eq!(recipient.field("Status"), "5.6.3");
    assert!(sink.messages().is_empty());
}

#[test]
fn ascii_body_declared_8bitmime_is_delivered_without_body_parameter() {
    let sink = seven_bit_sink();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}> BODY=8BITMIME"),
        &["<fwd@localhost>"],
        "Subject: seven bits really\r\n\r\nplain ASCII\r\n",
    );
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    assert_eq!(
        messages[0].mail_param("BODY"),
        None,
        "{}",
        messages[0].mail_from
    );
    assert_no_notice(&server, 0);
}

// ---------------------------------------------------------------------------------------
// 15. SMTPUTF8
// ---------------------------------------------------------------------------------------

const UTF8_TARGET: &str = "\u{fc}ser@remote.test";

#[test]
fn non_ascii_forward_to_a_hop_without_smtputf8_bounces_with_5_6_7() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .extensions(&extensions_without(&["SMTPUTF8"]))
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &[UTF8_TARGET], "", "");
    submit_fwd(&server, "Subject: utf8\r\n\r\nto a non-ASCII mailbox\r\n");
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    let recipient = report.recipient(&format!("utf-8; {UTF8_TARGET}"));
    assert_eq!(recipient.field("Action"), "failed");
    assert_eq!(recipient.field("Status"), "5.6.7");
    assert!(sink.messages().is_empty());
}

#[test]
fn non_ascii_forward_to_a_hop_with_smtputf8_is_delivered_with_smtputf8() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &[UTF8_TARGET], "", "");
    submit_fwd(&server, "Subject: utf8\r\n\r\nto a non-ASCII mailbox\r\n");
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), [UTF8_TARGET]);
    assert_eq!(messages[0].mail_param("SMTPUTF8"), Some(String::new()));
    server.wait_for_empty_queue();
    assert_no_notice(&server, 0);
}

#[test]
fn smtputf8_message_to_a_non_ascii_forward_is_delivered_with_smtputf8() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &[UTF8_TARGET], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}> SMTPUTF8"),
        &["<fwd@localhost>"],
        "Subject: utf8\r\n\r\nto a non-ASCII mailbox\r\n",
    );
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), [UTF8_TARGET]);
    assert_eq!(messages[0].mail_param("SMTPUTF8"), Some(String::new()));
    server.wait_for_empty_queue();
    assert_no_notice(&server, 0);
}

// ---------------------------------------------------------------------------------------
// 16. DSN
// ---------------------------------------------------------------------------------------

#[test]
fn dsn_parameters_are_passed_to_a_hop_that_offers_dsn() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}> RET=HDRS ENVID=env+2Bid-42"),
        &["<fwd@localhost> NOTIFY=SUCCESS,FAILURE"],
        "Subject: dsn\r\n\r\nplease tell me\r\n",
    );
    let messages = sink.wait_for_messages(1);
    let message = &messages[0];
    assert_eq!(message.mail_param("RET"), Some("HDRS".to_string()));
    assert_eq!(message.mail_param("ENVID"), Some("env+2Bid-42".to_string()));
    assert_eq!(message.rcpt_to.len(), 1);
    let rcpt: Vec<&str> = message.rcpt_to[0].split(' ').collect();
    assert_eq!(rcpt[0], "<user@remote.test>");
    assert!(
        rcpt.contains(&"NOTIFY=SUCCESS,FAILURE"),
        "{}",
        message.rcpt_to[0]
    );
    assert!(
        rcpt.contains(&"ORCPT=rfc822;fwd@localhost"),
        "{}",
        message.rcpt_to[0]
    );
    server.wait_for_empty_queue();
    // The next hop took over the duty to report: no notice from us.
    assert_no_notice(&server, 0);
}

#[test]
fn success_request_to_a_hop_without_dsn_gets_a_relayed_notice() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .extensions(&extensions_without(&["DSN"]))
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}> ENVID=relay+2B1"),
        &["<fwd@localhost> NOTIFY=SUCCESS ORCPT=rfc822;fwd+2Btag@localhost"],
        "Subject: relayed notice\r\n\r\ntell me\r\n",
    );
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].mail_param("ENVID"), None);
    assert_eq!(messages[0].rcpt_to, ["<user@remote.test>"]);
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    assert_eq!(
        report.subject,
        "Mail Relayed: No Further Notice Will Follow"
    );
    assert_per_message_fields(&report);
    // ENVID and ORCPT are reported in their xtext form (RFC 3464 §2.2.1, §2.3.2).
    assert_eq!(
        report.per_message.field("Original-Envelope-Id"),
        "relay+2B1"
    );
    let recipient = report.recipient("rfc822; user@remote.test");
    assert_eq!(recipient.field("Action"), "relayed");
    assert_eq!(recipient.field("Status"), "2.0.0");
    assert_eq!(
        recipient.field("Original-Recipient"),
        "rfc822; fwd+2Btag@localhost"
    );
    assert_eq!(recipient.field("Remote-MTA"), "dns; mx.remote.test");
    assert_eq!(report.part_types[2], "text/rfc822-headers");
}

#[test]
fn local_delivery_with_notify_success_gets_a_delivered_notice() {
    let dns = zone();
    let server = server(&dns, 9, &["user@remote.test"], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}>"),
        &["<bob@localhost> NOTIFY=SUCCESS"],
        "Subject: for bob\r\n\r\nhello bob\r\n",
    );
    server.wait_for_messages("bob", 1);
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    assert_eq!(report.subject, "Successful Mail Delivery Report");
    assert_per_message_fields(&report);
    assert_eq!(report.recipients.len(), 1);
    let recipient = report.recipient("rfc822; bob@localhost");
    assert_eq!(recipient.field("Action"), "delivered");
    assert_eq!(recipient.field("Status"), "2.0.0");
    assert!(report.returned_text().contains("Subject: for bob"));
}

#[test]
fn notify_never_on_a_refused_recipient_sends_no_bounce() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .rcpt(|_| "550 5.1.1 no such user")
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit(
        &server,
        &format!("<{LOCAL_SENDER}>"),
        &["<fwd@localhost> NOTIFY=NEVER"],
        "Subject: silent\r\n\r\ndo not tell me\r\n",
    );
    wait_for_result(&server, "user@remote.test", "failed");
    server.wait_for_empty_queue();
    assert_no_notice(&server, 0);
    assert!(
        !server.settled_log().contains("notice queued"),
        "{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------
// 17. HELO fallback
// ---------------------------------------------------------------------------------------

#[test]
fn ehlo_refused_falls_back_to_helo_and_delivers() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .ehlo_unsupported(true)
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    let original = "Subject: old server\r\n\r\n.dot\r\nplain SMTP\r\n";
    submit_fwd(&server, original);
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let messages = assert_delivered_exactly(&sink, 1);
    let message = &messages[0];
    assert!(!message.ehlo);
    assert_eq!(message.helo, "mx.test");
    assert!(!message.bdat && !message.tls);
    assert_eq!(message.mail_from, format!("<{LOCAL_SENDER}>"));
    assert!(message.text().ends_with(original));
    assert!(sink.transcript().contains("C: HELO mx.test"));
}

// ---------------------------------------------------------------------------------------
// 18. Refusing greeting
// ---------------------------------------------------------------------------------------

#[test]
fn greeting_554_bounces() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .greeting("554 5.7.1 go away")
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: unwelcome\r\n\r\nno\r\n");
    let report = wait_for_notice(&server, 1);
    server.wait_for_empty_queue();
    let recipient = report.recipient("rfc822; user@remote.test");
    assert_eq!(recipient.field("Action"), "failed");
    assert_eq!(recipient.field("Status"), "5.7.1");
    assert_eq!(recipient.field("Remote-MTA"), "dns; mx.remote.test");
    assert_eq!(
        recipient.field("Diagnostic-Code"),
        "smtp; 554 5.7.1 go away"
    );
    assert!(sink.messages().is_empty());
}

#[test]
fn greeting_421_defers_then_delivers() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .greeting("421 4.3.2 busy, come back later")
        .start();
    let dns = zone();
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "", "");
    submit_fwd(&server, "Subject: busy\r\n\r\nlater\r\n");
    let first = wait_for_deferral(&server, "user@remote.test", 1);
    assert!(first.contains("421 4.3.2"), "{first}");
    assert_still_queued(&server, &sink);
    sink.reconfigure(|b| b.greeting("220 mx.remote.test ESMTP ready"));
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    assert_delivered_exactly(&sink, 1);
    assert_no_notice(&server, 0);
}
