//! A filter answering with anything: valid replies mixed with random octets, after a
//! negotiation with random flags. Whatever it sends, each call of the client returns a
//! decision or a typed error, never panics or hangs, and after an error the client only
//! says it failed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use posthorn_milter::codec::{Actions, Negotiation, Protocol, Reply, SmtpReply};
use posthorn_milter::{HeaderField, Limits, Macros, MilterClient, MilterError, Options, Timeouts};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn piece() -> impl Strategy<Value = Vec<u8>> {
    let reply = prop_oneof![
        Just(Reply::Continue),
        Just(Reply::Accept),
        Just(Reply::Reject),
        Just(Reply::Progress),
        Just(Reply::Skip),
        Just(Reply::AddHeader {
            name: "X-A".into(),
            value: b"v".to_vec()
        }),
        Just(Reply::ChangeHeader {
            index: 1,
            name: "To".into(),
            value: Vec::new()
        }),
        Just(Reply::ReplaceBody(vec![b'b'; 40])),
        Just(Reply::AddRecipient("<r@example.net>".into())),
        Just(Reply::ReplyCode(SmtpReply {
            code: 451,
            lines: vec!["4.7.1 later".into()]
        })),
    ]
    .prop_map(|reply| {
        let mut out = Vec::new();
        reply.encode(&mut out);
        out
    });
    prop_oneof![4 => reply, 1 => proptest::collection::vec(any::<u8>(), 0..12)]
}

async fn session(client: &mut MilterClient<DuplexStream>) -> Result<(), MilterError> {
    let none = Macros::new();
    client.connect("c", None, &none).await?;
    client.helo("c", &none).await?;
    client.mail("s@example.org", &[], &none).await?;
    client.rcpt("r@example.net", &[], &none).await?;
    client.data(&none).await?;
    for field in HeaderField::parse_section(b"To: r@example.net\r\nSubject: s\r\n").unwrap() {
        client.header(&field.name, &field.value).await?;
    }
    client.end_of_headers(&none).await?;
    client.body(&[b'x'; 70_000]).await?;
    client.end_of_message(&none).await?;
    client.abort().await
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_filter_answer_gives_a_decision_or_a_typed_error(
        actions in 0u32..0x200,
        protocol in any::<u32>(),
        answers in proptest::collection::vec(piece(), 0..24),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (ours, mut theirs) = tokio::io::duplex(1 << 20);
            let filter = tokio::spawn(async move {
                let mut out = Vec::new();
                Reply::Negotiate(Negotiation {
                    version: 6,
                    actions: Actions(actions),
                    protocol: Protocol(protocol),
                    macro_lists: Vec::new(),
                })
                .encode(&mut out);
                out.extend(answers.concat());
                theirs.write_all(&out).await.unwrap();
                theirs.shutdown().await.unwrap();
                let mut sink = Vec::new();
                let _ = theirs.read_to_end(&mut sink).await;
            });
            let options = Options {
                timeouts: Timeouts {
                    connect: Duration::from_secs(5),
                    command: Duration::from_secs(5),
                    content: Duration::from_secs(5),
                },
                limits: Limits { replacement_body: 100, changes: 1000 },
            };
            let mut client = MilterClient::negotiate(ours, options).await.unwrap();
            if let Err(error) = session(&mut client).await {
                assert!(!matches!(error, MilterError::Timeout(_)), "the filter closed, yet: {error}");
                assert!(matches!(client.helo("c", &Macros::new()).await, Err(MilterError::Failed)));
            }
            drop(client);
            filter.await.unwrap();
        });
    }
}
