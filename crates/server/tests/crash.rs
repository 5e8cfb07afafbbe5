//! Crash safety and graceful shutdown of the real binary: kill -9 at the moments that
//! matter (after a 250, mid-content, with mail waiting in the queue) and SIGTERM with idle,
//! busy and stuck sessions. Every wait is on something the server does or writes (a log
//! line, a spool file, a reply), never on luck. The harness waits for the "listening" log
//! line, which comes after the SIGTERM handler is installed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::dns::TestDns;
use common::sink::{Sink, Stage};
use common::{Client, Options, TestServer, queue_id, split_message, wait_until};

/// One line of message text: 78 octets and CRLF.
const LINE: &str =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n";

/// Content the server hands to its spool file only in blocks of 256 KiB: this much of it
/// leaves a spool file we can watch to know the server has read what we sent.
const BIG: usize = 300_000;

/// `octets` of text in whole lines.
fn text(octets: usize) -> String {
    assert_eq!(octets % LINE.len(), 0);
    LINE.repeat(octets / LINE.len())
}

/// The log of the current run only (since the last start or restart).
fn current_log(server: &TestServer) -> String {
    let log = server.log();
    let start = log.rfind("--- start ---").unwrap_or(0);
    log[start..].to_string()
}

/// Waits until a line of the current run's log contains every needle; returns that line.
fn wait_for_line(server: &TestServer, needles: &[&str]) -> String {
    wait_until(&format!("a log line with {needles:?}"), || {
        current_log(server)
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// Waits for the current run's queue recovery and returns how many messages it found.
fn recovered_count(server: &TestServer) -> usize {
    let line = wait_for_line(server, &["queue recovered"]);
    line.split("messages=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in {line:?}"))
}

/// Blocks delivery to `account` in a way root cannot bypass: `new` is a regular file, so
/// the Maildir cannot be created and every attempt fails temporarily.
fn block_maildir(server: &TestServer, account: &str) {
    let root = server.maildir(account);
    std::fs::create_dir_all(root.join("cur")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(root.join("new"), b"blocks delivery\n").unwrap();
}

fn unblock_maildir(server: &TestServer, account: &str) {
    std::fs::remove_file(server.maildir(account).join("new")).unwrap();
}

/// The queue id in the Received header of a delivered message.
fn received_id(message: &[u8]) -> String {
    let (headers, _) = split_message(message);
    let at = headers
        .find(" id ")
        .unwrap_or_else(|| panic!("no id in {headers}"));
    headers[at + 4..]
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap()
        .to_string()
}

/// The Subject of a delivered message.
fn subject(message: &[u8]) -> String {
    let (headers, _) = split_message(message);
    headers
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("no Subject in {headers}"))
        .to_string()
}

/// Waits until `account` holds `count` messages and the spool is empty, and asserts the
/// count is exact. A message is delivered while it is in the spool and leaves it only
/// once delivered: with the spool empty, no late duplicate can come any more.
fn assert_settled(server: &TestServer, account: &str, count: usize) -> Vec<Vec<u8>> {
    server.wait_for_messages(account, count);
    server.wait_for_empty_queue();
    let messages = server.messages(account);
    assert_eq!(
        messages.len(),
        count,
        "{account} must hold exactly {count} message(s)\n{}",
        server.log()
    );
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
    messages
}

/// Opens a transaction to postmaster and gets the 354 (DATA) or nothing (BDAT).
fn open_transaction(server: &TestServer) -> Client {
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    client.expect("MAIL FROM:<sender@example.com>", "250 2.1.0");
    client.expect("RCPT TO:<postmaster@localhost>", "250 2.1.5");
    client
}

fn tmp_file_size(server: &TestServer) -> u64 {
    server
        .spool_files_in_progress()
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// After a crash mid-content: nothing of the message is left, queued or delivered, and the
/// server takes mail again.
fn assert_clean_restart_and_working(server: &mut TestServer) {
    server.restart();
    assert_eq!(recovered_count(server), 0, "{}", server.log());
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
    assert!(server.messages("postmaster").is_empty());

    let mut client = server.client();
    let fresh = "Subject: after the crash\r\n\r\nstill working\r\n";
    let reply = client.send_message("sender@example.com", &["postmaster@localhost"], fresh);
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    let messages = assert_settled(server, "postmaster", 1);
    assert!(messages[0].ends_with(fresh.as_bytes()));
    assert_eq!(received_id(&messages[0]), queue_id(&reply));
}

#[test]
fn accepted_message_survives_kill9_and_is_delivered_exactly_once() {
    let mut server = Options::default()
        .config("[queue]\nretry_schedule = [\"1s\"]")
        .start();
    block_maildir(&server, "postmaster");
    let content = "Subject: survivor\r\n\r\nThis message must survive kill -9.\r\n";
    let reply =
        server
            .client()
            .send_message("sender@example.com", &["postmaster@localhost"], content);
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    let id = queue_id(&reply);
    let deferred = wait_for_line(&server, &[&format!("queue_id={id}"), "result=\"deferred\""]);
    assert!(
        deferred.contains("4.3.0 maildir delivery failed"),
        "{deferred}"
    );
    assert!(
        server.queue_files().contains(&id),
        "spool: {:?}",
        server.queue_files()
    );
    assert!(server.messages("postmaster").is_empty());

    server.kill9();
    assert!(
        server.queue_files().contains(&id),
        "{:?}",
        server.queue_files()
    );
    unblock_maildir(&server, "postmaster");
    server.restart();
    assert_eq!(recovered_count(&server), 1);

    let messages = assert_settled(&server, "postmaster", 1);
    assert!(
        messages[0].ends_with(content.as_bytes()),
        "{}",
        String::from_utf8_lossy(&messages[0])
    );
    assert_eq!(received_id(&messages[0]), id);
    assert!(
        String::from_utf8_lossy(&messages[0]).contains(&format!("with ESMTP id {id}")),
        "{}",
        String::from_utf8_lossy(&messages[0])
    );
}

#[test]
fn kill9_right_after_250_loses_nothing() {
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 5;
    let mut server = TestServer::start();
    let mut subjects = Vec::new();
    for c in 0..CONNECTIONS {
        let mut client = server.client();
        for m in 0..PER_CONNECTION {
            let subject = format!("crash-{c}-{m}");
            let reply = client.send_message(
                "sender@example.com",
                &["postmaster@localhost"],
                &format!("Subject: {subject}\r\n\r\nbody of {subject}\r\n"),
            );
            assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
            subjects.push(subject);
        }
    }
    server.kill9();
    let delivered_before = server.messages("postmaster").len();
    server.restart();
    let recovered = recovered_count(&server);

    let delivered = wait_until("every message delivered", || {
        let messages = server.messages("postmaster");
        let seen: Vec<String> = messages.iter().map(|m| subject(m)).collect();
        subjects
            .iter()
            .all(|s| seen.contains(s))
            .then_some(messages)
    });
    let delivered = delivered.unwrap_or_else(|e| {
        let seen: Vec<String> = server
            .messages("postmaster")
            .iter()
            .map(|m| subject(m))
            .collect();
        let missing: Vec<&String> = subjects.iter().filter(|s| !seen.contains(s)).collect();
        panic!("{e}: LOST {missing:?}\n{}", server.log())
    });
    // Every copy is delivered while its message is in the spool: none can come after this.
    server.wait_for_empty_queue();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for message in server.messages("postmaster") {
        *counts.entry(subject(&message)).or_default() += 1;
        let body = format!("body of {}\r\n", subject(&message));
        assert!(message.ends_with(body.as_bytes()), "whole messages only");
    }
    assert!(counts.keys().all(|s| subjects.contains(s)), "{counts:?}");
    let duplicates: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{} messages sent: {delivered_before} delivered before kill -9, {recovered} recovered \
         at restart, {} in the Maildir once all were seen, {} at the end; duplicates \
         (allowed after a crash): {duplicates:?}",
        subjects.len(),
        delivered.len(),
        counts.values().sum::<usize>()
    );
}

#[test]
fn kill9_while_a_remote_recipient_waits_does_not_repeat_the_local_delivery() {
    // The remote side accepts the connection and never greets: its recipient waits (for
    // the default five minutes) while the local copy is delivered.
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .stall_at(Stage::Greeting)
        .start();
    let dns = TestDns::builder()
        .mx("remote.test", 10, "mx.remote.test")
        .a("mx.remote.test", "127.0.0.1")
        .start();
    let mut server = Options::default()
        .config(&format!(
            "[delivery]\nnameserver = \"{}\"\nport = {}\n\n[queue]\nretry_schedule = [\"1s\"]\n\n\
             [aliases]\n\"fwd@localhost\" = [\"user@remote.test\"]\n",
            dns.addr,
            sink.addr.port()
        ))
        .start();
    let content = "Subject: local and remote\r\n\r\none copy each\r\n";
    let reply = server.client().send_message(
        "sender@example.com",
        &["postmaster@localhost", "fwd@localhost"],
        content,
    );
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    let id = queue_id(&reply);
    server.wait_for_messages("postmaster", 1);
    sink.wait_for_connections(1);
    // The local outcome in the spool, while the remote recipient still waits. Without it
    // the crash below repeats the local delivery, which the final count shows.
    let state = format!("{id}.state");
    let recorded = wait_until("the local outcome recorded in the spool", || {
        server.queue_files().contains(&state).then_some(())
    });
    assert!(
        sink.messages().is_empty(),
        "the remote side must still be waiting"
    );

    server.kill9();
    sink.reconfigure(|b| b.stall_at(None));
    server.restart();
    assert_eq!(recovered_count(&server), 1, "{}", server.log());
    let delivered = sink.wait_for_messages(1);
    assert_eq!(delivered[0].recipients(), ["user@remote.test"]);
    // Once the message leaves the queue, every delivery of it is done.
    server.wait_for_empty_queue();
    let messages = server.messages("postmaster");
    assert_eq!(
        messages.len(),
        1,
        "the local copy was delivered again after the crash (recorded before it: {recorded:?})\n{}",
        server.log()
    );
    assert_eq!(received_id(&messages[0]), id);
}

#[test]
fn kill9_mid_data_accepts_nothing() {
    let mut server = TestServer::start();
    let mut client = open_transaction(&server);
    client.expect("DATA", "354");
    client.send(format!("Subject: half\r\n\r\n{}", text(BIG)));
    // Proof the server has read it: the content reached a spool file.
    wait_until("content in a spool file", || {
        (tmp_file_size(&server) > 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    // The half-written file dies with the process: it never had a name.
    server.kill9();
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
    drop(client);
    assert_clean_restart_and_working(&mut server);
}

#[test]
fn kill9_mid_bdat_accepts_nothing() {
    let mut server = TestServer::start();
    let mut client = open_transaction(&server);
    let first = format!("Subject: chunked half\r\n\r\n{}", text(BIG));
    let size = first.len();
    client.send(format!("BDAT {size}\r\n"));
    client.send(&first);
    let ack = client.reply();
    assert!(
        ack.starts_with(&format!("250 2.0.0 {size} octets")),
        "{ack}"
    );
    // Half of the last chunk, enough to reach the spool file: once the tmp file is longer
    // than the first chunk, the server has read into the second.
    client.send(format!("BDAT {} LAST\r\n", 2 * BIG));
    client.send(text(BIG));
    wait_until("the last chunk's content in its spool file", || {
        (tmp_file_size(&server) > size as u64).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    // The half-written file dies with the process: it never had a name.
    server.kill9();
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
    drop(client);
    assert_clean_restart_and_working(&mut server);
}

const ACCOUNTS: &str = "[queue]\nretry_schedule = [\"1s\"]\n\n[[account]]\nname = \"alice\"\n\n\
                        [[account]]\nname = \"bob\"\n\n[[account]]\nname = \"postmaster\"\n";

#[test]
fn restart_recovers_queued_messages() {
    let mut server = Options::default().config(ACCOUNTS).start();
    for account in ["alice", "bob", "postmaster"] {
        block_maildir(&server, account);
    }
    let sends: [(&str, &[&str]); 4] = [
        ("to-alice", &["alice@localhost"]),
        ("to-bob", &["bob@localhost"]),
        ("to-postmaster", &["postmaster@localhost"]),
        ("to-alice-and-bob", &["alice@localhost", "bob@localhost"]),
    ];
    let mut ids = Vec::new();
    let mut client = server.client();
    for (subject, to) in sends {
        let reply = client.send_message(
            "sender@example.com",
            to,
            &format!("Subject: {subject}\r\n\r\nqueued {subject}\r\n"),
        );
        assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
        ids.push(queue_id(&reply));
    }
    for id in &ids {
        wait_for_line(&server, &[&format!("queue_id={id}"), "result=\"deferred\""]);
        assert!(
            server.queue_files().contains(id),
            "{:?}",
            server.queue_files()
        );
    }
    server.kill9();
    for account in ["alice", "bob", "postmaster"] {
        unblock_maildir(&server, account);
    }
    server.restart();
    assert_eq!(recovered_count(&server), ids.len(), "{}", server.log());

    let alice = assert_settled(&server, "alice", 2);
    let bob = assert_settled(&server, "bob", 2);
    let postmaster = assert_settled(&server, "postmaster", 1);
    let subjects = |messages: &[Vec<u8>]| {
        let mut s: Vec<String> = messages.iter().map(|m| subject(m)).collect();
        s.sort();
        s
    };
    assert_eq!(subjects(&alice), ["to-alice", "to-alice-and-bob"]);
    assert_eq!(subjects(&bob), ["to-alice-and-bob", "to-bob"]);
    assert_eq!(subjects(&postmaster), ["to-postmaster"]);
    for message in alice.iter().chain(&bob).chain(&postmaster) {
        let body = format!("queued {}\r\n", subject(message));
        assert!(message.ends_with(body.as_bytes()), "whole messages only");
    }
    let all: Vec<String> = [&alice, &bob, &postmaster]
        .iter()
        .flat_map(|m| m.iter().map(|m| received_id(m)))
        .collect();
    for id in &ids {
        assert!(all.contains(id), "{id} not delivered: {all:?}");
    }
}

#[test]
fn sigterm_idle_session_gets_421_and_server_exits_cleanly() {
    let mut server = TestServer::start();
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    let addr = server.addr;
    let (reply, closed, status) = std::thread::scope(|s| {
        let stopper = s.spawn(|| server.stop());
        let reply = client.reply();
        let closed = client.is_closed();
        (reply, closed, stopper.join().unwrap())
    });
    assert!(
        reply.starts_with("421 4.3.2 "),
        "{reply:?}\n{}",
        server.log()
    );
    assert!(closed);
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed after exit"
    );
    assert!(server.settled_log().contains("stopped"), "{}", server.log());
}

#[test]
fn sigterm_lets_a_transaction_in_progress_finish() {
    let mut server = Options::default()
        .server("shutdown_grace = \"10s\"")
        .start();
    let mut client = open_transaction(&server);
    client.expect("DATA", "354");
    client.send("Subject: in flight\r\n\r\nfirst half\r\n");
    // An idle session hears of the shutdown first: once it has, so has the server.
    let mut idle = server.client();
    idle.expect("EHLO idle.test", "250");
    let addr = server.addr;

    let (probe, queued, farewell, closed, status) = std::thread::scope(|s| {
        let stopper = s.spawn(|| server.stop());
        let probe = idle.reply();
        client.send("second half\r\n.\r\n");
        let queued = client.reply();
        let farewell = client.reply();
        let closed = client.is_closed();
        (probe, queued, farewell, closed, stopper.join().unwrap())
    });
    assert!(probe.starts_with("421 4.3.2 "), "{probe:?}");
    assert!(
        queued.starts_with("250 2.0.0 OK queued as "),
        "{queued:?}\n{}",
        server.log()
    );
    assert!(farewell.starts_with("421 4.3.2 "), "{farewell:?}");
    assert!(closed);
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(TcpStream::connect(addr).is_err());

    let id = queue_id(&queued);
    let delivered_before_stop = server.messages("postmaster").len();
    assert!(
        delivered_before_stop == 1 || server.queue_files().contains(&id),
        "message neither delivered nor queued: {:?}\n{}",
        server.queue_files(),
        server.log()
    );
    println!(
        "delivered before exit: {delivered_before_stop}, queued at exit: {:?}",
        server.queue_files()
    );
    server.restart();
    let messages = assert_settled(&server, "postmaster", 1);
    assert!(messages[0].ends_with(b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"));
    assert_eq!(received_id(&messages[0]), id);
}

#[test]
fn sigterm_grace_period_is_bounded() {
    let mut server = Options::default().server("shutdown_grace = \"1s\"").start();
    let mut client = open_transaction(&server);
    client.expect("DATA", "354");
    client.send(format!("Subject: stuck\r\n\r\n{}", text(BIG)));
    wait_until("content in a spool file", || {
        (tmp_file_size(&server) > 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    let started = Instant::now();
    let status = server.stop();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}\n{}",
        server.log()
    );
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(client.is_closed());
    assert!(
        server.settled_log().contains("grace period over"),
        "{}",
        server.log()
    );
    println!("stopped after {took:?}");
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );

    assert_clean_restart_and_working(&mut server);
}
