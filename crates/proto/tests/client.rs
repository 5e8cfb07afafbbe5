//! The SMTP client state machine against scripted server replies: what it writes and what
//! it reports, step by step.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use posthorn_proto::client::{Client, DotStuffer, Event, Outgoing, Stage, TransactionEnd, Waiting};

/// Feeds `replies` and returns every event until none is left.
fn events(client: &mut Client, replies: &str) -> Vec<Event> {
    client.feed(replies.as_bytes());
    let mut events = Vec::new();
    while let Some(event) = client.next_event().expect("well-formed replies") {
        events.push(event);
    }
    events
}

/// Takes what the client wrote.
fn written(client: &mut Client) -> String {
    let out = String::from_utf8(client.output().to_vec()).unwrap();
    client.clear_output();
    out
}

const EHLO_FULL: &str = "250-mx.remote\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
                         250-DSN\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n";
const EHLO_BARE: &str = "250 mx.remote\r\n";

fn ready(ehlo: &str) -> Client {
    let mut client = Client::new("posthorn.test");
    assert_eq!(client.waiting(), Some(Waiting::Greeting));
    assert!(events(&mut client, "220 mx.remote ESMTP\r\n").is_empty());
    assert_eq!(written(&mut client), "EHLO posthorn.test\r\n");
    assert_eq!(events(&mut client, ehlo), [Event::Ready]);
    client
}

fn message(recipients: &[&str], chunk_len: Option<u64>) -> Outgoing {
    Outgoing {
        from: "a@here.test".into(),
        mail_params: vec!["SIZE=10".into()],
        recipients: recipients
            .iter()
            .map(|r| (r.to_string(), vec!["NOTIFY=FAILURE".to_string()]))
            .collect(),
        chunk_len,
    }
}

#[test]
fn capabilities_come_from_ehlo() {
    let client = ready(EHLO_FULL);
    let caps = client.capabilities();
    assert_eq!(caps.name, "mx.remote");
    assert!(caps.pipelining && caps.chunking && caps.dsn && caps.starttls && caps.smtputf8);
    assert_eq!(caps.size, Some(1000));
    assert_eq!(caps.auth, ["PLAIN", "LOGIN"]);
}

#[test]
fn pipelined_transaction_writes_everything_at_once() {
    let mut client = ready(EHLO_FULL);
    client.send(message(&["b@there.test", "c@there.test"], None));
    assert_eq!(
        written(&mut client),
        "MAIL FROM:<a@here.test> SIZE=10\r\nRCPT TO:<b@there.test> NOTIFY=FAILURE\r\n\
         RCPT TO:<c@there.test> NOTIFY=FAILURE\r\nDATA\r\n"
    );
    let got = events(
        &mut client,
        "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n354 go\r\n",
    );
    assert!(matches!(&got[0], Event::Recipient(0, r) if r.code == 250));
    assert!(matches!(&got[1], Event::Recipient(1, r) if r.code == 550));
    assert_eq!(got[2], Event::SendContent);
    assert_eq!(client.waiting(), None);
    let mut out = Vec::new();
    let mut stuffer = DotStuffer::default();
    stuffer.stuff(b"Subject: x\r\n\r\n.hi\r\n", &mut out);
    stuffer.finish(&mut out);
    assert_eq!(out, b"Subject: x\r\n\r\n..hi\r\n.\r\n");
    client.content_sent();
    assert_eq!(client.waiting(), Some(Waiting::ContentEnd));
    let got = events(&mut client, "250 2.0.0 queued\r\n");
    assert!(matches!(&got[0], Event::Done(TransactionEnd::Content(r)) if r.code == 250));
}

#[test]
fn without_pipelining_commands_wait_for_replies() {
    let mut client = ready(EHLO_BARE);
    client.send(message(&["b@there.test", "c@there.test"], None));
    assert_eq!(written(&mut client), "MAIL FROM:<a@here.test> SIZE=10\r\n");
    events(&mut client, "250 ok\r\n");
    assert_eq!(
        written(&mut client),
        "RCPT TO:<b@there.test> NOTIFY=FAILURE\r\n"
    );
    events(&mut client, "250 ok\r\n");
    assert_eq!(
        written(&mut client),
        "RCPT TO:<c@there.test> NOTIFY=FAILURE\r\n"
    );
    events(&mut client, "250 ok\r\n");
    assert_eq!(written(&mut client), "DATA\r\n");
    assert_eq!(client.waiting(), Some(Waiting::DataStart));
    assert_eq!(events(&mut client, "354 go\r\n"), [Event::SendContent]);
}

#[test]
fn all_recipients_refused_sends_no_data_and_resets_before_the_next() {
    let mut client = ready(EHLO_BARE);
    client.send(message(&["b@there.test"], None));
    written(&mut client);
    events(&mut client, "250 ok\r\n");
    written(&mut client);
    let got = events(&mut client, "550 5.1.1 no\r\n");
    assert!(matches!(
        got.last(),
        Some(Event::Done(TransactionEnd::NoRecipients))
    ));
    assert_eq!(written(&mut client), "");
    client.send(message(&["d@there.test"], None));
    assert_eq!(written(&mut client), "RSET\r\n");
    events(&mut client, "250 ok\r\n");
    assert_eq!(written(&mut client), "MAIL FROM:<a@here.test> SIZE=10\r\n");
}

#[test]
fn pipelined_all_refused_then_data_refused_is_no_recipients() {
    let mut client = ready(EHLO_FULL);
    client.send(message(&["b@there.test"], None));
    written(&mut client);
    let got = events(
        &mut client,
        "250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n",
    );
    assert!(matches!(
        got.last(),
        Some(Event::Done(TransactionEnd::NoRecipients))
    ));
    client.send(message(&["d@there.test"], None));
    assert!(written(&mut client).starts_with("RSET\r\nMAIL FROM:"));
}

#[test]
fn pipelined_all_refused_but_354_sends_an_empty_message() {
    let mut client = ready(EHLO_FULL);
    client.send(message(&["b@there.test"], None));
    written(&mut client);
    let got = events(&mut client, "250 ok\r\n550 no\r\n354 go\r\n");
    assert!(!got.contains(&Event::SendContent));
    assert_eq!(written(&mut client), ".\r\n");
    let got = events(&mut client, "250 ok\r\n");
    assert!(matches!(
        got.last(),
        Some(Event::Done(TransactionEnd::NoRecipients))
    ));
}

#[test]
fn refused_mail_is_reported_once_after_pipelined_replies() {
    let mut client = ready(EHLO_FULL);
    client.send(message(&["b@there.test", "c@there.test"], None));
    written(&mut client);
    let got = events(
        &mut client,
        "452 4.3.1 full\r\n503 no\r\n503 no\r\n503 no\r\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(&got[0], Event::Done(TransactionEnd::MailRefused(r)) if r.code == 452));
    let mut client = ready(EHLO_BARE);
    client.send(message(&["b@there.test"], None));
    written(&mut client);
    let got = events(&mut client, "550 5.7.1 no\r\n");
    assert!(matches!(&got[0], Event::Done(TransactionEnd::MailRefused(r)) if r.code == 550));
    assert_eq!(written(&mut client), "");
}

#[test]
fn chunking_waits_for_recipients_then_sends_bdat() {
    let mut client = ready(EHLO_FULL);
    client.send(message(&["b@there.test"], Some(42)));
    assert!(!written(&mut client).contains("DATA"));
    let got = events(&mut client, "250 ok\r\n250 ok\r\n");
    assert_eq!(got.last(), Some(&Event::SendContent));
    assert_eq!(written(&mut client), "BDAT 42 LAST\r\n");
    client.content_sent();
    let got = events(&mut client, "250 2.0.0 ok\r\n");
    assert!(matches!(&got[0], Event::Done(TransactionEnd::Content(r)) if r.code == 250));
}

#[test]
fn data_command_refused() {
    let mut client = ready(EHLO_FULL);
    client.send(message(&["b@there.test"], None));
    written(&mut client);
    let got = events(&mut client, "250 ok\r\n250 ok\r\n451 4.3.0 later\r\n");
    assert!(
        matches!(got.last(), Some(Event::Done(TransactionEnd::DataRefused(r))) if r.code == 451)
    );
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let mut client = Client::new("posthorn.test");
    events(&mut client, "220 old.remote\r\n");
    written(&mut client);
    assert!(events(&mut client, "500 5.5.1 what\r\n").is_empty());
    assert_eq!(written(&mut client), "HELO posthorn.test\r\n");
    assert_eq!(events(&mut client, "250 old.remote\r\n"), [Event::Ready]);
    assert!(!client.capabilities().esmtp);
    assert!(!client.capabilities().pipelining);
}

#[test]
fn greeting_refusal_and_temporary_ehlo_failure() {
    let mut client = Client::new("posthorn.test");
    let got = events(&mut client, "554 5.7.1 go away\r\n");
    assert!(matches!(&got[0], Event::Refused(Stage::Greeting, r) if r.code == 554));
    let mut client = Client::new("posthorn.test");
    events(&mut client, "220 x\r\n");
    let got = events(&mut client, "421 4.3.2 busy\r\n");
    assert!(matches!(&got[0], Event::Refused(Stage::Hello, r) if r.code == 421));
}

#[test]
fn starttls_then_ehlo_again() {
    let mut client = ready(EHLO_FULL);
    client.start_tls();
    assert_eq!(written(&mut client), "STARTTLS\r\n");
    assert_eq!(
        events(&mut client, "220 2.0.0 go ahead\r\n"),
        [Event::StartTls]
    );
    client.tls_established();
    assert_eq!(written(&mut client), "EHLO posthorn.test\r\n");
    assert_eq!(events(&mut client, EHLO_BARE), [Event::Ready]);
    let mut client = ready(EHLO_FULL);
    client.start_tls();
    let got = events(&mut client, "454 4.7.0 no tls\r\n");
    assert!(matches!(&got[0], Event::Refused(Stage::StartTls, _)));
}

#[test]
fn auth_plain_and_login() {
    let mut client = ready(EHLO_FULL);
    client.authenticate("user", "pw");
    assert_eq!(written(&mut client), "AUTH PLAIN AHVzZXIAcHc=\r\n");
    assert_eq!(events(&mut client, "235 2.7.0 ok\r\n"), [Event::Ready]);

    let mut client = ready("250-mx\r\n250 AUTH LOGIN\r\n");
    client.authenticate("user", "pw");
    assert_eq!(written(&mut client), "AUTH LOGIN\r\n");
    events(&mut client, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(written(&mut client), "dXNlcg==\r\n");
    events(&mut client, "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(written(&mut client), "cHc=\r\n");
    assert_eq!(events(&mut client, "235 ok\r\n"), [Event::Ready]);

    let mut client = ready(EHLO_FULL);
    client.authenticate("user", "bad");
    written(&mut client);
    let got = events(&mut client, "535 5.7.8 bad credentials\r\n");
    assert!(matches!(&got[0], Event::Refused(Stage::Auth, r) if r.code == 535));
}

#[test]
fn two_transactions_on_one_connection() {
    let mut client = ready(EHLO_FULL);
    for round in 0..2 {
        client.send(message(&["b@there.test"], None));
        let out = written(&mut client);
        if round == 0 {
            assert!(out.starts_with("MAIL FROM:"), "{out}");
            events(&mut client, "250 ok\r\n");
        } else {
            assert!(
                out.starts_with("RSET\r\nMAIL FROM:"),
                "RSET between transactions: {out}"
            );
            events(&mut client, "250 reset\r\n250 ok\r\n");
        }
        let got = events(&mut client, "250 ok\r\n354 go\r\n");
        assert_eq!(got.last(), Some(&Event::SendContent));
        client.content_sent();
        let got = events(&mut client, "250 ok\r\n");
        assert!(matches!(&got[0], Event::Done(TransactionEnd::Content(_))));
    }
    client.quit();
    assert_eq!(written(&mut client), "QUIT\r\n");
    assert_eq!(events(&mut client, "221 bye\r\n"), [Event::Closed]);
}

#[test]
fn unsolicited_or_malformed_replies_are_errors() {
    let mut client = ready(EHLO_FULL);
    client.feed(b"250 surprise\r\n");
    assert!(client.next_event().is_err());
    let mut client = Client::new("x");
    client.feed(b"hello there\r\n");
    assert!(client.next_event().is_err());
}
