//! The IMAP and POP3 servers' memory under clients that FETCH or RETR a large message and
//! then do not read, or SEARCH its text or APPEND it at once: each session must hold a
//! bounded buffer, not the message, or take its turn in the shared budget.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use common::mailbox::{Imap, listeners};
use common::{Options, TestServer, wait_until};

const PW: &str = "alice-memory-password";
/// The size of the message fetched.
const BIG: usize = 40 * 1024 * 1024;
/// How many sessions fetch it without reading.
const STALLED: usize = 20;
/// How many sessions search the message's text at once (each reads it whole).
const SEARCHERS: usize = 5;
/// How many sessions APPEND the message at once (each literal is held until it is stored).
const APPENDERS: usize = 8;
/// The most the server may reach, in KiB, with all of them stuck in the FETCH: the debug
/// build idles at about 20 MB, and one copy of the message per session would be 800 MB.
const PEAK_LIMIT_KIB: u64 = 200 * 1024;

/// A server with alice and an IMAP listener taking passwords in the clear, allowing more
/// connections from one address than the stalled sessions and the reader.
fn server() -> TestServer {
    let alice = light_hash(PW);
    Options::default()
        .config(&format!(
            r#"
[limits]
max_connections_per_ip = 64

[[listener]]
role = "imap"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[listener]]
role = "pop3"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{alice}"
"#
        ))
        .start()
}

/// An argon2id hash with a small memory cost: the default costs 19 MiB per login, which
/// the allocator keeps, and would hide what FETCH costs.
fn light_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// A message of exactly `BIG` octets: a header, then numbered lines.
fn big_message() -> Vec<u8> {
    let mut message =
        b"From: a@example.org\r\nTo: alice@example.com\r\nSubject: big\r\n\r\n".to_vec();
    let mut n = 0u64;
    while message.len() < BIG {
        message.extend_from_slice(format!("line {n:010} of the large message body\r\n").as_bytes());
        n += 1;
    }
    message.truncate(BIG - 2);
    message.extend_from_slice(b"\r\n");
    message
}

/// The send and receive queues (octets) of the TCP socket on 127.0.0.1 whose local port
/// is `local` and remote port `remote`, from /proc/net/tcp.
fn queues(local: u16, remote: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let wanted = (
        format!("0100007F:{local:04X}"),
        format!("0100007F:{remote:04X}"),
    );
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if (fields.get(1)?, fields.get(2)?) != (&wanted.0.as_str(), &wanted.1.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// True when the server is stuck writing to the client at `client`: the client has
/// octets it has not read, and the server's socket has more it could not send.
fn stalled(server: SocketAddr, client: SocketAddr) -> bool {
    let received = queues(client.port(), server.port()).is_some_and(|(_, rx)| rx > 0);
    let unsent = queues(server.port(), client.port()).is_some_and(|(tx, _)| tx > 0);
    received && unsent
}

/// The octets of the literal that follows `marker` in `response`.
fn literal_after<'r>(response: &'r [u8], marker: &str) -> &'r [u8] {
    let at = response
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .unwrap_or_else(|| panic!("no {marker:?} in the response"));
    let rest = &response[at + marker.len()..];
    let open = rest.iter().position(|&b| b == b'{').unwrap();
    let close = rest.iter().position(|&b| b == b'}').unwrap();
    let len: usize = std::str::from_utf8(&rest[open + 1..close])
        .unwrap()
        .parse()
        .unwrap();
    &rest[close + 3..close + 3 + len]
}

#[test]
fn clients_fetching_a_large_message_without_reading_hold_little_memory() {
    let server = server();
    let addr = listeners(&server, "imap")[0];
    let mut reader = Imap::logged_in(addr, PW);
    let message = deliver_big(&server, "alice");
    let selected = reader.ok("SELECT INBOX");
    assert!(selected.contains("* 1 EXISTS"), "{selected}");
    let baseline = server.rss_kib();

    let mut stalled_clients = Vec::new();
    for i in 0..STALLED {
        let mut imap = Imap::logged_in(addr, PW);
        imap.ok("SELECT INBOX");
        // The whole message is copied from the file as it is; TEXT and BODYSTRUCTURE
        // need it parsed first (slow in a debug build), under the server's shared budget.
        let item = match i {
            0 => "(BODYSTRUCTURE BODY.PEEK[TEXT])",
            _ if i % 2 == 0 => "BODY.PEEK[]",
            _ => "BODY[]",
        };
        imap.send(format!("f FETCH 1 {item}\r\n"));
        stalled_clients.push(imap);
    }
    let ports: Vec<SocketAddr> = stalled_clients.iter().map(Imap::local_addr).collect();
    wait_until("every session stuck in its FETCH", || {
        ports
            .iter()
            .all(|&client| stalled(addr, client))
            .then_some(())
    })
    .unwrap();
    assert_peak_under_limit(
        &server,
        baseline,
        &format!("{STALLED} stalled FETCHes of {BIG} octets"),
    );

    // Meanwhile a client that reads gets the message exactly, whole and in parts.
    let response = reader.command("FETCH 1 (BODY.PEEK[] BODY.PEEK[]<1000.50> RFC822.SIZE)");
    let response = response.as_bytes();
    assert_eq!(literal_after(response, "BODY[] "), message.as_slice());
    let partial = String::from_utf8_lossy(&message[1000..1050]);
    let expected = if partial.contains('\n') {
        format!("BODY[]<1000> {{50}}\r\n{partial}")
    } else {
        format!("BODY[]<1000> \"{partial}\"")
    };
    assert!(
        response
            .windows(expected.len())
            .any(|w| w == expected.as_bytes()),
        "no {expected:?}"
    );
    assert!(
        String::from_utf8_lossy(&response[response.len() - 200..])
            .contains(&format!("RFC822.SIZE {BIG})")),
        "RFC822.SIZE"
    );
    drop(stalled_clients);
    drop(reader);
    server.wait_for_memory_back(baseline);
}

/// Asserts that the server's peak memory stayed under `PEAK_LIMIT_KIB` while `what`.
fn assert_peak_under_limit(server: &TestServer, baseline: u64, what: &str) {
    let peak = server.peak_rss_kib();
    assert!(
        peak < PEAK_LIMIT_KIB,
        "{what}: from {baseline} KiB to a peak of {peak} KiB"
    );
}

/// Puts the large message into `account`'s INBOX; returns it.
fn deliver_big(server: &TestServer, account: &str) -> Vec<u8> {
    let message = big_message();
    posthorn_maildir::deliver(
        &server.maildir(account),
        None,
        "memory.test",
        b"",
        &mut message.as_slice(),
        message.len() as u64,
    )
    .unwrap();
    message
}

/// A POP3 session logged in as `user`.
fn pop3_login(addr: SocketAddr, user: &str) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    for command in [
        String::new(),
        format!("USER {user}\r\n"),
        format!("PASS {PW}\r\n"),
    ] {
        writer.write_all(command.as_bytes()).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{command:?}: {line}");
    }
    (reader, writer)
}

#[test]
fn pop3_clients_retrieving_a_large_message_without_reading_hold_little_memory() {
    // POP3 locks a mailbox to one session (RFC 1939 §8), so each stalled RETR has a
    // mailbox of its own, all holding the same message (hard links of one file).
    let hash = light_hash(PW);
    let users: Vec<String> = (0..STALLED).map(|i| format!("u{i}")).collect();
    let accounts: String = users
        .iter()
        .map(|u| format!("[[account]]\nname = \"{u}\"\npassword = \"{hash}\"\n\n"))
        .collect();
    let server = Options::default()
        .config(&format!(
            "[limits]\nmax_connections_per_ip = 64\n\n\
             [[listener]]\nrole = \"pop3\"\naddress = \"127.0.0.1:0\"\nallow_plaintext_auth = true\n\n\
             [[domain]]\nname = \"example.com\"\n\n{accounts}"
        ))
        .start();
    let addr = listeners(&server, "pop3")[0];
    let message = deliver_big(&server, &users[0]);
    let first = server.maildir(&users[0]);
    let file = std::fs::read_dir(first.join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for user in &users[1..] {
        let maildir = server.maildir(user);
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::hard_link(&file, maildir.join("new").join(file.file_name().unwrap())).unwrap();
    }
    let baseline = server.rss_kib();
    let stalled_clients: Vec<_> = users
        .iter()
        .map(|user| {
            let (reader, mut writer) = pop3_login(addr, user);
            writer.write_all(b"RETR 1\r\n").unwrap();
            (reader, writer)
        })
        .collect();
    let ports: Vec<SocketAddr> = stalled_clients
        .iter()
        .map(|(_, writer)| writer.local_addr().unwrap())
        .collect();
    wait_until("every session stuck in its RETR", || {
        ports
            .iter()
            .all(|&client| stalled(addr, client))
            .then_some(())
    })
    .unwrap();
    assert_peak_under_limit(
        &server,
        baseline,
        &format!("{STALLED} stalled RETRs of {BIG} octets"),
    );
    drop(stalled_clients);

    // A client that reads gets the message exactly (it has no line starting with a dot).
    let mut message_seen = None;
    wait_until("the first mailbox is free again", || {
        let (mut reader, mut writer) = pop3_login(addr, &users[0]);
        writer.write_all(b"RETR 1\r\n").unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert_eq!(status, format!("+OK {BIG} octets\r\n"));
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).unwrap();
            if line == b".\r\n" {
                break;
            }
            body.extend_from_slice(&line);
        }
        message_seen = Some(body);
        Some(())
    })
    .unwrap();
    assert!(
        message_seen == Some(message),
        "RETR sends the message as it is"
    );
    server.wait_for_memory_back(baseline);
}

#[test]
fn searches_of_large_messages_take_turns() {
    let server = server();
    let addr = listeners(&server, "imap")[0];
    deliver_big(&server, "alice");
    let baseline = server.rss_kib();
    let searchers: Vec<_> = (0..SEARCHERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut imap = Imap::logged_in(addr, PW);
                imap.ok("SELECT INBOX");
                // The searches take turns: the last answers after all the others.
                imap.patience(common::PATIENCE * SEARCHERS as u32);
                imap.ok("SEARCH BODY \"line 0000099999 of\"")
            })
        })
        .collect();
    for searcher in searchers {
        let found = searcher.join().unwrap();
        assert!(found.contains("* SEARCH 1\r\n"), "{found}");
    }
    assert_peak_under_limit(
        &server,
        baseline,
        &format!("{SEARCHERS} text searches of {BIG} octets"),
    );
    server.wait_for_memory_back(baseline);
}

#[test]
fn appends_of_large_messages_take_turns() {
    let server = server();
    let addr = listeners(&server, "imap")[0];
    let message = std::sync::Arc::new(big_message());
    let baseline = server.rss_kib();
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|_| {
            let message = std::sync::Arc::clone(&message);
            std::thread::spawn(move || {
                let mut imap = Imap::logged_in(addr, PW);
                imap.send(format!("x APPEND INBOX {{{}+}}\r\n", message.len()));
                imap.send(message.as_slice());
                imap.send(b"\r\n");
                imap.wait_for(common::PATIENCE * 6, "the APPEND's completion", |line| {
                    line.starts_with("x ")
                })
            })
        })
        .collect();
    for appender in appenders {
        let done = appender.join().unwrap();
        assert!(done.contains("x OK [APPENDUID"), "{done}");
    }
    assert_peak_under_limit(
        &server,
        baseline,
        &format!("{APPENDERS} APPENDs of {BIG} octets at once"),
    );
    let stored = std::fs::read_dir(server.maildir("alice").join("cur"))
        .unwrap()
        .count()
        + std::fs::read_dir(server.maildir("alice").join("new"))
            .unwrap()
            .count();
    assert_eq!(stored, APPENDERS);
    server.wait_for_memory_back(baseline);
}
