//! Message builders and a real zip tool (Debian's Info-ZIP `zip`) for the inspection tests.

#![allow(dead_code, reason = "each test crate uses its own subset")]

use std::path::Path;
use std::process::Command;

use base64::Engine;
use posthorn_inspect::{Context, Limits, Report, inspect};

/// 2026-01-15T12:00:00Z; messages are dated then.
pub const NOW: i64 = 1_768_478_400;
pub const DATE: &str = "Thu, 15 Jan 2026 12:00:00 +0000";

pub fn locals() -> Vec<String> {
    vec!["example.org".to_owned()]
}

pub fn run(message: &[u8]) -> Report {
    run_with(message, Limits::default())
}

pub fn run_with(message: &[u8], limits: Limits) -> Report {
    let locals = locals();
    let context = Context {
        local_domains: &locals,
        smtputf8: false,
        now: NOW,
        limits,
    };
    inspect(message, &context)
}

/// A well-formed header section, with `extra` fields first, then `body`.
pub fn message(extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{extra}From: Alice Sender <alice@sender.example.net>\r\nTo: bob@example.org\r\n\
         Subject: Hello\r\nDate: {DATE}\r\nMessage-ID: <1@sender.example.net>\r\n\
         MIME-Version: 1.0\r\n{body}"
    )
    .into_bytes()
}

/// A multipart/mixed message: a short text, then `data` attached as `name`, base64.
pub fn with_attachment(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    message(
        "",
        &format!(
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n--b1\r\n\
             Content-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
            lines.join("\r\n")
        ),
    )
}

pub fn symbols(report: &Report) -> Vec<&'static str> {
    report.symbols()
}

/// Runs Info-ZIP `zip` in `dir` with `args` and returns the archive. A missing tool fails the
/// test (scripts/test-all installs it).
pub fn zip_tool(dir: &Path, args: &[&str]) -> Vec<u8> {
    let status = Command::new("zip")
        .current_dir(dir)
        .arg("-q")
        .arg("-X")
        .arg("out.zip")
        .args(args)
        .status()
        .expect("Info-ZIP `zip` must be installed (Debian package zip)");
    assert!(status.success(), "zip {args:?} failed");
    let archive = std::fs::read(dir.join("out.zip")).unwrap();
    std::fs::remove_file(dir.join("out.zip")).unwrap();
    archive
}

/// A zip of `files` made by the real `zip` tool, with extra `options` (say `-P secret`).
pub fn zip_of(files: &[(&str, &[u8])], options: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    let mut args: Vec<&str> = options.to_vec();
    args.extend(files.iter().map(|(n, _)| *n));
    zip_tool(dir.path(), &args)
}

/// A minimal PE: MZ, e_lfanew at 0x3C pointing at "PE\0\0".
pub fn pe_bytes() -> Vec<u8> {
    let mut pe = vec![0u8; 0x100];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3c] = 0x80;
    pe[0x80..0x84].copy_from_slice(b"PE\0\0");
    pe
}
