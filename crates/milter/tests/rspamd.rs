//! Interop with a real filter: Debian's rspamd, started privately on loopback by the test
//! (`posthorn_testkit::rspamd`), fed whole messages through `MilterClient`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use posthorn_milter::codec::SmtpReply;
use posthorn_milter::{
    Decision, HeaderField, Macros, MilterClient, MilterStream, Options, Outcome,
};
use posthorn_testkit::rspamd::{ADD_HEADER_SUBJECT, GTUBE, Rspamd};

/// Opens a connection to rspamd and feeds it one SMTP session up to the message's end.
/// Returns the client, the outcome and the header section with the outcome's edits.
async fn scan(
    rspamd: &Rspamd,
    subject: &str,
    body: &str,
) -> (MilterClient<MilterStream>, Outcome, Vec<HeaderField>) {
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
    assert_eq!(
        milter
            .connect("client.example", Some(client), &connect)
            .await
            .unwrap(),
        Decision::Continue
    );
    assert_eq!(
        milter.helo("client.example", &Macros::new()).await.unwrap(),
        Decision::Continue
    );
    let mail = Macros::new()
        .with("i", "4XqTest1")
        .with("{mail_addr}", "sender@example.org");
    assert_eq!(
        milter.mail("sender@example.org", &[], &mail).await.unwrap(),
        Decision::Continue
    );
    let rcpt = Macros::new().with("{rcpt_addr}", "rcpt@example.net");
    assert_eq!(
        milter.rcpt("rcpt@example.net", &[], &rcpt).await.unwrap(),
        Decision::Continue
    );
    assert_eq!(
        milter
            .data(&Macros::new().with("i", "4XqTest1"))
            .await
            .unwrap(),
        Decision::Continue
    );
    let section = format!(
        "From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\nSubject: {subject}\r\n\
         Message-ID: <1@example.org>\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\n"
    );
    let mut fields = HeaderField::parse_section(section.as_bytes()).unwrap();
    for field in &fields {
        assert_eq!(
            milter.header(&field.name, &field.value).await.unwrap(),
            Decision::Continue
        );
    }
    milter.end_of_headers(&Macros::new()).await.unwrap();
    milter.body(body.as_bytes()).await.unwrap();
    let outcome = milter
        .end_of_message(&Macros::new().with("i", "4XqTest1"))
        .await
        .unwrap();
    outcome.apply_header_edits(&mut fields);
    (milter, outcome, fields)
}

#[tokio::test]
async fn rspamd_rejects_gtube_adds_a_header_to_spam_and_passes_the_rest() {
    let rspamd = Rspamd::start();

    let (milter, outcome, _) = scan(&rspamd, "test", &format!("Hello\r\n{GTUBE}\r\n")).await;
    assert_eq!(milter.negotiated().version, 6);
    assert_eq!(
        outcome,
        Outcome::decided(Decision::Reply(SmtpReply {
            code: 554,
            lines: vec!["5.7.1 Gtube pattern".into()],
        })),
        "rspamd's log:\n{}",
        rspamd.log()
    );
    milter.quit().await.unwrap();

    let (milter, outcome, fields) = scan(&rspamd, ADD_HEADER_SUBJECT, "Hello\r\n").await;
    assert!(!outcome.decision.is_refusal(), "{outcome:?}");
    assert_eq!(
        fields.last(),
        Some(&HeaderField::new("X-Spam", " Yes")),
        "{outcome:?}\nrspamd's log:\n{}",
        rspamd.log()
    );
    milter.quit().await.unwrap();

    let (milter, outcome, fields) = scan(&rspamd, "fine", "Hello\r\n").await;
    assert!(!outcome.decision.is_refusal(), "{outcome:?}");
    assert!(outcome.modifications.is_empty(), "{outcome:?}");
    assert_eq!(fields.len(), 5);
    milter.quit().await.unwrap();
}
