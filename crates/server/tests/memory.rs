//! Hostile load against the server's memory: many clients sending large messages at once
//! to the mx listener, with SPF/DKIM/DMARC checks on, must not make the server hold those
//! messages in memory; and what a burst took is given back once it is over.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::time::Instant;

use common::dns::TestDns;
use common::{Client, Options, PATIENCE, TestServer};

/// Concurrent clients, and the size of each one's message.
const CLIENTS: usize = 50;
const MESSAGE_MIB: usize = 50;

/// The server's peak memory while receiving them must stay below this.
const PEAK_LIMIT_MIB: u64 = 300;

/// A server checking mail from loopback (as from any other server) for `alice@rcpt.test`.
fn checking_server(dns: &TestDns) -> TestServer {
    Options::default()
        .config(&format!(
            "[delivery]\nnameserver = \"{}\"\n\n\
             [verify]\nskip_networks = []\n\n\
             [limits]\nmax_message_size = \"{}MiB\"\nmax_connections_per_ip = {}\n\n\
             [[domain]]\nname = \"rcpt.test\"\n\n[[account]]\nname = \"alice\"\n",
            dns.addr,
            MESSAGE_MIB + 1,
            CLIENTS + 10,
        ))
        .start()
}

/// Sends one message of `size` octets as `sender.test`'s server would; returns the final
/// reply.
fn send_large(server: &TestServer, n: usize, size: usize) -> String {
    // A signature (whose key the sender never published) makes the server read the whole
    // message back to check it: the case that must take turns in the memory budget.
    let header = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test; s=gone;\r\n\
         \th=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\
         From: news@sender.test\r\nTo: alice@rcpt.test\r\nSubject: large {n}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{n}@sender.test>\r\n\r\n"
    );
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    send_padded(server, &header, line, size, "")
}

/// One message from `sender.test`'s server to Alice: `head`, then `line` repeated until
/// `size` octets are sent, then `tail`; returns the final reply.
fn send_padded(server: &TestServer, head: &str, line: &[u8], size: usize, tail: &str) -> String {
    let mut client = Client::greeted(server.addr);
    client.patience(PATIENCE * 15);
    client.expect("EHLO out.sender.test", "250");
    client.expect("MAIL FROM:<news@sender.test>", "250");
    client.expect("RCPT TO:<alice@rcpt.test>", "250");
    client.expect("DATA", "354");
    client.send(head);
    let block: Vec<u8> = line.repeat(64 * 1024 / line.len());
    let mut sent = head.len();
    while sent < size {
        client.send(&block);
        sent += block.len();
    }
    client.send(tail);
    client.command(".")
}

#[test]
fn concurrent_large_checked_messages_stream_to_disk() {
    let dns = TestDns::builder()
        .txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
        .start();
    let server = checking_server(&dns);
    let idle = server.rss_kib();
    let started = Instant::now();
    let replies: Vec<String> = std::thread::scope(|scope| {
        let sending: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let server = &server;
                scope.spawn(move || send_large(server, n, MESSAGE_MIB << 20))
            })
            .collect();
        sending
            .into_iter()
            .map(|t| t.join().expect("client"))
            .collect()
    });
    let took = started.elapsed();
    for answer in &replies {
        assert!(answer.starts_with("250 2.0.0"), "{answer}");
    }
    let peak = server.peak_rss_kib();
    eprintln!(
        "{CLIENTS} x {MESSAGE_MIB} MiB checked in {took:?}: idle {idle} KiB, peak {peak} KiB"
    );
    assert!(
        peak < PEAK_LIMIT_MIB << 10,
        "peak memory {peak} KiB while receiving {CLIENTS} x {MESSAGE_MIB} MiB"
    );
    let log = server.settled_log();
    let checked = log
        .lines()
        .filter(|l| l.contains("accepted") && l.contains("auth=\"spf=pass"))
        .collect::<Vec<_>>();
    assert_eq!(checked.len(), CLIENTS, "every message was checked");
    assert!(
        checked.iter().all(|l| !l.contains("dkim=none")),
        "their signatures were verified: {}",
        checked[0]
    );

    // What the burst took is given back: within a minute the server is back within twice
    // its idle size.
    server.wait_for_empty_queue();
    let delivered = common::list_files(&server.maildir("alice").join("new"));
    assert_eq!(delivered.len(), CLIENTS, "every message delivered");
    server.wait_for_memory_back(idle);
}

/// A zip archive of `megabytes` of zeros, itself zipped again: a bomb inside a bomb, made by
/// Info-ZIP's `zip` from standard input.
fn nested_zip_bomb(megabytes: usize) -> Vec<u8> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let zip = |input: &[u8]| {
        let mut child = Command::new("zip")
            .args(["-q", "-", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("zip (Debian's zip package) must be installed");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(output.status.success());
        output.stdout
    };
    zip(&zip(&vec![0u8; megabytes << 20]))
}

/// Sends a hostile message: a nested zip bomb, nearly as many MIME parts as are inspected
/// and a large attachment, `size` octets in all; returns the final reply.
fn send_hostile(server: &TestServer, n: usize, bomb: &str, size: usize) -> String {
    let mut message = format!(
        "From: news@sender.test\r\nTo: alice@rcpt.test\r\nSubject: hostile {n}\r\n\
         Date: {}\r\nMessage-ID: <h{n}@sender.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
        common::date_now()
    );
    message.push_str(&format!(
        "--b\r\nContent-Type: application/zip; name=\"bomb.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{bomb}\r\n"
    ));
    for i in 0..900 {
        message.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    message.push_str(
        "--b\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    send_padded(server, &message, line, size, "\r\n--b--\r\n")
}

#[test]
fn concurrent_hostile_content_is_checked_within_bounded_memory() {
    use base64::Engine as _;
    const HOSTILE: usize = 40;
    const SIZE: usize = 4 << 20;
    let dns = TestDns::builder()
        .txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
        .start();
    let server = checking_server(&dns);
    let bomb = base64::engine::general_purpose::STANDARD.encode(nested_zip_bomb(256));
    let idle = server.rss_kib();
    let started = Instant::now();
    let replies: Vec<String> = std::thread::scope(|scope| {
        let sending: Vec<_> = (0..HOSTILE)
            .map(|n| {
                let (server, bomb) = (&server, &bomb);
                scope.spawn(move || send_hostile(server, n, bomb, SIZE))
            })
            .collect();
        sending
            .into_iter()
            .map(|t| t.join().expect("client"))
            .collect()
    });
    let took = started.elapsed();
    let peak = server.peak_rss_kib();
    eprintln!("{HOSTILE} hostile messages checked in {took:?}: idle {idle} KiB, peak {peak} KiB");
    for answer in &replies {
        // Each gets a verdict: these score high enough for Junk or a refusal.
        assert!(
            answer.starts_with("250 2.0.0") || answer.starts_with("550 5.7.1"),
            "{answer}"
        );
    }
    for line in server
        .settled_log()
        .lines()
        .filter(|l| l.contains(" accepted "))
    {
        assert!(
            line.contains("checks=junk") || line.contains("checks=reject"),
            "{line}"
        );
    }
    assert!(
        peak < PEAK_LIMIT_MIB << 10,
        "peak memory {peak} KiB while checking {HOSTILE} hostile messages"
    );
    let log = server.settled_log();
    let judged = log.lines().filter(|l| l.contains("ARCHIVE_BOMB")).count();
    assert_eq!(
        judged, HOSTILE,
        "every message was inspected to its verdict:\n{log}"
    );
}
