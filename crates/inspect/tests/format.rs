//! RFC 5322 / RFC 2045-2049 format symbols, each with a message that has the fault and the
//! clean base message that does not.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use posthorn_inspect::{Context, Limits, inspect};

const PLAIN: &str = "Content-Type: text/plain\r\n\r\nHi\r\n";

fn without(field: &str) -> Vec<u8> {
    let m = String::from_utf8(message("", PLAIN)).unwrap();
    m.lines()
        .filter(|l| {
            !l.to_ascii_lowercase()
                .starts_with(&format!("{}:", field.to_ascii_lowercase()))
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

#[test]
fn clean_base_message_has_no_findings() {
    let report = run(&message("", PLAIN));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.from_domain.as_deref(), Some("sender.example.net"));
    assert_eq!(report.parts, 1);
}

#[test]
fn missing_fields() {
    for (field, symbol) in [
        ("From", "MISSING_FROM"),
        ("Date", "MISSING_DATE"),
        ("Message-ID", "MISSING_MESSAGE_ID"),
        ("Subject", "MISSING_SUBJECT"),
        ("To", "MISSING_RECIPIENTS"),
    ] {
        assert_eq!(symbols(&run(&without(field))), [symbol], "{field}");
    }
    // Cc alone is recipients enough.
    let cc_only = String::from_utf8(without("To"))
        .unwrap()
        .replace("Subject:", "Cc: c@example.org\r\nSubject:");
    assert!(run(cc_only.as_bytes()).findings.is_empty());
}

#[test]
fn duplicate_singletons() {
    for field in [
        "From: x@a.example",
        "Subject: again",
        "Date: Thu, 15 Jan 2026 12:00:00 +0000",
        "Message-ID: <2@x>",
    ] {
        let report = run(&message(&format!("{field}\r\n"), PLAIN));
        assert!(report.has("DUPLICATE_HEADER"), "{field}");
    }
    // Received and Comments may repeat.
    let report = run(&message(
        "Received: from a\r\nReceived: from b\r\nComments: 1\r\nComments: 2\r\n",
        PLAIN,
    ));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn unparsable_addresses() {
    let m = String::from_utf8(message("", PLAIN)).unwrap();
    let bad_from = m.replace(
        "From: Alice Sender <alice@sender.example.net>",
        "From: just some words",
    );
    assert!(run(bad_from.as_bytes()).has("FROM_UNPARSABLE"));
    let bad_to = m.replace("To: bob@example.org", "To: <>");
    assert!(run(bad_to.as_bytes()).has("TO_UNPARSABLE"));
    let group = m.replace("To: bob@example.org", "To: undisclosed-recipients:;");
    assert!(run(group.as_bytes()).findings.is_empty());
    let two = m.replace(
        "<alice@sender.example.net>",
        "<alice@sender.example.net>, carol@sender.example.net",
    );
    assert_eq!(symbols(&run(two.as_bytes())), ["FROM_MULTIPLE_NO_SENDER"]);
    let with_sender = two.replace("Subject:", "Sender: alice@sender.example.net\r\nSubject:");
    assert!(run(with_sender.as_bytes()).findings.is_empty());
}

#[test]
fn long_header_line() {
    let long = format!("X-Long: {}\r\n", "a".repeat(1000));
    let report = run(&message(&long, PLAIN));
    assert_eq!(symbols(&report), ["HEADER_LINE_TOO_LONG"]);
    assert!(report.findings[0].detail.starts_with("X-Long"));
    let fine = format!("X-Long: {}\r\n", "a".repeat(998 - 8));
    assert!(run(&message(&fine, PLAIN)).findings.is_empty());
}

#[test]
fn eight_bit_headers_need_smtputf8() {
    let m = message("", PLAIN);
    let m = String::from_utf8(m)
        .unwrap()
        .replace("Subject: Hello", "Subject: Grüße");
    assert_eq!(symbols(&run(m.as_bytes())), ["HEADER_8BIT_NO_SMTPUTF8"]);
    let locals = locals();
    let utf8 = Context {
        local_domains: &locals,
        smtputf8: true,
        now: NOW,
        limits: Limits::default(),
    };
    assert!(inspect(m.as_bytes(), &utf8).findings.is_empty());
    let mut latin1 = message("", PLAIN);
    let at = latin1.windows(5).position(|w| w == b"Hello").unwrap();
    latin1[at + 1] = 0xe9;
    assert_eq!(symbols(&inspect(&latin1, &utf8)), ["HEADER_INVALID_UTF8"]);
}

#[test]
fn dates() {
    let m = String::from_utf8(message("", PLAIN)).unwrap();
    for (date, symbol) in [
        ("yesterday-ish", "DATE_UNPARSABLE"),
        ("Sat, 17 Jan 2026 12:00:00 +0000", "DATE_IN_FUTURE"),
        ("Sun, 14 Dec 2025 11:00:00 +0000", "DATE_IN_PAST"),
    ] {
        let changed = m.replace(DATE, date);
        assert_eq!(symbols(&run(changed.as_bytes())), [symbol], "{date}");
    }
    // Within the limits, in another zone.
    let near = m.replace(DATE, "Fri, 16 Jan 2026 01:00:00 +0200");
    assert!(run(near.as_bytes()).findings.is_empty());
}

#[test]
fn mime_version_with_content_type() {
    let m = String::from_utf8(message("", PLAIN))
        .unwrap()
        .replace("MIME-Version: 1.0\r\n", "");
    assert_eq!(symbols(&run(m.as_bytes())), ["MIME_MISSING_VERSION"]);
    let plain_822 = String::from_utf8(without("MIME-Version"))
        .unwrap()
        .replace("Content-Type: text/plain\r\n", "");
    assert!(run(plain_822.as_bytes()).findings.is_empty());
}

#[test]
fn multipart_structure() {
    let no_boundary = message(
        "",
        "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
    );
    assert_eq!(symbols(&run(&no_boundary)), ["MIME_NO_BOUNDARY"]);
    let never = message(
        "",
        "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
    );
    assert_eq!(symbols(&run(&never)), ["MIME_BOUNDARY_NOT_FOUND"]);
    let unclosed = message(
        "",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n",
    );
    let report = run(&unclosed);
    assert_eq!(symbols(&report), ["MIME_NO_CLOSING_BOUNDARY"]);
    assert_eq!(report.parts, 1);
    let good = message(
        "",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\npreamble\r\n--x\r\n\r\nhi\r\n--x--\r\n",
    );
    assert!(run(&good).findings.is_empty());
}

#[test]
fn transfer_encodings() {
    let part = |cte: &str, body: &str| {
        message(
            "",
            &format!(
                "Content-Type: text/plain\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n"
            ),
        )
    };
    assert_eq!(
        symbols(&run(&part("base64", "aGVsbG8*!"))),
        ["MIME_BAD_BASE64"]
    );
    assert!(run(&part("base64", "aGVsbG8=")).findings.is_empty());
    assert_eq!(
        symbols(&run(&part("quoted-printable", "50=% off"))),
        ["MIME_BAD_QP"]
    );
    assert!(
        run(&part("quoted-printable", "caf=C3=A9=\r\n"))
            .findings
            .is_empty()
    );
    assert_eq!(
        symbols(&run(&part("x-uuencode", "begin 644 x"))),
        ["MIME_UNKNOWN_CTE"]
    );
    assert!(run(&part("8bit", "plain")).findings.is_empty());
}

#[test]
fn every_symbol_is_described_and_format_errors_flagged() {
    let format: Vec<_> = posthorn_inspect::SYMBOLS
        .iter()
        .filter(|s| s.format_error)
        .map(|s| s.name)
        .collect();
    for name in [
        "MISSING_FROM",
        "MISSING_DATE",
        "DUPLICATE_HEADER",
        "MIME_NO_BOUNDARY",
        "MIME_TOO_MANY_PARTS",
    ] {
        assert!(format.contains(&name), "{name}");
    }
    assert!(!format.contains(&"PHISH_LINK_MISMATCH"));
}
