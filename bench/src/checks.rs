//! What the checking stage costs: accept throughput with every local check on (format,
//! MIME, attachments, archives, links, lists; no DNS lists, clamd or milters) against the
//! same server with checks off, on a realistic message (a multipart/alternative with an
//! HTML part full of links and a zipped attachment), rounds alternating so the machine's
//! drift falls on both alike.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::compare::{Binaries, Server, start};
use crate::rounds::Alternating;

/// Accept rates of each round: checks off first, then on.
#[derive(Debug, Clone, Default)]
pub struct Cost(pub Alternating);

impl Cost {
    /// The report section.
    pub fn report(&self, clients: usize, messages: usize) -> String {
        let Cost(rates) = self;
        format!(
            "## What the checks cost\n\n{clients} clients, {messages} messages a round, the \
             message of `bench/src/checks.rs` (multipart, HTML with links, a zip attachment).\n\n\
             | | accept msgs/s (median) | rounds |\n|---|---|---|\n\
             | checks off | {:.0} | {} |\n| checks on | {:.0} | {} |\n\n\
             With checks on: **{:.0}%** of the throughput with checks off, the median of the \
             rounds' own ratios (the target: at least 80%).\n",
            Alternating::median(&rates.first),
            Alternating::list(&rates.first),
            Alternating::median(&rates.second),
            Alternating::list(&rates.second),
            rates.ratio() * 100.0
        )
    }
}

/// Measures `rounds` rounds of each, alternating.
pub fn measure(
    binaries: &Binaries,
    clients: usize,
    messages: usize,
    rounds: usize,
) -> anyhow::Result<Cost> {
    let file = tempfile::NamedTempFile::new()?;
    file.as_file().write_all(message()?.as_bytes())?;
    let accept_rate = |server| -> anyhow::Result<f64> {
        let running = start(server, binaries)?;
        let started = Instant::now();
        send(running.addr, clients, messages, file.path())?;
        Ok(messages as f64 / started.elapsed().as_secs_f64())
    };
    Alternating::measure(
        rounds,
        || accept_rate(Server::Posthorn),
        || accept_rate(Server::PosthornChecked),
    )
    .map(Cost)
}

/// Sends `messages` copies of the message in `file` with `smtp-source -F`.
fn send(
    to: SocketAddr,
    clients: usize,
    messages: usize,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let status = Command::new("/usr/sbin/smtp-source")
        .args([
            "-c",
            "-s",
            &clients.to_string(),
            "-m",
            &messages.to_string(),
        ])
        .args([
            "-f",
            "news@shop.example.com",
            "-t",
            "to@example.org",
            "-M",
            "bench.example.com",
        ])
        .arg("-F")
        .arg(file)
        .arg(to.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "smtp-source failed: {status}");
    Ok(())
}

/// A newsletter as real ones look: text and HTML alternatives, a dozen links, a small
/// zipped attachment, about 4 KiB.
fn message() -> anyhow::Result<String> {
    let links: String = (0..12)
        .map(|i| format!("<p><a href=\"https://shop.example.com/item/{i}?utm=news\">Item {i}</a> now 20% off.</p>\n"))
        .collect();
    let text: String = (0..12)
        .map(|i| format!("Item {i}: https://shop.example.com/item/{i}?utm=news\n"))
        .collect();
    let zip = base64_lines(&zipped(
        "catalogue.pdf",
        &b"%PDF-1.4 catalogue ".repeat(40),
    )?);
    Ok(format!(
        "From: Shop <news@shop.example.com>\nTo: <to@example.org>\nSubject: This week's offers\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <offers-1@shop.example.com>\n\
         MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n\
         --outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n\
         --inner\nContent-Type: text/plain; charset=utf-8\n\n{text}\n\
         --inner\nContent-Type: text/html; charset=utf-8\n\n<html><body>\n{links}</body></html>\n\
         --inner--\n\n--outer\nContent-Type: application/zip; name=\"catalogue.zip\"\n\
         Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"catalogue.zip\"\n\n\
         {zip}--outer--\n"
    ))
}

/// `data` as `name` in a zip archive made by Info-ZIP's `zip`.
fn zipped(name: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(name), data)?;
    let status = Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "archive.zip", name])
        .status()?;
    anyhow::ensure!(status.success(), "zip failed: {status}");
    Ok(std::fs::read(dir.path().join("archive.zip"))?)
}

/// `bytes` in base64, 76 characters a line (RFC 2045 §6.8).
fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    encoded
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
        .collect()
}
