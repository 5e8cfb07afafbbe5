//! Milters end to end: the real server with a second mx listener that names its filters
//! (`[[milter]]`, `listener.milters`), real filters on loopback (Debian's rspamd from
//! `posthorn_testkit::rspamd`, scripted ones from `posthorn_testkit::scripted_milter`),
//! and a raw SMTP client. Each test reads the SMTP reply, the mailboxes and, where the
//! decision leaves nothing else behind, the log.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::mailbox::{listeners, maildir_files, subject_of};
use common::{Client, Options, PATIENCE, TestServer, list_files, split_message};
use posthorn_milter::codec::{Actions, Command, Negotiation, Protocol, Reply, SmtpReply};
use posthorn_testkit::postfix::free_port;
use posthorn_testkit::rspamd::{ADD_HEADER_SUBJECT, GTUBE, Rspamd};
use posthorn_testkit::scripted_milter::{Answer, MilterScript, ScriptedMilter};

const SENDER: &str = "sender@example.org";
const POSTMASTER: &str = "postmaster@localhost";
const BOB: &str = "bob@localhost";

/// The header fields we put above the content, in order: the delivery's trace, ours, and
/// the checking stage's verdict.
const OURS: [&str; 7] = [
    "Return-Path",
    "Delivered-To",
    "Received",
    "X-Spam-Flag",
    "X-Spam-Status",
    "X-Spam-Virus",
    "X-Posthorn-Checks",
];

/// A running server whose second mx listener hands its mail to filters; local accounts
/// `postmaster` and `bob`.
struct Filtered {
    server: TestServer,
    /// The filtered listener.
    addr: SocketAddr,
}

impl Filtered {
    /// `milters` holds the `[[milter]]` tables; the listener names `names`, in order.
    fn start(milters: &str, names: &[&str]) -> Filtered {
        let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        let server = Options::default()
            .config(&format!(
                "[[account]]\nname = \"postmaster\"\n\n[[account]]\nname = \"bob\"\n\n\
                 {milters}\n\
                 [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:0\"\nmilters = [{}]\n",
                names.join(", ")
            ))
            .start();
        let addr = listeners(&server, "mx")[1];
        Filtered { server, addr }
    }

    /// A server whose listener has one filter, `milter`, with `settings` besides its name
    /// and address.
    fn with(milter: &ScriptedMilter, settings: &str) -> Filtered {
        Filtered::start(
            &milter_table("scripted", milter.addr(), settings),
            &["scripted"],
        )
    }

    /// A client of the filtered listener, greeted.
    fn client(&self) -> Client {
        Client::greeted(self.addr)
    }

    /// Sends `content` from [`SENDER`] to `to` over a new connection; the final reply.
    fn send(&self, to: &[&str], content: &str) -> String {
        self.client().send_message(SENDER, to, content)
    }

    /// The one message `account` receives, once delivered.
    fn delivered(&self, account: &str) -> Vec<u8> {
        let mut messages = self.server.wait_for_messages(account, 1);
        assert_eq!(messages.len(), 1, "{account}'s messages");
        messages.remove(0)
    }

    /// Asserts that no message was committed or delivered. Called after the final reply,
    /// which a committed message gets only once its spool file is durable: it is then in
    /// the queue or, once delivered, in a mailbox, so looking in that order cannot miss it.
    fn assert_nothing_delivered(&self) {
        assert_eq!(self.server.queued_messages(), Vec::<String>::new());
        for account in ["postmaster", "bob"] {
            assert!(
                self.server.messages(account).is_empty(),
                "{account} got mail"
            );
            let junk = self.server.maildir(account).join(".Junk").join("new");
            assert!(list_files(&junk).is_empty(), "{account}'s Junk got mail");
        }
    }

    /// The log line containing `needle` (the whole log settled first).
    fn log_line(&self, needle: &str) -> String {
        let log = self.server.settled_log();
        log.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{log}"))
            .to_string()
    }
}

/// A `[[milter]]` table for a filter at `addr`.
fn milter_table(name: &str, addr: SocketAddr, settings: &str) -> String {
    format!("[[milter]]\nname = \"{name}\"\naddress = \"inet:{addr}\"\n{settings}\n")
}

/// What a scripted filter answers to negotiation: version 6, every action, every stage
/// sent and answered.
fn choice() -> Negotiation {
    Negotiation {
        version: 6,
        actions: Actions::ALL,
        protocol: Protocol::default(),
        macro_lists: Vec::new(),
    }
}

/// A scripted filter that lets every stage pass and answers the end of the message with
/// `replies`.
fn answering_end(replies: Vec<Reply>) -> ScriptedMilter {
    answering_at(|command| matches!(command, Command::EndOfBody), replies)
}

/// A scripted filter answering the commands `at` picks with `replies` and every other
/// with continue.
fn answering_at(
    at: impl Fn(&Command<'_>) -> bool + Send + 'static,
    replies: Vec<Reply>,
) -> ScriptedMilter {
    ScriptedMilter::start(MilterScript::new(choice()).respond(move |command| {
        if at(command) {
            Answer::Replies(replies.clone())
        } else {
            Answer::Default
        }
    }))
}

/// Today's date, the same for every message of the run, so a message made twice is the
/// same message.
fn test_date() -> &'static str {
    static DATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DATE.get_or_init(common::date_now)
}

/// A well-formed message to the postmaster (the checking stage finds nothing in it).
fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: postmaster@localhost\r\nSubject: {subject}\r\n\
         Date: {}\r\nMessage-ID: <1@example.org>\r\n\r\n{body}",
        test_date()
    )
}

/// `content` with `field` (a whole line) put right before the empty line.
fn with_field_at_end(content: &str, field: &str) -> String {
    let (section, body) = content.split_once("\r\n\r\n").unwrap();
    format!("{section}\r\n{field}\r\n\r\n{body}")
}

/// A delivered message split into the fields we put above the content (up to and with
/// `X-Posthorn-Checks`, the last of them) and the content as the filters left it.
fn split_ours(delivered: &[u8]) -> (String, String) {
    let mut text = String::from_utf8(delivered.to_vec()).expect("UTF-8 message");
    let mut end = text
        .find("\r\nX-Posthorn-Checks:")
        .unwrap_or_else(|| panic!("no X-Posthorn-Checks field:\n{text}"))
        + 2;
    // The field ends at the first line break that no folded line follows.
    loop {
        end += text[end..].find("\r\n").expect("end of field") + 2;
        if !text[end..].starts_with([' ', '\t']) {
            break;
        }
    }
    let content = text.split_off(end);
    (text, content)
}

/// The names of the fields of a header section, in order.
fn field_names(section: &str) -> Vec<String> {
    section
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with([' ', '\t']))
        .map(|line| line.split_once(':').expect("a field").0.to_string())
        .collect()
}

/// The delivered content, asserting that the fields above it are ours.
fn content_of(delivered: &[u8]) -> String {
    let (ours, content) = split_ours(delivered);
    assert_eq!(field_names(&ours), OURS, "{ours}");
    content
}

fn assert_queued(reply: &str) {
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
}

// --- rspamd -----------------------------------------------------------------------------

#[test]
fn rspamd_refuses_gtube_with_its_own_reply_marks_spam_and_passes_clean_mail() {
    let rspamd = Rspamd::start();
    let filtered = Filtered::start(
        &milter_table("rspamd", rspamd.milter_addr(), ""),
        &["rspamd"],
    );

    let gtube = message("gtube", &format!("Hello\r\n{GTUBE}\r\n"));
    let reply = filtered.send(&[POSTMASTER], &gtube);
    assert_eq!(
        reply,
        "554 5.7.1 Gtube pattern\r\n",
        "rspamd:\n{}",
        rspamd.log()
    );
    let refused = filtered.log_line("refused by milter");
    assert!(refused.contains("milter=rspamd"), "{refused}");
    filtered.assert_nothing_delivered();

    let spam = message(ADD_HEADER_SUBJECT, "Hello\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &spam));
    let clean = message("clean", "Hello\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &clean));
    let delivered = filtered.server.wait_for_messages("postmaster", 2);
    let by_subject = |subject: &str| {
        let found = delivered.iter().find(|m| subject_of(m) == subject);
        content_of(found.unwrap_or_else(|| panic!("no message {subject:?} delivered")))
    };
    assert_eq!(
        by_subject(ADD_HEADER_SUBJECT),
        with_field_at_end(&spam, "X-Spam: Yes"),
        "rspamd:\n{}",
        rspamd.log()
    );
    assert_eq!(by_subject("clean"), clean);
}

// --- Changes at the end of the message --------------------------------------------------

#[test]
fn an_added_header_field_ends_the_header_section() {
    let milter = answering_end(vec![
        Reply::AddHeader {
            name: "X-Filtered".into(),
            value: b"by the scripted milter".to_vec(),
        },
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("add", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    assert_eq!(
        content_of(&filtered.delivered("postmaster")),
        with_field_at_end(&sent, "X-Filtered: by the scripted milter")
    );
}

#[test]
fn a_header_field_inserted_at_index_0_opens_the_content() {
    let milter = answering_end(vec![
        Reply::InsertHeader {
            index: 0,
            name: "X-Top".into(),
            value: b"first\n\tand folded".to_vec(),
        },
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("insert", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    assert_eq!(
        content_of(&filtered.delivered("postmaster")),
        format!("X-Top: first\r\n\tand folded\r\n{sent}")
    );
}

#[test]
fn a_changed_header_field_is_the_named_occurrence() {
    let milter = answering_end(vec![
        Reply::ChangeHeader {
            index: 2,
            name: "X-Tag".into(),
            value: b"changed".to_vec(),
        },
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("change", "body\r\n").replacen(
        "\r\n\r\n",
        "\r\nX-Tag: one\r\nX-Tag: two\r\nX-Tag: three\r\n\r\n",
        1,
    );
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    assert_eq!(
        content_of(&filtered.delivered("postmaster")),
        sent.replace("X-Tag: two", "X-Tag: changed")
    );
}

#[test]
fn a_header_field_changed_to_nothing_is_deleted() {
    let milter = answering_end(vec![
        Reply::ChangeHeader {
            index: 1,
            name: "X-Remove-Me".into(),
            value: Vec::new(),
        },
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("delete", "body\r\n").replacen(
        "\r\n\r\n",
        "\r\nX-Remove-Me: secret\r\n\tfolded\r\n\r\n",
        1,
    );
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    assert_eq!(
        content_of(&filtered.delivered("postmaster")),
        message("delete", "body\r\n")
    );
}

/// A message larger than what a session holds in memory has been written to its spool
/// file while it arrived; a new body makes the whole file be written again.
#[test]
fn a_replaced_body_of_a_spilled_message_is_all_that_is_delivered() {
    const NEW_BODY: &str = "The filter's body.\r\nTwo lines.\r\n";
    let milter = answering_end(vec![
        Reply::ReplaceBody(NEW_BODY.as_bytes().to_vec()),
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let body: String = (0..6000)
        .map(|i| format!("line {i:05}: the original body, long enough to be spilled\r\n"))
        .collect();
    assert!(body.len() > 256 * 1024);
    let sent = message("replace", &body);
    assert_queued(&filtered.send(&[POSTMASTER], &sent));

    let delivered = filtered.delivered("postmaster");
    let content = content_of(&delivered);
    assert_eq!(content, message("replace", NEW_BODY));
    let (_, delivered_body) = split_message(&delivered);
    assert_eq!(delivered_body, NEW_BODY.as_bytes());
    // Maildir++ names a message's size (`,S=`): the new one, as written.
    let files = maildir_files(&filtered.server.maildir("postmaster"));
    assert!(
        files[0].0.ends_with(&format!(",S={}", delivered.len())),
        "{} holds {} octets",
        files[0].0,
        delivered.len()
    );
}

#[test]
fn an_added_recipient_gets_the_message_too() {
    let milter = answering_end(vec![
        Reply::AddRecipient(format!("<{BOB}>")),
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("add recipient", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    for (account, address) in [("postmaster", POSTMASTER), ("bob", BOB)] {
        let delivered = filtered.delivered(account);
        let (ours, content) = split_ours(&delivered);
        assert!(
            ours.contains(&format!("Delivered-To: {address}\r\n")),
            "{ours}"
        );
        assert_eq!(content, sent);
    }
    assert!(filtered.log_line(" accepted ").contains("recipients=2"));
}

#[test]
fn a_deleted_recipient_does_not_get_the_message() {
    let milter = answering_end(vec![
        Reply::DeleteRecipient(format!("<{BOB}>")),
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("delete recipient", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER, BOB], &sent));
    assert_eq!(content_of(&filtered.delivered("postmaster")), sent);
    filtered.server.wait_for_empty_queue();
    assert!(filtered.server.messages("bob").is_empty());
    assert!(filtered.log_line(" accepted ").contains("recipients=1"));
}

#[test]
fn a_changed_sender_is_the_return_path() {
    let milter = answering_end(vec![
        Reply::ChangeSender {
            sender: "<bounces@example.net>".into(),
            args: None,
        },
        Reply::Continue,
    ]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("change sender", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    let delivered = filtered.delivered("postmaster");
    let (ours, content) = split_ours(&delivered);
    assert!(
        ours.starts_with("Return-Path: <bounces@example.net>\r\n"),
        "{ours}"
    );
    assert_eq!(content, sent);
}

#[test]
fn a_quarantined_message_goes_to_junk() {
    let milter = answering_end(vec![Reply::Quarantine("looks odd".into()), Reply::Continue]);
    let filtered = Filtered::with(&milter, "");
    let sent = message("quarantine", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    let junk = filtered.server.maildir("postmaster").join(".Junk");
    let files = common::wait_until("a message in .Junk", || {
        let files = maildir_files(&junk);
        (!files.is_empty()).then_some(files)
    })
    .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(content_of(&files[0].1), sent);
    filtered.server.wait_for_empty_queue();
    assert!(filtered.server.messages("postmaster").is_empty());
    let line = filtered.log_line("quarantined by milter");
    assert!(line.contains("reason=\"looks odd\""), "{line}");
    let accepted = filtered.log_line(" accepted ");
    assert!(accepted.contains("quarantine=true"), "{accepted}");
}

#[test]
fn a_discarded_message_gets_250_and_goes_nowhere() {
    let milter = answering_end(vec![Reply::Discard]);
    let filtered = Filtered::with(&milter, "");
    assert_queued(&filtered.send(&[POSTMASTER], &message("discard", "body\r\n")));
    filtered.assert_nothing_delivered();
    let line = filtered.log_line("discarded by milter");
    assert!(line.contains("milter=scripted"), "{line}");
}

/// The filter answers the end of the message with `reply`: `expected` is our reply, and
/// nothing is delivered.
fn assert_refused(reply: Reply, expected: &str) {
    let milter = answering_end(vec![reply]);
    let filtered = Filtered::with(&milter, "");
    let answer = filtered.send(&[POSTMASTER], &message("refused", "body\r\n"));
    assert_eq!(answer, expected);
    filtered.assert_nothing_delivered();
    let line = filtered.log_line("refused by milter");
    assert!(line.contains("milter=scripted"), "{line}");
}

#[test]
fn a_rejected_message_gets_550_5_7_1() {
    assert_refused(Reply::Reject, "550 5.7.1 Message rejected by filter\r\n");
}

#[test]
fn a_tempfailed_message_gets_451_4_7_1() {
    assert_refused(
        Reply::Tempfail,
        "451 4.7.1 Temporary failure of the content filter check, try again later\r\n",
    );
}

#[test]
fn the_filters_own_reply_is_ours() {
    assert_refused(
        Reply::ReplyCode(SmtpReply {
            code: 553,
            lines: vec!["5.7.0 No thanks".into()],
        }),
        "553 5.7.0 No thanks\r\n",
    );
}

// --- Decisions before the end of the message --------------------------------------------

#[test]
fn a_filter_refusing_every_recipient_refuses_the_message() {
    let milter = answering_at(
        |command| matches!(command, Command::Rcpt(_)),
        vec![Reply::Reject],
    );
    let filtered = Filtered::with(&milter, "");
    let reply = filtered.send(&[POSTMASTER, BOB], &message("rcpt", "body\r\n"));
    assert_eq!(reply, "550 5.7.1 Message rejected by filter\r\n");
    filtered.assert_nothing_delivered();
    milter.wait_for_command(b'Q');
    // Both recipients were asked about; the content never went.
    assert_eq!(milter.codes().matches('R').count(), 2, "{}", milter.codes());
    assert!(!milter.codes().contains('T'), "{}", milter.codes());
}

#[test]
fn a_recipient_the_filter_refuses_is_left_out() {
    let milter = answering_at(
        |command| matches!(command, Command::Rcpt(args) if args.first().is_some_and(|a| a.starts_with(b"<bob"))),
        vec![Reply::Reject],
    );
    let filtered = Filtered::with(&milter, "");
    let sent = message("one refused", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER, BOB], &sent));
    assert_eq!(content_of(&filtered.delivered("postmaster")), sent);
    filtered.server.wait_for_empty_queue();
    assert!(filtered.server.messages("bob").is_empty());
    assert!(filtered.log_line(" accepted ").contains("recipients=1"));
}

#[test]
fn a_filter_rejecting_the_connection_refuses_the_message() {
    let milter = answering_at(
        |command| matches!(command, Command::Connect { .. }),
        vec![Reply::Reject],
    );
    let filtered = Filtered::with(&milter, "");
    let reply = filtered.send(&[POSTMASTER], &message("connect", "body\r\n"));
    assert_eq!(reply, "550 5.7.1 Message rejected by filter\r\n");
    filtered.assert_nothing_delivered();
    milter.wait_for_command(b'Q');
    assert_eq!(milter.codes(), "ODCQ");
}

// --- Filters that fail ------------------------------------------------------------------

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn a_filter_that_is_down_defers_the_message_when_it_must_tempfail() {
    let filtered = Filtered::start(
        &milter_table("down", closed_port(), "on_failure = \"tempfail\""),
        &["down"],
    );
    let reply = filtered.send(&[POSTMASTER], &message("down", "body\r\n"));
    assert_eq!(
        reply,
        "451 4.7.1 Temporary failure of the down filter check, try again later\r\n"
    );
    filtered.assert_nothing_delivered();
    let line = filtered.log_line("milter failed");
    assert!(
        line.contains("WARN") && line.contains("milter=down"),
        "{line}"
    );
}

#[test]
fn a_filter_that_is_down_is_skipped_when_it_may_accept() {
    let filtered = Filtered::start(
        &milter_table("down", closed_port(), "on_failure = \"accept\""),
        &["down"],
    );
    let sent = message("down", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    assert_eq!(content_of(&filtered.delivered("postmaster")), sent);
    let line = filtered.log_line("milter failed");
    assert!(
        line.contains("WARN") && line.contains("milter=down"),
        "{line}"
    );
}

/// A filter that stops answering at its first connection's CONNECT and behaves
/// afterwards.
fn stalling_once() -> ScriptedMilter {
    let stalled = AtomicBool::new(false);
    ScriptedMilter::start(
        MilterScript::new(choice()).respond(move |command| match command {
            Command::Connect { .. } if !stalled.swap(true, Ordering::SeqCst) => Answer::Stall,
            _ => Answer::Default,
        }),
    )
}

/// Sends a message to a filter that stalls past its 1 s command timeout, with
/// `on_failure`; the reply, after asserting the timeout is what ended the wait. The
/// same session then sends a message the filter passes, and quits.
fn send_past_a_stall(on_failure: &str) -> (Filtered, String) {
    let milter = stalling_once();
    let filtered = Filtered::with(
        &milter,
        &format!("command_timeout = \"1s\"\non_failure = \"{on_failure}\""),
    );
    let mut client = filtered.client();
    let started = Instant::now();
    let reply = client.send_message(SENDER, &[POSTMASTER], &message("stalled", "body\r\n"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < PATIENCE,
        "answered after {waited:?}"
    );
    let after = message("after", "body\r\n");
    assert_queued(&client.send_message(SENDER, &[BOB], &after));
    client.expect("QUIT", "221 ");
    assert_eq!(content_of(&filtered.delivered("bob")), after);
    let line = filtered.log_line("milter failed");
    assert!(line.contains("WARN") && line.contains("in time"), "{line}");
    (filtered, reply)
}

#[test]
fn a_stalled_filter_defers_the_message_and_the_session_goes_on() {
    let (filtered, reply) = send_past_a_stall("tempfail");
    assert_eq!(
        reply,
        "451 4.7.1 Temporary failure of the scripted filter check, try again later\r\n"
    );
    filtered.server.wait_for_empty_queue();
    assert!(filtered.server.messages("postmaster").is_empty());
}

#[test]
fn a_stalled_filter_is_skipped_when_it_may_accept_and_the_session_goes_on() {
    let (filtered, reply) = send_past_a_stall("accept");
    assert_queued(&reply);
    assert_eq!(
        content_of(&filtered.delivered("postmaster")),
        message("stalled", "body\r\n")
    );
}

// --- Several filters --------------------------------------------------------------------

#[test]
fn the_second_filter_sees_the_first_ones_changes() {
    let first = answering_end(vec![
        Reply::AddHeader {
            name: "X-First".into(),
            value: b"seen".to_vec(),
        },
        Reply::Continue,
    ]);
    let second = answering_end(vec![Reply::Continue]);
    let filtered = Filtered::start(
        &format!(
            "{}{}",
            milter_table("first", first.addr(), ""),
            milter_table("second", second.addr(), "")
        ),
        &["first", "second"],
    );
    let sent = message("two filters", "body\r\n");
    assert_queued(&filtered.send(&[POSTMASTER], &sent));
    let expected = with_field_at_end(&sent, "X-First: seen");
    assert_eq!(content_of(&filtered.delivered("postmaster")), expected);

    second.wait_for_command(b'E');
    let received = second.received();
    let fields: Vec<(String, String)> = received
        .iter()
        .filter_map(|r| match r.command() {
            Command::Header { name, value } => Some((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        fields.last(),
        Some(&("X-First".to_string(), "seen".to_string())),
        "{fields:?}"
    );
    assert_eq!(fields.len(), 6, "{fields:?}");
}

// --- Configuration ----------------------------------------------------------------------

#[test]
fn check_config_refuses_a_listener_naming_an_unknown_milter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ghost.toml");
    std::fs::write(
        &path,
        "[[milter]]\nname = \"rspamd\"\naddress = \"inet:127.0.0.1:11332\"\n\n\
         [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:2525\"\nmilters = [\"rspamd\"]\n\n\
         [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:2526\"\nmilters = [\"ghost\", \"rspamd\"]\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("key `listener[1].milters[0]` = \"ghost\""),
        "{stderr}"
    );
    assert!(stderr.contains("no [[milter]] has this name"), "{stderr}");
}

#[test]
fn posthorn_check_shows_what_the_mx_listeners_milters_decide() {
    let rspamd = Rspamd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("posthorn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n\n\
             [[milter]]\nname = \"rspamd\"\naddress = \"{}\"\n\n\
             [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:2525\"\nmilters = [\"rspamd\"]\n",
            dir.path().join("data").display(),
            rspamd.milter_address()
        ),
    )
    .unwrap();
    let check = |content: &str| {
        let path = dir.path().join("message.eml");
        std::fs::write(&path, content).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
            .args([
                "-c",
                config.to_str().unwrap(),
                "check",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let gtube = check(&message("gtube", &format!("Hello\r\n{GTUBE}\r\n")));
    assert_eq!(
        gtube,
        "verdict: reject by a milter (554 5.7.1 Gtube pattern)\n"
    );
    let clean = check(&message("clean", "Hello\r\n"));
    assert!(clean.starts_with("verdict: accept\n"), "{clean}");
}
