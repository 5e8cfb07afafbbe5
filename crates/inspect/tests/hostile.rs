//! Hostile content: each case is built here, large enough that a quadratic pass or an
//! unbounded allocation would show (minutes, gigabytes), and must end in its symbol.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use posthorn_inspect::Limits;

#[test]
fn ten_thousand_parts() {
    let mut body = String::from("Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for i in 0..10_000 {
        body.push_str(&format!(
            "--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    body.push_str("--p--\r\n");
    let report = run(&message("", &body));
    assert!(report.has("MIME_TOO_MANY_PARTS"));
    assert_eq!(report.parts, 0, "no part past the limit is read");
}

#[test]
fn megabyte_header_line() {
    let line = format!("X-Junk: {}\r\n", "x".repeat(1 << 20));
    let report = run(&message(&line, "Content-Type: text/plain\r\n\r\nhi\r\n"));
    assert_eq!(symbols(&report), ["HEADER_LINE_TOO_LONG"]);
    assert!(report.findings[0].detail.contains("1048584 octets"));
}

#[test]
fn deeply_nested_multiparts() {
    let depth = 5_000;
    let mut body = String::new();
    for level in 0..depth {
        body.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"l{level}\"\r\n\r\n--l{level}\r\n"
        ));
    }
    body.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for level in (0..depth).rev() {
        body.push_str(&format!("--l{level}--\r\n"));
    }
    let report = run(&message("", &body));
    assert!(report.has("MIME_TOO_DEEP"), "{:?}", report.findings);
}

#[test]
fn deeply_nested_messages() {
    let mut body = String::from("Content-Type: text/plain\r\n\r\nbottom\r\n");
    for _ in 0..5_000 {
        body = format!("Content-Type: message/rfc822\r\n\r\nSubject: wrapped\r\n{body}");
    }
    assert!(run(&message("", &body)).has("MIME_TOO_DEEP"));
}

#[test]
fn boundary_lines_without_end() {
    // Two megabytes of lines that start like the boundary but are not it, and no close.
    let mut body = String::from("Content-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n\r\n");
    body.push_str(&"--abcX\r\n".repeat(250_000));
    let report = run(&message("", &body));
    assert_eq!(symbols(&report), ["MIME_NO_CLOSING_BOUNDARY"]);
}

/// Many entries of zeros, each too small to be evidence by its ratio, together over the
/// (here lowered) budget: decompression stops at the budget and calls it a bomb.
#[test]
fn zip_bomb_stopped_by_the_budget() {
    let zeros = vec![0u8; 200_000];
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for i in 0..64 {
        let name = format!("z{i}.bin");
        std::fs::write(dir.path().join(&name), &zeros).unwrap();
        names.push(name);
    }
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let bomb = zip_tool(dir.path(), &args);
    assert!(bomb.len() < 50_000, "{}", bomb.len());
    let limits = Limits {
        max_archive_bytes: 1 << 20,
        ..Limits::default()
    };
    let report = run_with(&with_attachment("z.zip", "application/zip", &bomb), limits);
    assert_eq!(symbols(&report), ["ARCHIVE_BOMB"], "{:?}", report.findings);
    // With the default budget the same archive is read (a prefix of each entry) and passes.
    assert!(
        run(&with_attachment("z.zip", "application/zip", &bomb))
            .findings
            .is_empty()
    );
}

#[test]
fn declared_size_is_never_allocated() {
    // One entry claiming 4 GiB - 1 uncompressed from a few octets.
    let mut zip = zip_of(&[("claim.bin", b"tiny")], &["-0"]);
    let cd = zip.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    zip[cd + 24..cd + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = run(&with_attachment("claim.zip", "application/zip", &zip));
    assert_eq!(symbols(&report), ["ARCHIVE_BOMB"]);
}

/// A zip inside a zip inside ... 200 deep, stored so it is built quickly.
#[test]
fn deeply_nested_archives() {
    let mut archive = zip_of(&[("core.txt", b"core")], &["-0"]);
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..200 {
        std::fs::write(dir.path().join("n.zip"), &archive).unwrap();
        archive = zip_tool(dir.path(), &["-0", "n.zip"]);
    }
    let report = run(&with_attachment("n.zip", "application/zip", &archive));
    assert_eq!(symbols(&report), ["ARCHIVE_NESTED", "ARCHIVE_TOO_DEEP"]);
}

#[test]
fn pathological_html_and_text() {
    let size = 1 << 20;
    for html in [
        "&".repeat(size),
        "<a href=".repeat(size / 8),
        "<".repeat(size),
        "<!--".repeat(size / 4),
        "<script>".repeat(size / 8),
        "http://".repeat(size / 7),
        "www.".repeat(size / 4),
        format!(
            "<a href=\"http://a.example/\">{}</a>",
            "https://".repeat(size / 8)
        ),
    ] {
        let report = run(&message(
            "",
            &format!("Content-Type: text/html\r\n\r\n{html}\r\n"),
        ));
        assert!(report.findings.len() < 20);
        let report = run(&message(
            "",
            &format!("Content-Type: text/plain\r\n\r\n{html}\r\n"),
        ));
        assert!(report.findings.len() < 20);
    }
}

#[test]
fn many_links_stay_bounded() {
    let links: String = (0..20_000)
        .map(|i| format!("<a href=\"https://h{i}.com.au/\">www.s{i}.example.net</a>\n"))
        .collect();
    let report = run(&message(
        "",
        &format!("Content-Type: text/html\r\n\r\n{links}\r\n"),
    ));
    assert_eq!(report.url_domains.len(), 100);
    assert!(report.has("URL_TOO_MANY"));
    assert_eq!(
        report
            .findings
            .iter()
            .filter(|f| f.symbol == "PHISH_LINK_MISMATCH")
            .count(),
        8
    );
}
