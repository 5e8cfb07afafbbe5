//! Hostile and broken SMTP peers against the real server, byte by byte over raw sockets:
//! overlong lines split over several writes, SMTP smuggling with bare line ends made
//! normal, binary garbage, slow, stuck and vanishing clients, and the size and connection
//! limits where timing, memory, spool files or several clients are involved. Every test
//! checks the exact replies and what did or did not reach the Maildir and the spool.
//!
//! The plain exchanges of commands and replies (commands out of sequence, bad syntax, lines
//! too long, smuggling refused, BDAT errors, limits) are scripts in `tests/data/dialogs/`,
//! played by `dialogs.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Client, Options, PATIENCE, TestServer, wait_until};

/// `postmaster` receives the honest mail; `victim` is whom smuggled commands aim at.
/// Configuring any account replaces the default postmaster, so both are listed.
const ACCOUNTS: &str = "[[account]]\nname = \"postmaster\"\n\n[[account]]\nname = \"victim\"\n";

/// A pause between two TCP writes, long enough for the server to read them separately.
const GAP: Duration = Duration::from_millis(50);

/// More content than the server buffers in memory, so a spool file is being written (once
/// the header section has ended: it is held until then).
const SPOOLED: usize = 300 * 1024;

fn start(config: &str) -> TestServer {
    Options::default().config(config).start()
}

/// EHLO, MAIL and one RCPT, each checked.
fn open_transaction(client: &mut Client, rcpt: &str) {
    client.expect("EHLO client.test", "250-mx.test");
    client.expect("MAIL FROM:<sender@example.com>", "250 2.1.0 ");
    client.expect(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5 ");
}

/// Reads one reply and checks how it starts.
fn expect_reply(client: &mut Client, expected: &str, what: &str) -> String {
    let reply = client.reply();
    assert!(
        reply.starts_with(expected),
        "{what}: expected {expected:?}, got {reply:?}"
    );
    reply
}

/// The server has closed the connection and sent nothing more.
fn assert_closed(client: &mut Client, what: &str) {
    let rest = client.reply();
    assert_eq!(
        rest, "",
        "{what}: the connection must close with nothing more"
    );
}

/// Waits until the server is writing `count` spool files.
fn wait_for_spool_files(server: &TestServer, count: usize) {
    wait_until(&format!("{count} spool files being written"), || {
        (server.spool_files_in_progress().len() == count).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}",
            server.spool_files_in_progress(),
            server.log()
        )
    });
}

/// Waits until the server logs the end of its first session and returns how it ended.
fn wait_for_session_end(server: &TestServer) -> String {
    wait_until("the end of a session", || {
        server
            .log()
            .lines()
            .find(|l| l.contains("posthorn::inbound::session: session "))
            .and_then(|l| {
                l.split("end=")
                    .nth(1)
                    .map(|e| e.trim_matches('"').to_string())
            })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// Nothing of a refused or abandoned message is left: no spool file, committed or not,
/// and no mail in the Maildir of any of `accounts`.
fn assert_nothing_stored(server: &TestServer, accounts: &[&str]) {
    wait_for_spool_files(server, 0);
    server.wait_for_empty_queue();
    for account in accounts {
        assert!(
            server.messages(account).is_empty(),
            "{account} must get nothing:\n{}",
            server.log()
        );
    }
}

/// A fresh client sends a whole message to postmaster and it is delivered: the server
/// still works. Returns postmaster's messages.
fn server_still_delivers(server: &TestServer) -> Vec<Vec<u8>> {
    let before = server.messages("postmaster").len();
    let mut client = server.client();
    let reply = client.send_message(
        "control@example.com",
        &["postmaster@localhost"],
        "Subject: control\r\n\r\nstill here\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    client.expect("QUIT", "221 2.0.0 ");
    let messages = server.wait_for_messages("postmaster", before + 1);
    assert!(messages.iter().any(|m| m.ends_with(b"still here\r\n")));
    server.wait_for_empty_queue();
    messages
}

/// Lines of text, each CRLF-terminated but maybe the last, `len` octets in all.
fn filler(len: usize) -> Vec<u8> {
    let line = format!("{}\r\n", "z".repeat(98));
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

/// Deterministic pseudo-random octets (xorshift64), no extra crates.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Checks that raw server output is a sequence of well-formed reply lines
/// (`DDD[ -]C.S.D text\r\n`, the status class matching the code) and returns them.
fn well_formed_lines(raw: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(raw).expect("replies are ASCII");
    assert!(text.ends_with("\r\n"), "replies end with CRLF: {text:?}");
    let lines: Vec<String> = text.split_inclusive("\r\n").map(str::to_string).collect();
    for line in &lines {
        let bytes = line.as_bytes();
        assert!(line.is_ascii(), "{line:?}");
        assert!(
            line.len() >= 6 && bytes[..3].iter().all(u8::is_ascii_digit),
            "{line:?}"
        );
        assert!(matches!(bytes[0], b'2'..=b'5'), "{line:?}");
        assert!(matches!(bytes[3], b' ' | b'-'), "{line:?}");
        let status = line[4..].split(' ').next().unwrap();
        let parts: Vec<&str> = status.split('.').collect();
        assert_eq!(parts.len(), 3, "enhanced status code in {line:?}");
        assert_eq!(parts[0].as_bytes(), &bytes[..1], "status class in {line:?}");
        assert!(
            parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "{line:?}"
        );
        assert_eq!(
            line.matches("\r\n").count(),
            1,
            "one CRLF per line: {line:?}"
        );
        assert!(!line[..line.len() - 2].contains(['\r', '\n']), "{line:?}");
    }
    lines
}

// --- Overlong command lines -------------------------------------------------------------

#[test]
fn overlong_command_line_in_several_writes_is_refused_once_and_its_tail_never_executed() {
    let server = start("[limits]\nmax_command_line = 512\n");
    let mut client = server.client();
    client.expect("EHLO client.test", "250");

    // A MAIL command trickled in three writes, 624 octets in all.
    client.send(format!("MAIL FROM:<{}", "a".repeat(300)));
    sleep(GAP);
    client.send("a".repeat(300));
    sleep(GAP);
    client.send("@example.com>\r\n");
    expect_reply(&mut client, "500 5.5.2 ", "MAIL in three writes");
    client.expect("RCPT TO:<postmaster@localhost>", "503 5.5.1 ");

    // A line within the limit split in two writes is fine.
    let at_limit = format!("NOOP {}", "x".repeat(507));
    client.send(&at_limit[..300]);
    sleep(GAP);
    client.send(format!("{}\r\n", &at_limit[300..]));
    expect_reply(&mut client, "250 2.0.0 ", "512-octet NOOP in two writes");

    // The tail of an overlong line arrives after the server gave up on its start: it is
    // still part of that line, never a command of its own.
    client.send("x".repeat(600));
    sleep(GAP);
    client.send("QUIT\r\n");
    expect_reply(&mut client, "500 5.5.2 ", "tail of an overlong line");

    // A megabyte without a line end: one reply only, memory is not the limit.
    let chunk = "y".repeat(64 * 1024);
    for _ in 0..16 {
        client.send(&chunk);
    }
    client.send("\r\n");
    expect_reply(&mut client, "500 5.5.2 ", "1 MiB line");
    // The next reply is the NOOP's: there was exactly one reply for the long line.
    client.expect("NOOP", "250 2.0.0 ");
    client.expect("QUIT", "221 2.0.0 ");
}

#[test]
fn command_line_at_exact_limit_split_before_lf_is_accepted() {
    let server = start("[limits]\nmax_command_line = 512\n");
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    let at_limit = format!("NOOP {}", "x".repeat(507));
    assert_eq!(at_limit.len(), 512);
    // In one write the line is accepted (see above); split between CR and LF it must be too.
    client.send(format!("{at_limit}\r"));
    sleep(GAP);
    client.send("\n");
    expect_reply(&mut client, "250 2.0.0 ", "512-octet NOOP split before LF");
}

// --- SMTP smuggling ---------------------------------------------------------------------

/// A message to postmaster whose first part ends with `ending` (a fake end of data),
/// followed by a smuggled transaction for the victim, then the real end of data.
fn smuggling_payload(subject: &str, ending: &str) -> String {
    format!(
        "Subject: {subject}\r\n\r\nhello{ending}MAIL FROM:<evil@example.com>\r\n\
         RCPT TO:<victim@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nowned\r\n.\r\n"
    )
}

#[test]
fn smuggling_with_normalize_is_stored_as_crlf_content_and_never_executed() {
    let server = Options::default()
        .config("[limits]\nbare_newline = \"normalize\"\n")
        .config(ACCOUNTS)
        .start();
    let endings = ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"];
    for (i, ending) in endings.iter().enumerate() {
        let mut client = server.client();
        open_transaction(&mut client, "postmaster@localhost");
        client.expect("DATA", "354");
        client.send(smuggling_payload(&format!("innocent {i}"), ending));
        expect_reply(
            &mut client,
            "250 2.0.0 OK queued as ",
            &format!("ending {ending:?}"),
        );
        // Exactly one reply for the whole payload: the smuggled lines were content.
        client.expect("NOOP", "250 2.0.0 ");
        client.expect("MAIL FROM:<sender@example.com>", "250 2.1.0 ");
        client.expect("QUIT", "221 2.0.0 ");
    }
    let messages = server.wait_for_messages("postmaster", endings.len());
    server.wait_for_empty_queue();
    assert_eq!(messages.len(), endings.len());
    assert!(
        server.messages("victim").is_empty(),
        "the smuggled RCPT must not run"
    );
    for (i, ending) in endings.iter().enumerate() {
        let subject = format!("Subject: innocent {i}\r\n");
        let message = messages
            .iter()
            .find(|m| String::from_utf8_lossy(m).contains(&subject))
            .unwrap_or_else(|| panic!("message {i} for ending {ending:?}"));
        // The bare ending became CRLF; the fake end and the smuggled commands are body lines.
        let expected = format!(
            "{subject}\r\nhello\r\n.\r\nMAIL FROM:<evil@example.com>\r\n\
             RCPT TO:<victim@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nowned\r\n"
        );
        assert!(
            message.ends_with(expected.as_bytes()),
            "ending {ending:?}: stored {:?}",
            String::from_utf8_lossy(message)
        );
        for (at, &b) in message.iter().enumerate() {
            match b {
                b'\n' => assert!(at > 0 && message[at - 1] == b'\r', "bare LF at {at}"),
                b'\r' => assert_eq!(message.get(at + 1), Some(&b'\n'), "bare CR at {at}"),
                _ => {}
            }
        }
    }
}

#[test]
fn data_end_marker_split_across_writes_is_recognized() {
    let server = TestServer::start();
    let mut client = server.client();
    open_transaction(&mut client, "postmaster@localhost");
    client.expect("DATA", "354");
    client.send("Subject: trickle\r\n\r\nbody");
    for piece in ["\r", "\n", ".", "\r", "\n"] {
        sleep(GAP / 5);
        client.send(piece);
    }
    expect_reply(&mut client, "250 2.0.0 OK queued as ", "trickled end");
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(messages[0].ends_with(b"Subject: trickle\r\n\r\nbody\r\n"));
}

// --- Binary garbage in commands -----------------------------------------------------------

#[test]
fn random_binary_garbage_gets_well_formed_replies_then_421_4_7_0_and_server_survives() {
    let server = TestServer::start();
    let noise = garbage(0x9E37_79B9_7F4A_7C15, 6 * 1024);
    let line_ends = noise.iter().filter(|&&b| b == b'\n').count();
    assert!(line_ends > 20, "the seed gives {line_ends} lines");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut greeting = [0u8; 256];
    let n = stream.read(&mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"220 "));
    // One write: the server reads it all at once and so has nothing unread when it closes.
    stream.write_all(&noise).unwrap();
    let mut raw = Vec::new();
    let started = Instant::now();
    loop {
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {:?}: {e}", String::from_utf8_lossy(&raw)),
        }
        assert!(started.elapsed() < PATIENCE, "server never closed");
    }
    let lines = well_formed_lines(&raw);
    let (last, errors) = lines.split_last().expect("replies");
    assert_eq!(last, "421 4.7.0 Too many errors, closing connection\r\n");
    // The default max_errors is 20: twenty 5xx replies, then the 421.
    assert_eq!(errors.len(), 20, "{lines:?}");
    assert!(
        errors.iter().all(|l| l.starts_with("500 5.5.2 ")),
        "{lines:?}"
    );
    server_still_delivers(&server);
}

// --- Slow clients -----------------------------------------------------------------------

#[test]
fn silent_client_gets_421_4_4_2_after_command_timeout() {
    let server = start("[limits]\ncommand_timeout = \"1s\"\n");
    let mut client = server.client();
    let started = Instant::now();
    expect_reply(&mut client, "421 4.4.2 ", "silence after the greeting");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_closed(&mut client, "after the timeout");

    // Half a command line and then silence: the same.
    let mut client = server.client();
    client.expect("EHLO client.test", "250");
    client.send("MAIL FROM:<slow@exam");
    expect_reply(&mut client, "421 4.4.2 ", "half a command");
    assert_closed(&mut client, "after the timeout");
}

/// The header section is held in memory until it ends, to be filtered and checked: one
/// that never ends (a 1 MB folded header field, or endless fields) is refused, not held.
#[test]
fn header_section_longer_than_a_session_buffers_is_refused() {
    let server = TestServer::start();
    let idle = server.rss_kib();
    for header in [
        format!(
            "X-Long: start\r\n{}",
            " and a folded line more of the same field\r\n".repeat(25_000)
        ),
        "X-Field: value\r\n".repeat(70_000),
    ] {
        let mut client = server.client();
        open_transaction(&mut client, "postmaster@localhost");
        client.expect("DATA", "354");
        client.send(header);
        client.send(b"\r\nbody\r\n");
        let reply = client.command(".");
        assert!(reply.starts_with("552 5.3.4"), "{reply}");
    }
    assert_nothing_stored(&server, &["postmaster"]);
    assert!(
        server.rss_kib() < idle + 32 * 1024,
        "the header was not held"
    );
}

#[test]
fn client_stalled_mid_data_gets_421_4_4_2_and_nothing_is_kept() {
    let server = start("[limits]\ndata_timeout = \"1s\"\n");
    let mut client = server.client();
    open_transaction(&mut client, "postmaster@localhost");
    client.expect("DATA", "354");
    client.send(b"Subject: stalled\r\n\r\n");
    client.send(filler(SPOOLED));
    // Enough content that the server has started a spool file.
    wait_for_spool_files(&server, 1);
    expect_reply(&mut client, "421 4.4.2 ", "stalled in DATA");
    assert_closed(&mut client, "after the data timeout");
    assert_nothing_stored(&server, &["postmaster"]);
    assert!(server.queue_files().is_empty());
    assert!(server.spool_files_in_progress().is_empty());
}

// --- Abrupt disconnects -----------------------------------------------------------------

#[test]
fn disconnect_mid_data_leaves_nothing_behind() {
    let server = TestServer::start();
    let mut client = server.client();
    open_transaction(&mut client, "postmaster@localhost");
    client.expect("DATA", "354");
    client.send(b"Subject: vanishing\r\n\r\n");
    client.send(filler(SPOOLED));
    wait_for_spool_files(&server, 1);
    drop(client);
    let end = wait_for_session_end(&server);
    assert!(
        end == "client closed" || end.starts_with("read error: "),
        "{end}"
    );
    assert_nothing_stored(&server, &["postmaster"]);
    server_still_delivers(&server);
    assert_eq!(server.messages("postmaster").len(), 1, "only the control");
}

#[test]
fn disconnect_mid_bdat_leaves_nothing_behind() {
    let server = TestServer::start();
    let mut client = server.client();
    open_transaction(&mut client, "postmaster@localhost");
    let first = [b"Subject: chunked\r\n\r\n".as_slice(), &filler(SPOOLED)].concat();
    client.send(format!("BDAT {}\r\n", first.len()));
    client.send(&first);
    expect_reply(
        &mut client,
        &format!("250 2.0.0 {} octets received", first.len()),
        "first chunk",
    );
    // The first chunk is in a spool file now.
    wait_for_spool_files(&server, 1);
    let second = filler(SPOOLED);
    client.send(format!("BDAT {} LAST\r\n", second.len()));
    client.send(&second[..second.len() / 2]);
    sleep(GAP);
    drop(client);
    let end = wait_for_session_end(&server);
    assert!(
        end == "client closed" || end.starts_with("read error: "),
        "{end}"
    );
    assert_nothing_stored(&server, &["postmaster"]);
    server_still_delivers(&server);
    assert_eq!(server.messages("postmaster").len(), 1, "only the control");
}

// --- Message size -----------------------------------------------------------------------

const SIZE_LIMIT: &str = "[limits]\nmax_message_size = 2048\n";

#[test]
fn data_content_over_size_limit_gets_552_5_3_4_and_nothing_stored() {
    let server = start(SIZE_LIMIT);
    let mut client = server.client();
    open_transaction(&mut client, "postmaster@localhost");
    client.expect("DATA", "354");
    let header = b"Subject: big\r\n\r\n";
    let mut too_big = [header.as_slice(), &filler(2047 - header.len())].concat();
    too_big.extend_from_slice(b"\r\n");
    assert_eq!(too_big.len(), 2049);
    client.send(&too_big);
    client.send(".\r\n");
    expect_reply(&mut client, "552 5.3.4 ", "2049 octets");
    client.expect("NOOP", "250 2.0.0 ");
    assert_nothing_stored(&server, &["postmaster"]);

    // Exactly at the limit is accepted.
    client.expect("MAIL FROM:<sender@example.com>", "250 2.1.0 ");
    client.expect("RCPT TO:<postmaster@localhost>", "250 2.1.5 ");
    client.expect("DATA", "354");
    let mut at_limit = [header.as_slice(), &filler(2046 - header.len())].concat();
    at_limit.extend_from_slice(b"\r\n");
    assert_eq!(at_limit.len(), 2048);
    client.send(&at_limit);
    client.send(".\r\n");
    expect_reply(&mut client, "250 2.0.0 OK queued as ", "2048 octets");
    let messages = server.wait_for_messages("postmaster", 1);
    assert_eq!(messages.len(), 1);
    assert!(messages[0].ends_with(&at_limit));
}

// --- Connection limits ------------------------------------------------------------------

/// An IPv4 client reaching a dual-stack socket shows as `::ffff:127.0.0.1`: the
/// per-address limits count it as the same client as `127.0.0.1`.
#[test]
fn ipv4_mapped_clients_count_as_their_ipv4_address() {
    let server = start(
        "[limits]\nmax_connections_per_ip = 1\n\n[[listener]]\nrole = \"mx\"\naddress = \"[::]:0\"\n",
    );
    let dual_stack = common::mailbox::listeners(&server, "mx")[1];
    let mut over_ipv4 = server.client();
    let mut mapped = Client::connect(([127, 0, 0, 1], dual_stack.port()).into());
    expect_reply(&mut mapped, "421 4.7.0 ", "second connection, IPv4-mapped");
    over_ipv4.expect("NOOP", "250 2.0.0 ");
}

#[test]
fn third_connection_from_one_ip_gets_421_4_7_0_and_a_freed_place_is_reused() {
    let server = start("[limits]\nmax_connections_per_ip = 2\n");
    let mut first = server.client();
    let mut second = server.client();
    let mut third = Client::connect(server.addr);
    expect_reply(&mut third, "421 4.7.0 ", "third connection");
    assert_closed(&mut third, "third connection");
    // The admitted two are unaffected.
    first.expect("NOOP", "250 2.0.0 ");
    second.expect("NOOP", "250 2.0.0 ");
    first.expect("QUIT", "221 2.0.0 ");
    assert_closed(&mut first, "after QUIT");
    // The freed place is given back once the server has noticed.
    let mut fourth = wait_until("a free connection place", || {
        let mut client = Client::connect(server.addr);
        let greeting = client.reply();
        if greeting.starts_with("421 4.7.0 ") {
            sleep(Duration::from_millis(20));
            return None;
        }
        assert!(greeting.starts_with("220 mx.test "), "{greeting}");
        Some(client)
    })
    .unwrap();
    fourth.expect("EHLO client.test", "250");
    second.expect("NOOP", "250 2.0.0 ");
}

// --- Isolation --------------------------------------------------------------------------

#[test]
fn client_stuck_mid_data_does_not_disturb_another_client() {
    let server = TestServer::start();
    let mut stuck = server.client();
    open_transaction(&mut stuck, "postmaster@localhost");
    stuck.expect("DATA", "354");
    stuck.send("Subject: stuck\r\n\r\nhalf a mess");

    let mut other = server.client();
    let reply = other.send_message(
        "other@example.com",
        &["postmaster@localhost"],
        "Subject: other\r\n\r\nunhindered\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    other.expect("QUIT", "221 2.0.0 ");
    let messages = server.wait_for_messages("postmaster", 1);
    assert!(messages[0].ends_with(b"Subject: other\r\n\r\nunhindered\r\n"));

    // The stuck client can still finish its own message.
    stuck.send("age\r\n.\r\n");
    expect_reply(&mut stuck, "250 2.0.0 OK queued as ", "stuck client");
    let messages = server.wait_for_messages("postmaster", 2);
    assert!(
        messages
            .iter()
            .any(|m| m.ends_with(b"Subject: stuck\r\n\r\nhalf a message\r\n"))
    );
    server.wait_for_empty_queue();
}

#[test]
fn rset_mid_bdat_discards_the_spooled_chunks() {
    let server = TestServer::start();
    let mut client = server.client();
    open_transaction(&mut client, "postmaster@localhost");
    let chunk = [b"Subject: chunked\r\n\r\n".as_slice(), &filler(SPOOLED)].concat();
    client.send(format!("BDAT {}\r\n", chunk.len()));
    client.send(&chunk);
    expect_reply(
        &mut client,
        &format!("250 2.0.0 {} octets received", chunk.len()),
        "first chunk",
    );
    wait_for_spool_files(&server, 1);
    client.expect("RSET", "250 2.0.0 ");
    assert_nothing_stored(&server, &["postmaster"]);
    // The next BDAT has no transaction to continue.
    client.send("BDAT 4 LAST\r\nQUIT");
    expect_reply(&mut client, "503 5.5.1 ", "BDAT after RSET");
    client.expect("NOOP", "250 2.0.0 ");
}

#[test]
fn client_that_never_reads_replies_is_dropped_after_the_timeout() {
    let server = start("[limits]\ncommand_timeout = \"1s\"\nmax_connections = 1\n");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut greeting = [0u8; 256];
    let n = stream.read(&mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"220 "));
    // Pipelined NOOPs, never reading a reply, until the server stops reading too: its
    // replies fill both socket buffers and it blocks writing them.
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let noops = "NOOP\r\n".repeat(10_000);
    let mut sent = 0usize;
    let started = Instant::now();
    loop {
        match stream.write(noops.as_bytes()) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        // The server already gave up on us and closed the connection.
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                break;
            }
            Err(e) => panic!("after {sent} octets: {e}"),
        }
        assert!(started.elapsed() < PATIENCE, "the server kept reading");
    }
    // The server must not wait forever on a peer that does not read: after a timeout its
    // only connection place is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = Client::connect(server.addr);
        let greeting = client.reply();
        if greeting.starts_with("220 ") {
            break;
        }
        assert!(greeting.starts_with("421 4.7.0 "), "{greeting}");
        assert!(
            Instant::now() < deadline,
            "the stuck session still holds its place:\n{}",
            server.log()
        );
        sleep(Duration::from_millis(100));
    }
    drop(stream);
}
