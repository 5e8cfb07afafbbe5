//! Every command and reply through the codec: exact octets for the ones with structure,
//! a round trip for all, refusals of malformed packets, and random input.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

fn packet(code: u8, data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.push(code);
    out.extend_from_slice(data);
    out
}

fn decode_reply(bytes: &[u8]) -> Result<Reply, DecodeError> {
    let (packet, used) = split_packet(bytes)?.expect("a whole packet");
    assert_eq!(used, bytes.len());
    Reply::decode(packet)
}

fn roundtrip_reply(reply: &Reply) {
    let mut out = Vec::new();
    reply.encode(&mut out);
    assert_eq!(&decode_reply(&out).unwrap(), reply);
}

fn reply_code(text: &str) -> Reply {
    decode_reply(&packet(b'y', format!("{text}\0").as_bytes())).unwrap()
}

#[test]
fn simple_replies_are_one_octet() {
    for (code, reply) in [
        (b'a', Reply::Accept),
        (b'c', Reply::Continue),
        (b'd', Reply::Discard),
        (b'r', Reply::Reject),
        (b't', Reply::Tempfail),
        (b'4', Reply::Shutdown),
        (b'p', Reply::Progress),
        (b's', Reply::Skip),
    ] {
        assert_eq!(decode_reply(&packet(code, b"")), Ok(reply.clone()));
        roundtrip_reply(&reply);
        assert_eq!(
            decode_reply(&packet(code, b"x")),
            Err(DecodeError::TrailingData(char::from(code)))
        );
    }
}

#[test]
fn replies_with_fields_decode_from_their_octets() {
    let cases: Vec<(Vec<u8>, Reply)> = vec![
        (
            packet(b'h', b"X-Spam\0Yes\0"),
            Reply::AddHeader {
                name: "X-Spam".into(),
                value: b"Yes".to_vec(),
            },
        ),
        (
            packet(b'i', b"\0\0\0\x02X-A\0v\n\tw\0"),
            Reply::InsertHeader {
                index: 2,
                name: "X-A".into(),
                value: b"v\n\tw".to_vec(),
            },
        ),
        (
            packet(b'm', b"\0\0\0\x01Subject\0\0"),
            Reply::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: Vec::new(),
            },
        ),
        (
            packet(b'+', b"<new@example.org>\0"),
            Reply::AddRecipient("<new@example.org>".into()),
        ),
        (
            packet(b'2', b"<p@example.org>\0NOTIFY=NEVER\0"),
            Reply::AddRecipientWithArgs {
                recipient: "<p@example.org>".into(),
                args: Some("NOTIFY=NEVER".into()),
            },
        ),
        (
            packet(b'2', b"<p@example.org>\0"),
            Reply::AddRecipientWithArgs {
                recipient: "<p@example.org>".into(),
                args: None,
            },
        ),
        (
            packet(b'-', b"<old@example.org>\0"),
            Reply::DeleteRecipient("<old@example.org>".into()),
        ),
        (
            packet(b'e', b"<s@example.org>\0SIZE=10\0"),
            Reply::ChangeSender {
                sender: "<s@example.org>".into(),
                args: Some("SIZE=10".into()),
            },
        ),
        (
            packet(b'b', b"new body\r\n"),
            Reply::ReplaceBody(b"new body\r\n".to_vec()),
        ),
        (
            packet(b'q', b"looks odd\0"),
            Reply::Quarantine("looks odd".into()),
        ),
        (
            packet(
                b'O',
                b"\0\0\0\x06\0\0\x01\xff\0\0\0\x80\0\0\0\x00{client_addr} j\0",
            ),
            Reply::Negotiate(Negotiation {
                version: 6,
                actions: Actions::ALL,
                protocol: Protocol::NO_REPLY_HEADER,
                macro_lists: vec![(MacroStage::Connect, "{client_addr} j".into())],
            }),
        ),
    ];
    for (bytes, reply) in cases {
        assert_eq!(decode_reply(&bytes), Ok(reply.clone()), "{bytes:?}");
        roundtrip_reply(&reply);
    }
}

#[test]
fn reply_codes_may_be_multiline_and_have_percent_undoubled() {
    assert_eq!(
        reply_code("554 5.7.1 Gtube pattern"),
        Reply::ReplyCode(SmtpReply {
            code: 554,
            lines: vec!["5.7.1 Gtube pattern".into()],
        })
    );
    let multi = SmtpReply {
        code: 550,
        lines: vec!["5.7.1 first".into(), "5.7.1 100% sure".into()],
    };
    assert_eq!(
        reply_code("550-5.7.1 first\r\n550 5.7.1 100%% sure"),
        Reply::ReplyCode(multi.clone())
    );
    assert_eq!(
        multi.to_smtp(),
        "550-5.7.1 first\r\n550 5.7.1 100% sure\r\n"
    );
    roundtrip_reply(&Reply::ReplyCode(multi));
    for bad in [
        "250 2.0.0 ok",
        "55 short",
        "abc text",
        "550-5.7.1 no last line",
        "550 5.7.1 a\r\n551 5.7.1 b",
        "550 5.7.1 a\r\n550 5.7.1 b",
        "550 bell\x07",
        "",
    ] {
        let bytes = packet(b'y', format!("{bad}\0").as_bytes());
        assert!(
            matches!(decode_reply(&bytes), Err(DecodeError::BadValue { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn malformed_replies_are_refused() {
    let cases: [(&[u8], DecodeError); 9] = [
        (&packet(b'h', b"X-A\0no nul"), DecodeError::Truncated('h')),
        (
            &packet(b'h', b"X-A\0v\0extra"),
            DecodeError::TrailingData('h'),
        ),
        (&packet(b'i', b"\0\0"), DecodeError::Truncated('i')),
        (
            &packet(b'h', b"Bad Name\0v\0"),
            DecodeError::BadValue {
                code: 'h',
                what: "not a header field name",
            },
        ),
        (
            &packet(b'h', b"\0v\0"),
            DecodeError::BadValue {
                code: 'h',
                what: "not a header field name",
            },
        ),
        (
            &packet(b'+', b"\xff@x\0"),
            DecodeError::BadValue {
                code: '+',
                what: "text is not UTF-8",
            },
        ),
        (
            &packet(b'O', b"\0\0\0\x06\0\0"),
            DecodeError::Truncated('O'),
        ),
        (
            &packet(b'O', b"\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x09j\0"),
            DecodeError::BadValue {
                code: 'O',
                what: "macro list for an unknown stage",
            },
        ),
        (&packet(b'Z', b""), DecodeError::UnknownCode(b'Z')),
    ];
    for (bytes, error) in cases {
        assert_eq!(decode_reply(bytes), Err(error), "{bytes:?}");
    }
}

#[test]
fn commands_encode_as_libmilter_expects() {
    let mut out = Vec::new();
    Command::Negotiate(Negotiation::offer()).encode(&mut out);
    assert_eq!(out, packet(b'O', b"\0\0\0\x06\0\0\x01\xff\0\x1f\xf7\xff"));

    let addr: SocketAddr = "192.0.2.1:4321".parse().unwrap();
    out.clear();
    Command::Connect {
        hostname: b"client.example",
        address: ConnectAddress::Ip(addr),
    }
    .encode(&mut out);
    assert_eq!(out, packet(b'C', b"client.example\x004\x10\xe1192.0.2.1\0"));

    out.clear();
    Command::Connect {
        hostname: b"unknown",
        address: ConnectAddress::Unknown,
    }
    .encode(&mut out);
    assert_eq!(out, packet(b'C', b"unknown\0U"));

    out.clear();
    Command::Macros {
        command: b'M',
        pairs: vec![(b"i", b"Q1"), (b"{mail_addr}", b"a@b")],
    }
    .encode(&mut out);
    assert_eq!(out, packet(b'D', b"Mi\0Q1\0{mail_addr}\0a@b\0"));

    out.clear();
    Command::Mail(vec![b"<a@b>", b"SIZE=1"]).encode(&mut out);
    assert_eq!(out, packet(b'M', b"<a@b>\0SIZE=1\0"));
}

#[test]
fn every_command_survives_a_round_trip() {
    let v6: SocketAddr = "[2001:db8::1]:25".parse().unwrap();
    let commands = [
        Command::Negotiate(Negotiation::offer()),
        Command::Macros {
            command: b'C',
            pairs: vec![(b"j", b"mx")],
        },
        Command::Connect {
            hostname: b"h",
            address: ConnectAddress::Ip(v6),
        },
        Command::Connect {
            hostname: b"h",
            address: ConnectAddress::Unix(b"/run/s"),
        },
        Command::Helo(b"client"),
        Command::Mail(vec![b"<>"]),
        Command::Rcpt(vec![b"<b@c>", b"NOTIFY=NEVER"]),
        Command::Data,
        Command::Header {
            name: b"Subject",
            value: b"hi\n there",
        },
        Command::EndOfHeaders,
        Command::Body(b"line\r\n"),
        Command::EndOfBody,
        Command::Abort,
        Command::Quit,
        Command::Unknown(b"XYZZY"),
    ];
    for command in commands {
        let mut out = Vec::new();
        command.encode(&mut out);
        let (packet, used) = split_packet(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(Command::decode(packet).unwrap(), command);
    }
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,20}".prop_map(|s| s.replace('\0', ""))
}

fn name() -> impl Strategy<Value = String> {
    "[!-9;-~]{1,12}"
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    prop_oneof![
        Just(Reply::Accept),
        Just(Reply::Continue),
        Just(Reply::Skip),
        (name(), text()).prop_map(|(name, value)| Reply::AddHeader {
            name,
            value: value.into_bytes()
        }),
        (any::<u32>(), name(), text()).prop_map(|(index, name, value)| Reply::InsertHeader {
            index,
            name,
            value: value.into_bytes()
        }),
        (any::<u32>(), name(), text()).prop_map(|(index, name, value)| Reply::ChangeHeader {
            index,
            name,
            value: value.into_bytes()
        }),
        text().prop_map(Reply::AddRecipient),
        (text(), proptest::option::of(text()))
            .prop_map(|(recipient, args)| Reply::AddRecipientWithArgs { recipient, args }),
        (text(), proptest::option::of(text()))
            .prop_map(|(sender, args)| Reply::ChangeSender { sender, args }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Reply::ReplaceBody),
        text().prop_map(Reply::Quarantine),
        (400u16..600, proptest::collection::vec(text(), 1..4))
            .prop_map(|(code, lines)| { Reply::ReplyCode(SmtpReply { code, lines }) }),
    ]
}

proptest! {
    #[test]
    fn random_octets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut rest = &bytes[..];
        while let Ok(Some((packet, used))) = split_packet(rest) {
            let _ = Reply::decode(packet);
            let _ = Command::decode(packet);
            rest = &rest[used..];
        }
    }

    #[test]
    fn random_data_after_any_code_never_panics(code in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let packet = Packet { code, data: &data };
        let _ = Reply::decode(packet);
        let _ = Command::decode(packet);
    }

    #[test]
    fn replies_survive_a_round_trip(reply in reply_strategy()) {
        let mut out = Vec::new();
        reply.encode(&mut out);
        prop_assert_eq!(decode_reply(&out).unwrap(), reply);
    }
}
