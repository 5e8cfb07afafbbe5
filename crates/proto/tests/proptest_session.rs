//! Random input through the whole session state machine: whatever a peer sends, the session
//! never panics, every reply is well-formed, and message content survives dot-stuffing
//! exactly. This runs in the normal test suite; `fuzz/` holds the cargo-fuzz targets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use posthorn_proto::data::{BareNewline, ContentLimits};
use posthorn_proto::reply::{Reply, table};
use posthorn_proto::{Action, AuthPolicy, Session, SessionConfig};
use proptest::prelude::*;

fn config(bare_newline: BareNewline) -> SessionConfig {
    let mut config = SessionConfig::new("mx.test");
    config.max_command_line = 64;
    config.max_recipients = 4;
    config.max_errors = 1000;
    config.starttls = true;
    config.auth = AuthPolicy {
        enabled: true,
        without_tls: true,
        required: false,
    };
    config.content = ContentLimits {
        max_line: 200,
        max_size: 4096,
        bare_newline,
    };
    config
}

/// Drives a session over `chunks`, answering decisions from `verdicts` in turn.
/// Returns every byte of output and every message delivered.
fn drive(
    chunks: &[Vec<u8>],
    verdicts: &[u8],
    bare_newline: BareNewline,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut session: Session<()> = Session::new(config(bare_newline));
    session.greet();
    let mut output = Vec::new();
    let mut messages = Vec::new();
    let mut content = Vec::new();
    let mut verdict = verdicts.iter().cycle();
    let mut steps = 0;
    'chunks: for chunk in chunks {
        session.feed(chunk);
        loop {
            steps += 1;
            assert!(steps < 100_000, "session does not make progress");
            let pick = *verdict.next().unwrap_or(&0);
            match session.next_action() {
                Action::NeedInput => break,
                Action::Close => break 'chunks,
                Action::StartTls => session.tls_established(),
                Action::Auth(credentials) => {
                    if credentials.password == "secret" {
                        session.authenticated_as(credentials.username);
                    } else {
                        session.reject(table::auth_failed());
                    }
                }
                Action::Hello(_) | Action::Mail(_) | Action::DataStart => {
                    if pick.is_multiple_of(5) {
                        session.reject(Reply::new(550, 7, 1, "No"));
                    } else {
                        session.accept();
                    }
                }
                Action::Rcpt(_) => {
                    if pick.is_multiple_of(4) {
                        session.reject(table::unknown_user());
                    } else {
                        session.accept_rcpt(());
                    }
                }
                Action::Data => session.take_content(&mut content),
                Action::DataEnd => {
                    messages.push(std::mem::take(&mut content));
                    if pick.is_multiple_of(7) {
                        session.finish(table::local_error());
                    } else {
                        session.finish(table::queued("X"));
                    }
                }
                Action::DataAbort => content.clear(),
            }
            output.extend_from_slice(session.output());
            session.clear_output();
        }
        output.extend_from_slice(session.output());
        session.clear_output();
    }
    output.extend_from_slice(session.output());
    (output, messages)
}

/// Every output line is `DDD[- ]text\r\n` with a 2xx-5xx code.
fn assert_well_formed(output: &[u8]) {
    assert!(output.is_empty() || output.ends_with(b"\r\n"));
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.ends_with(b"\r"), "line without CR: {line:?}");
        assert!(line.len() >= 5, "short line {line:?}");
        assert!(
            line[..3].iter().all(u8::is_ascii_digit),
            "no code: {line:?}"
        );
        assert!(matches!(line[0], b'2'..=b'5'), "bad class: {line:?}");
        assert!(matches!(line[3], b' ' | b'-'), "bad separator: {line:?}");
        assert!(
            !line[..line.len() - 1].contains(&b'\r'),
            "CR inside {line:?}"
        );
    }
}

/// Command fragments that reach deep into the state machine, mixed with random bytes.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"EHLO x\r\n".to_vec()),
        Just(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n".to_vec()),
        Just(b"AUTH LOGIN\r\n".to_vec()),
        Just(b"*\r\n".to_vec()),
        Just(b"HELO x\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b.example>\r\n".to_vec()),
        Just(b"MAIL FROM:<> SIZE=10 BODY=8BITMIME RET=HDRS ENVID=x\r\n".to_vec()),
        Just(b"RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d\r\n".to_vec()),
        Just(b"RCPT TO:<Postmaster>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"BDAT 5\r\n".to_vec()),
        Just(b"BDAT 3 LAST\r\n".to_vec()),
        Just(b"BDAT 0 LAST\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"STARTTLS\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"\n.\n".to_vec()),
        Just(b"..\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        "[ -~]{0,80}\r\n".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_break_the_session(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(1usize..300, 1..20),
        verdicts in proptest::collection::vec(any::<u8>(), 1..16),
        normalize in any::<bool>(),
    ) {
        let chunks = split(&bytes, &cuts);
        let mode = if normalize { BareNewline::Normalize } else { BareNewline::Reject };
        let (output, _) = drive(&chunks, &verdicts, mode);
        assert_well_formed(&output);
    }

    #[test]
    fn command_soup_never_breaks_the_session(
        parts in proptest::collection::vec(fragment(), 0..60),
        cuts in proptest::collection::vec(1usize..64, 1..30),
        verdicts in proptest::collection::vec(any::<u8>(), 1..16),
        normalize in any::<bool>(),
    ) {
        let bytes: Vec<u8> = parts.concat();
        let chunks = split(&bytes, &cuts);
        let mode = if normalize { BareNewline::Normalize } else { BareNewline::Reject };
        let (output, messages) = drive(&chunks, &verdicts, mode);
        assert_well_formed(&output);
        for message in messages {
            prop_assert!(message.len() <= 4096);
            if !normalize {
                assert_no_bare_newline(&message);
            }
        }
    }

    #[test]
    fn data_content_round_trips_through_dot_stuffing(
        lines in proptest::collection::vec("[ -~]{0,50}", 0..40),
        cuts in proptest::collection::vec(1usize..100, 1..20),
    ) {
        let original: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
        let mut wire = b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n".to_vec();
        for line in &lines {
            if line.starts_with('.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        let chunks = split(&wire, &cuts);
        let (output, messages) = drive(&chunks, &[1], BareNewline::Reject);
        let text = String::from_utf8_lossy(&output);
        prop_assert!(text.contains("250 2.0.0 OK queued as X"), "{}", text);
        prop_assert_eq!(messages, vec![original]);
    }

    #[test]
    fn bdat_content_round_trips_in_any_chunking(
        lines in proptest::collection::vec("[ -~]{0,50}", 1..40),
        sizes in proptest::collection::vec(0usize..200, 1..10),
        cuts in proptest::collection::vec(1usize..100, 1..20),
    ) {
        let original: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
        let mut wire = b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n".to_vec();
        let mut rest = &original[..];
        for size in sizes {
            let take = size.min(rest.len());
            wire.extend_from_slice(format!("BDAT {take}\r\n").as_bytes());
            wire.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        wire.extend_from_slice(format!("BDAT {} LAST\r\n", rest.len()).as_bytes());
        wire.extend_from_slice(rest);
        let chunks = split(&wire, &cuts);
        let (output, messages) = drive(&chunks, &[1], BareNewline::Reject);
        let text = String::from_utf8_lossy(&output);
        prop_assert!(text.contains("250 2.0.0 OK queued as X"), "{}", text);
        prop_assert_eq!(messages, vec![original]);
    }
}

fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    for cut in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = (*cut).min(rest.len());
        chunks.push(rest[..take].to_vec());
        rest = &rest[take..];
    }
    chunks
}

fn assert_no_bare_newline(message: &[u8]) {
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && message[i - 1] == b'\r', "bare LF stored");
        }
        if b == b'\r' {
            assert!(message.get(i + 1) == Some(&b'\n'), "bare CR stored");
        }
    }
}
