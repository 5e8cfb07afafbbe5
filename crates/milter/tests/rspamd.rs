//! Interop with a real filter: Debian's rspamd, started privately on loopback by the test
//! (`posthorn_testkit::rspamd`), fed whole messages through `MilterClient`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use posthorn_milter::codec::SmtpReply;
use posthorn_milter::{
    Decision, HeaderField, Macros, MilterClient, MilterStream, Options, Outcome,
};
use posthorn_testkit::rspamd::{ADD_HEADER_SUBJECT, GTUBE, Rspamd};

/// Opens a connection to rspamd and reports the SMTP client and its greeting.
async fn open(rspamd: &Rspamd) -> MilterClient<MilterStream> {
    let address = rspamd.milter_address().parse().unwrap();
    let mut milter = MilterClient::open(&address, Options::default())
        .await
        .unwrap();
    let client = "192.0.2.10:40000".parse().unwrap();
    let connect = Macros::new()
        .with("j", "mx.posthorn.test")
        .with("{daemon_name}", "posthorn")
        .with("{client_addr}", "192.0.2.10")
        .with("{client_name}", "client.example");
    let decision = milter
        .connect("client.example", Some(client), &connect)
        .await;
    assert_eq!(decision.unwrap(), Decision::Continue);
    let decision = milter.helo("client.example", &Macros::new()).await;
    assert_eq!(decision.unwrap(), Decision::Continue);
    milter
}

/// Feeds rspamd one message; returns the outcome and the header section with the
/// outcome's edits applied.
async fn scan(
    milter: &mut MilterClient<MilterStream>,
    subject: &str,
    body: &str,
) -> (Outcome, Vec<HeaderField>) {
    let queue_id = Macros::new().with("i", "4XqTest1");
    let mail = queue_id.clone().with("{mail_addr}", "sender@example.org");
    let decision = milter.mail("sender@example.org", &[], &mail).await;
    assert_eq!(decision.unwrap(), Decision::Continue);
    let rcpt = Macros::new().with("{rcpt_addr}", "rcpt@example.net");
    let decision = milter.rcpt("rcpt@example.net", &[], &rcpt).await;
    assert_eq!(decision.unwrap(), Decision::Continue);
    assert_eq!(milter.data(&queue_id).await.unwrap(), Decision::Continue);
    let section = format!(
        "From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\nSubject: {subject}\r\n\
         Message-ID: <1@example.org>\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\n"
    );
    let mut fields = HeaderField::parse_section(section.as_bytes()).unwrap();
    for field in &fields {
        let decision = milter.header(&field.name, &field.value).await;
        assert_eq!(decision.unwrap(), Decision::Continue);
    }
    milter.end_of_headers(&queue_id).await.unwrap();
    milter.body(body.as_bytes()).await.unwrap();
    let outcome = milter.end_of_message(&queue_id).await.unwrap();
    outcome.apply_header_edits(&mut fields);
    (outcome, fields)
}

#[tokio::test]
async fn rspamd_rejects_gtube_adds_a_header_to_spam_and_passes_the_rest() {
    let rspamd = Rspamd::start();
    let mut milter = open(&rspamd).await;
    assert_eq!(milter.negotiated().version, 6);

    let (outcome, _) = scan(&mut milter, "test", &format!("Hello\r\n{GTUBE}\r\n")).await;
    assert_eq!(
        outcome,
        Outcome::decided(Decision::Reply(SmtpReply {
            code: 554,
            lines: vec!["5.7.1 Gtube pattern".into()],
        })),
        "rspamd's log:\n{}",
        rspamd.log()
    );

    // The same connection carries the next messages, as it does for an SMTP session.
    let (outcome, fields) = scan(&mut milter, ADD_HEADER_SUBJECT, "Hello\r\n").await;
    assert!(!outcome.decision.is_refusal(), "{outcome:?}");
    assert_eq!(
        fields.last(),
        Some(&HeaderField::new("X-Spam", " Yes")),
        "{outcome:?}\nrspamd's log:\n{}",
        rspamd.log()
    );

    let (outcome, fields) = scan(&mut milter, "fine", "Hello\r\n").await;
    assert!(!outcome.decision.is_refusal(), "{outcome:?}");
    assert!(outcome.modifications.is_empty(), "{outcome:?}");
    assert_eq!(fields.len(), 5);

    // A message given up half-way (RSET) is aborted, and the next one is scanned.
    let decision = milter.mail("sender@example.org", &[], &Macros::new()).await;
    assert_eq!(decision.unwrap(), Decision::Continue);
    milter.abort().await.unwrap();
    let (outcome, _) = scan(&mut milter, "again", &format!("{GTUBE}\r\n")).await;
    assert!(outcome.decision.is_refusal(), "{outcome:?}");
    milter.quit().await.unwrap();
}
