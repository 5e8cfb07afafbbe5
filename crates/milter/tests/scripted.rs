//! `MilterClient` against a scripted filter (`posthorn_testkit::scripted_milter`) on
//! loopback: every action a filter can take at the end of a message, every decision, the
//! skip and no-reply flags, macro lists, early decisions, and filters that misbehave.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use posthorn_milter::codec::{
    Actions, Command, ConnectAddress, MacroStage, Negotiation, Protocol, Reply, SmtpReply,
};
use posthorn_milter::{
    Decision, HeaderEdit, HeaderField, Limits, Macros, MilterClient, MilterError, MilterStream,
    Modification, Options, Outcome, Timeouts,
};
use posthorn_testkit::scripted_milter::{Answer, MilterScript, ScriptedMilter};

const SECTION: &[u8] =
    b"Received: from a\r\nSubject: hello\r\n world\r\nreceived: from b\r\nTo: rcpt@example.net\r\n";

fn choice(actions: Actions, protocol: Protocol) -> Negotiation {
    Negotiation {
        version: 6,
        actions,
        protocol,
        macro_lists: Vec::new(),
    }
}

fn options() -> Options {
    Options {
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
            content: Duration::from_secs(5),
        },
        limits: Limits::default(),
    }
}

async fn open(milter: &ScriptedMilter, options: Options) -> MilterClient<MilterStream> {
    let address = format!("inet:{}", milter.addr()).parse().unwrap();
    MilterClient::open(&address, options).await.unwrap()
}

/// A whole session up to the end of the message: connect, HELO, MAIL, RCPT, DATA, the
/// fields of `SECTION`, the end of headers and `body`.
async fn feed(
    client: &mut MilterClient<MilterStream>,
    body: &[u8],
) -> Result<Outcome, MilterError> {
    let peer = "192.0.2.7:4567".parse().unwrap();
    let none = Macros::new();
    client
        .connect(
            "client.example",
            Some(peer),
            &Macros::new().with("j", "mx.test"),
        )
        .await?;
    client.helo("client.example", &none).await?;
    client
        .mail(
            "sender@example.org",
            &["BODY=8BITMIME"],
            &Macros::new().with("i", "Q1"),
        )
        .await?;
    client.rcpt("rcpt@example.net", &[], &none).await?;
    client.data(&none).await?;
    for field in HeaderField::parse_section(SECTION).unwrap() {
        client.header(&field.name, &field.value).await?;
    }
    client.end_of_headers(&none).await?;
    client.body(body).await?;
    client.end_of_message(&Macros::new().with("i", "Q1")).await
}

/// A filter that answers the end of the message with `replies` and everything else with
/// continue.
fn answering_eom(actions: Actions, protocol: Protocol, replies: Vec<Reply>) -> ScriptedMilter {
    ScriptedMilter::start(
        MilterScript::new(choice(actions, protocol)).respond(move |command| match command {
            Command::EndOfBody => Answer::Replies(replies.clone()),
            _ => Answer::Default,
        }),
    )
}

#[tokio::test]
async fn every_change_at_the_end_of_a_message_is_collected_in_order() {
    let milter = answering_eom(
        Actions::ALL,
        Protocol::default(),
        vec![
            Reply::Progress,
            Reply::AddHeader {
                name: "X-Added".into(),
                value: b"one\n\ttwo".to_vec(),
            },
            Reply::InsertHeader {
                index: 0,
                name: "X-Top".into(),
                value: b"first".to_vec(),
            },
            Reply::ChangeHeader {
                index: 2,
                name: "Received".into(),
                value: b"from c".to_vec(),
            },
            Reply::ChangeHeader {
                index: 1,
                name: "subject".into(),
                value: Vec::new(),
            },
            Reply::AddRecipient("<added@example.net>".into()),
            Reply::AddRecipientWithArgs {
                recipient: "<par@example.net>".into(),
                args: Some("NOTIFY=NEVER ORCPT=rfc822;x@y".into()),
            },
            Reply::DeleteRecipient("<rcpt@example.net>".into()),
            Reply::ReplaceBody(b"new ".to_vec()),
            Reply::ChangeSender {
                sender: "<>".into(),
                args: None,
            },
            Reply::Quarantine("suspicious".into()),
            Reply::ReplaceBody(b"body\r\n".to_vec()),
            Reply::Progress,
            Reply::Continue,
        ],
    );
    let mut client = open(&milter, options()).await;
    let outcome = feed(&mut client, b"old body\r\n").await.unwrap();
    assert_eq!(outcome.decision, Decision::Continue);
    assert_eq!(
        outcome.modifications,
        [
            Modification::Header(HeaderEdit::Add(HeaderField::new(
                "X-Added",
                " one\r\n\ttwo"
            ))),
            Modification::Header(HeaderEdit::Insert {
                index: 0,
                field: HeaderField::new("X-Top", " first"),
            }),
            Modification::Header(HeaderEdit::Change {
                index: 2,
                field: HeaderField::new("Received", " from c"),
            }),
            Modification::Header(HeaderEdit::Delete {
                index: 1,
                name: "subject".into(),
            }),
            Modification::AddRecipient {
                address: "added@example.net".into(),
                args: vec![],
            },
            Modification::AddRecipient {
                address: "par@example.net".into(),
                args: vec!["NOTIFY=NEVER".into(), "ORCPT=rfc822;x@y".into()],
            },
            Modification::DeleteRecipient("rcpt@example.net".into()),
            Modification::ReplaceBody(b"new body\r\n".to_vec()),
            Modification::ChangeSender {
                address: String::new(),
                args: vec![],
            },
            Modification::Quarantine("suspicious".into()),
        ]
    );
    assert_eq!(outcome.replacement_body(), Some(&b"new body\r\n"[..]));

    let mut fields = HeaderField::parse_section(SECTION).unwrap();
    outcome.apply_header_edits(&mut fields);
    let written: Vec<u8> = fields.iter().flat_map(HeaderField::to_bytes).collect();
    assert_eq!(
        String::from_utf8(written).unwrap(),
        "X-Top: first\r\nReceived: from a\r\nReceived: from c\r\nTo: rcpt@example.net\r\nX-Added: one\r\n\ttwo\r\n"
    );
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
}

#[tokio::test]
async fn the_filter_sees_each_stage_with_its_macros_and_wire_forms() {
    let milter = answering_eom(Actions::default(), Protocol::default(), vec![Reply::Accept]);
    let mut client = open(&milter, options()).await;
    feed(&mut client, b"body\r\n").await.unwrap();
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    assert_eq!(milter.codes(), "ODCHDMRTLLLLNBDEQ");
    let received = milter.received();
    let commands: Vec<Command<'_>> = received.iter().map(|r| r.command()).collect();
    assert_eq!(
        commands[1],
        Command::Macros {
            command: b'C',
            pairs: vec![(b"j", b"mx.test")],
        }
    );
    assert_eq!(
        commands[2],
        Command::Connect {
            hostname: b"client.example",
            address: ConnectAddress::Ip("192.0.2.7:4567".parse().unwrap()),
        }
    );
    assert_eq!(
        commands[5],
        Command::Mail(vec![b"<sender@example.org>", b"BODY=8BITMIME"])
    );
    assert_eq!(commands[6], Command::Rcpt(vec![b"<rcpt@example.net>"]));
    // One space after the colon is left out and folds are bare LF (no SMFIP_HDR_LEADSPC).
    assert_eq!(
        commands[9],
        Command::Header {
            name: b"Subject",
            value: b"hello\n world",
        }
    );
    assert_eq!(commands[13], Command::Body(b"body\r\n"));
}

#[tokio::test]
async fn each_final_decision_reaches_the_outcome() {
    let refusal = SmtpReply {
        code: 550,
        lines: vec!["5.7.1 first line".into(), "5.7.1 second line".into()],
    };
    for (reply, decision) in [
        (Reply::Accept, Decision::Accept),
        (Reply::Continue, Decision::Continue),
        (Reply::Discard, Decision::Discard),
        (Reply::Reject, Decision::Reject),
        (Reply::Tempfail, Decision::Tempfail),
        (Reply::Shutdown, Decision::Shutdown),
        (
            Reply::ReplyCode(refusal.clone()),
            Decision::Reply(refusal.clone()),
        ),
    ] {
        let milter = answering_eom(Actions::default(), Protocol::default(), vec![reply]);
        let mut client = open(&milter, options()).await;
        let outcome = feed(&mut client, b"x\r\n").await.unwrap();
        assert_eq!(outcome, Outcome::decided(decision));
    }
    assert_eq!(
        refusal.to_smtp(),
        "550-5.7.1 first line\r\n550 5.7.1 second line\r\n"
    );
}

#[tokio::test]
async fn stages_the_filter_skips_are_not_sent_and_unanswered_ones_not_awaited() {
    let skips = Protocol::NO_CONNECT
        | Protocol::NO_HELO
        | Protocol::NO_RCPT
        | Protocol::NO_DATA
        | Protocol::NO_END_OF_HEADERS
        | Protocol::NO_UNKNOWN;
    let no_replies = Protocol::NO_REPLY_MAIL | Protocol::NO_REPLY_HEADER | Protocol::NO_REPLY_BODY;
    let milter = answering_eom(Actions::default(), skips | no_replies, vec![Reply::Accept]);
    let mut client = open(&milter, options()).await;
    assert_eq!(client.unknown("XYZZY").await.unwrap(), Decision::Continue);
    let outcome = feed(&mut client, &vec![b'a'; 70_000]).await.unwrap();
    assert_eq!(outcome.decision, Decision::Accept);
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    // Macros still go out for skipped stages (a filter may read them later); the
    // scripted filter answered nothing but the end of the message, or the client would
    // have read a stray CONTINUE as the answer to the next stage.
    assert_eq!(milter.codes(), "ODDMLLLLBBDEQ");

    let milter = answering_eom(
        Actions::default(),
        Protocol::NO_BODY | Protocol::NO_HEADERS,
        vec![Reply::Accept],
    );
    let mut client = open(&milter, options()).await;
    feed(&mut client, b"body\r\n").await.unwrap();
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    assert_eq!(milter.codes(), "ODCHDMRTNDEQ");
}

#[tokio::test]
async fn skip_ends_the_body_early_when_negotiated() {
    let milter = ScriptedMilter::start(
        MilterScript::new(choice(Actions::default(), Protocol::SKIP)).respond(|command| {
            match command {
                Command::Body(_) => Answer::Replies(vec![Reply::Skip]),
                _ => Answer::Default,
            }
        }),
    );
    let mut client = open(&milter, options()).await;
    let outcome = feed(&mut client, &vec![b'a'; 200_000]).await.unwrap();
    assert_eq!(outcome.decision, Decision::Continue);
    assert_eq!(client.body(b"more").await.unwrap(), Decision::Continue);
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    assert_eq!(milter.codes().matches('B').count(), 1);
    assert!(milter.codes().ends_with("BDEQ"));

    // Without SMFIP_SKIP, a SKIP is a protocol error.
    let milter = ScriptedMilter::start(
        MilterScript::new(choice(Actions::default(), Protocol::default())).respond(|command| {
            match command {
                Command::Body(_) => Answer::Replies(vec![Reply::Skip]),
                _ => Answer::Default,
            }
        }),
    );
    let mut client = open(&milter, options()).await;
    let error = feed(&mut client, &vec![b'a'; 70_000]).await.unwrap_err();
    assert!(
        matches!(
            error,
            MilterError::Unexpected {
                stage: "BODY",
                reply: "SMFIR_SKIP"
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn macro_lists_limit_what_is_sent_per_stage() {
    let mut negotiation = choice(Actions::SET_MACRO_LISTS, Protocol::default());
    negotiation.macro_lists = vec![
        (MacroStage::Connect, "{client_addr}".into()),
        (MacroStage::EndOfMessage, "{nothing}".into()),
    ];
    let milter = ScriptedMilter::start(MilterScript::new(negotiation));
    let mut client = open(&milter, options()).await;
    let connect = Macros::new()
        .with("j", "mx.test")
        .with("client_addr", "192.0.2.7")
        .with("{daemon_name}", "posthorn");
    client
        .connect("client.example", None, &connect)
        .await
        .unwrap();
    let mail = Macros::new()
        .with("i", "Q1")
        .with("{mail_addr}", "s@example.org");
    client.mail("s@example.org", &[], &mail).await.unwrap();
    client
        .end_of_message(&Macros::new().with("i", "Q1"))
        .await
        .unwrap();
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    let received = milter.received();
    let macros: Vec<Command<'_>> = received
        .iter()
        .filter(|r| r.code == b'D')
        .map(|r| r.command())
        .collect();
    assert_eq!(
        macros,
        [
            Command::Macros {
                command: b'C',
                pairs: vec![(b"{client_addr}", b"192.0.2.7")],
            },
            Command::Macros {
                command: b'M',
                pairs: vec![(b"i", b"Q1"), (b"{mail_addr}", b"s@example.org")],
            },
        ]
    );
    assert!(matches!(
        received[2].command(),
        Command::Connect {
            address: ConnectAddress::Unknown,
            ..
        }
    ));
}

#[tokio::test]
async fn early_decisions_hold_for_the_message_or_the_connection() {
    // A refused recipient is refused alone; ACCEPT at the end of the headers settles the
    // message: no body or end of message goes to the filter.
    let milter = ScriptedMilter::start(
        MilterScript::new(choice(Actions::default(), Protocol::default())).respond(|command| {
            match command {
                Command::Rcpt(args) if args[0] == b"<bad@example.net>" => {
                    Answer::Replies(vec![Reply::Reject])
                }
                Command::EndOfHeaders => Answer::Replies(vec![Reply::Accept]),
                _ => Answer::Default,
            }
        }),
    );
    let mut client = open(&milter, options()).await;
    let none = Macros::new();
    client.mail("s@example.org", &[], &none).await.unwrap();
    assert_eq!(
        client.rcpt("bad@example.net", &[], &none).await.unwrap(),
        Decision::Reject
    );
    assert_eq!(
        client.rcpt("good@example.net", &[], &none).await.unwrap(),
        Decision::Continue
    );
    assert_eq!(
        client.end_of_headers(&none).await.unwrap(),
        Decision::Accept
    );
    assert_eq!(client.body(b"ignored\r\n").await.unwrap(), Decision::Accept);
    assert_eq!(
        client.end_of_message(&none).await.unwrap(),
        Outcome::decided(Decision::Accept)
    );
    // The next message starts afresh.
    assert_eq!(
        client.mail("s@example.org", &[], &none).await.unwrap(),
        Decision::Continue
    );
    client.abort().await.unwrap();
    client.abort().await.unwrap();
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    assert_eq!(milter.codes(), "OMRRNMAQ");

    // A refusal of the connection holds for everything after it.
    let milter = ScriptedMilter::start(
        MilterScript::new(choice(Actions::default(), Protocol::default())).respond(|command| {
            match command {
                Command::Helo(_) => Answer::Replies(vec![Reply::Tempfail]),
                _ => Answer::Default,
            }
        }),
    );
    let mut client = open(&milter, options()).await;
    assert_eq!(
        client.connect("c", None, &none).await.unwrap(),
        Decision::Continue
    );
    assert_eq!(client.helo("c", &none).await.unwrap(), Decision::Tempfail);
    assert_eq!(
        client.mail("s@example.org", &[], &none).await.unwrap(),
        Decision::Tempfail
    );
    assert_eq!(
        client.end_of_message(&none).await.unwrap(),
        Outcome::decided(Decision::Tempfail)
    );
    client.quit().await.unwrap();
    milter.wait_for_command(b'Q');
    assert_eq!(milter.codes(), "OCHQ");
}

#[tokio::test]
async fn a_filter_wanting_actions_not_offered_is_refused() {
    let milter = ScriptedMilter::start(MilterScript::new(choice(
        Actions(0x200),
        Protocol::default(),
    )));
    let address = format!("inet:{}", milter.addr()).parse().unwrap();
    let error = MilterClient::open(&address, options()).await.err().unwrap();
    assert!(matches!(error, MilterError::Negotiation(_)), "{error}");

    let mut newer = choice(Actions::default(), Protocol::default());
    newer.version = 7;
    let milter = ScriptedMilter::start(MilterScript::new(newer));
    let address = format!("inet:{}", milter.addr()).parse().unwrap();
    let error = MilterClient::open(&address, options()).await.err().unwrap();
    assert!(matches!(error, MilterError::Negotiation(_)), "{error}");
}

#[tokio::test]
async fn changes_beyond_the_negotiated_actions_fail_the_filter() {
    let milter = answering_eom(
        Actions::ADD_HEADERS,
        Protocol::default(),
        vec![
            Reply::DeleteRecipient("<r@example.net>".into()),
            Reply::Continue,
        ],
    );
    let mut client = open(&milter, options()).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(
        matches!(
            error,
            MilterError::Unexpected {
                stage: "BODYEOB",
                reply: "SMFIR_DELRCPT"
            }
        ),
        "{error}"
    );
    assert!(matches!(client.abort().await, Err(MilterError::Failed)));

    // A change before the end of the message has no place either.
    let milter = ScriptedMilter::start(
        MilterScript::new(choice(Actions::ALL, Protocol::default())).respond(
            |command| match command {
                Command::Mail(_) => Answer::Replies(vec![Reply::Quarantine("early".into())]),
                _ => Answer::Default,
            },
        ),
    );
    let mut client = open(&milter, options()).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(
        matches!(error, MilterError::Unexpected { stage: "MAIL", .. }),
        "{error}"
    );
}

#[tokio::test]
async fn changes_are_bounded() {
    let limits = Limits {
        replacement_body: 100,
        changes: 200,
    };
    let options = Options {
        limits,
        ..options()
    };
    let milter = answering_eom(
        Actions::ALL,
        Protocol::default(),
        vec![
            Reply::ReplaceBody(vec![b'a'; 60]),
            Reply::ReplaceBody(vec![b'b'; 60]),
            Reply::Continue,
        ],
    );
    let mut client = open(&milter, options).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(
        matches!(
            error,
            MilterError::TooLarge {
                what: "replacement body",
                limit: 100
            }
        ),
        "{error}"
    );

    let milter = answering_eom(
        Actions::ALL,
        Protocol::default(),
        vec![
            Reply::AddHeader {
                name: "X-Big".into(),
                value: vec![b'v'; 150],
            },
            Reply::AddHeader {
                name: "X-Big".into(),
                value: vec![b'v'; 150],
            },
            Reply::Continue,
        ],
    );
    let mut client = open(&milter, options).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(
        matches!(
            error,
            MilterError::TooLarge {
                what: "changes",
                ..
            }
        ),
        "{error}"
    );

    // A header value that would break the header section is refused.
    let milter = answering_eom(
        Actions::ALL,
        Protocol::default(),
        vec![Reply::AddHeader {
            name: "X-Bad".into(),
            value: b"v\nInjected: yes".to_vec(),
        }],
    );
    let mut client = open(&milter, options).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(matches!(error, MilterError::BadChange(_)), "{error}");
}

#[tokio::test]
async fn header_values_keep_their_leading_space_when_negotiated() {
    let milter = answering_eom(
        Actions::ALL,
        Protocol::HEADER_LEADING_SPACE,
        vec![
            Reply::AddHeader {
                name: "X-Tab".into(),
                value: b"\tkept".to_vec(),
            },
            Reply::Continue,
        ],
    );
    let mut client = open(&milter, options()).await;
    let outcome = feed(&mut client, b"x\r\n").await.unwrap();
    assert_eq!(
        outcome.modifications,
        [Modification::Header(HeaderEdit::Add(HeaderField::new(
            "X-Tab", "\tkept"
        )))]
    );
    let received = milter.received();
    let subject = received
        .iter()
        .find(|r| r.data.starts_with(b"Subject\0"))
        .unwrap();
    assert_eq!(
        subject.command(),
        Command::Header {
            name: b"Subject",
            value: b" hello\n world",
        }
    );
}

#[tokio::test]
async fn misbehaving_filters_give_typed_errors() {
    let misbehave = |answer: Answer| {
        let answer = Arc::new(Mutex::new(Some(answer)));
        ScriptedMilter::start(
            MilterScript::new(choice(Actions::default(), Protocol::default())).respond(
                move |command| match command {
                    Command::Mail(_) => answer.lock().unwrap().take().unwrap_or(Answer::Default),
                    _ => Answer::Default,
                },
            ),
        )
    };
    let short = Options {
        timeouts: Timeouts {
            command: Duration::from_millis(300),
            ..options().timeouts
        },
        ..options()
    };

    let milter = misbehave(Answer::Raw(vec![0xff, 0xff, 0xff, 0xff, b'c']));
    let mut client = open(&milter, short).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(matches!(error, MilterError::Malformed(_)), "{error}");
    assert!(matches!(
        client.rcpt("r@example.net", &[], &Macros::new()).await,
        Err(MilterError::Failed)
    ));

    let milter = misbehave(Answer::Raw(vec![0, 0, 0, 1, b'?']));
    let mut client = open(&milter, short).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(matches!(error, MilterError::Malformed(_)), "{error}");

    let milter = misbehave(Answer::Close);
    let mut client = open(&milter, short).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(matches!(error, MilterError::Closed("MAIL")), "{error}");

    let milter = misbehave(Answer::Stall);
    let mut client = open(&milter, short).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(matches!(error, MilterError::Timeout("MAIL")), "{error}");

    // Discarding a connection makes no sense; Postfix refuses it too.
    let milter = ScriptedMilter::start(
        MilterScript::new(choice(Actions::default(), Protocol::default())).respond(|command| {
            match command {
                Command::Connect { .. } => Answer::Replies(vec![Reply::Discard]),
                _ => Answer::Default,
            }
        }),
    );
    let mut client = open(&milter, short).await;
    let error = feed(&mut client, b"x\r\n").await.unwrap_err();
    assert!(
        matches!(
            error,
            MilterError::Unexpected {
                stage: "CONNECT",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_filter_on_a_unix_socket_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("milter.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let filter = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut offer = [0; 17];
        stream.read_exact(&mut offer).await.unwrap();
        let mut out = Vec::new();
        Reply::Negotiate(choice(Actions::default(), Protocol::default())).encode(&mut out);
        stream.write_all(&out).await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        (offer, rest)
    });
    let address = format!("unix:{}", path.display()).parse().unwrap();
    let client = MilterClient::open(&address, options()).await.unwrap();
    assert_eq!(client.negotiated().version, 6);
    client.quit().await.unwrap();
    let (offer, rest) = filter.await.unwrap();
    assert_eq!(offer[4], b'O');
    assert_eq!(rest, [0, 0, 0, 1, b'Q']);
}
