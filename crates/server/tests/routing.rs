//! Outbound routing and queue life against the real binary: MX preference and fallback,
//! load sharing among equal preferences, implicit MX, null MX, NXDOMAIN, SERVFAIL and DNS
//! timeouts, CNAMEs and IPv6-only hosts, mail loops (our own name, our own socket, too many
//! hops), destination back-off, double bounces, and crashes or restarts in the middle of
//! outbound delivery. Delay notices and expiry are played in `queue_clock.rs` on a clock the
//! test moves: the binary only has the system's, and a lifetime in real time is a wait.
//!
//! Every zone is served by a `TestDns` on loopback and every remote host is a scripted sink,
//! or, where a second host on the same port or an IPv6 host is needed, the small `MiniMx`
//! below on another loopback address (the `[delivery] port` is one value for all MX hosts,
//! and the harness sink only binds 127.0.0.1). Remote recipients are reached through
//! `fwd@localhost`, an alias, because the mx listener refuses relaying. Tests that need to
//! see a notice send as `postmaster@localhost`, whose Maildir then receives it.
//!

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::dns::TestDns;
use common::sink::{Sink, Stage};
use common::{Options, TestServer, wait_until};
use hickory_proto::rr::RecordType;
use mail_parser::{MessageParser, MimeHeaders};

/// A plain message.
const CONTENT: &str = "Subject: routing test\r\n\r\nbody\r\n";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The configuration of a test server: `[delivery]` towards `port` resolving through the
/// test DNS, `[queue]` with a 1 s retry, and `fwd@localhost` forwarding to `targets`.
struct Setup {
    port: u16,
    targets: Vec<String>,
    aliases: String,
    delivery: String,
    queue: String,
    extra: String,
}

impl Setup {
    fn new(port: u16, targets: &[&str]) -> Setup {
        Setup {
            port,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            aliases: String::new(),
            delivery: String::new(),
            queue: String::new(),
            extra: String::new(),
        }
    }

    /// One more alias, besides `fwd@localhost`.
    fn alias(mut self, address: &str, target: &str) -> Setup {
        self.aliases
            .push_str(&format!("\"{address}\" = [\"{target}\"]\n"));
        self
    }

    /// More `[delivery]` keys (a timeout given here replaces the short default).
    fn delivery(mut self, keys: &str) -> Setup {
        self.delivery.push_str(keys);
        self.delivery.push('\n');
        self
    }

    /// More `[queue]` keys (a `retry_schedule` given here replaces `["1s"]`).
    fn queue(mut self, keys: &str) -> Setup {
        self.queue.push_str(keys);
        self.queue.push('\n');
        self
    }

    /// More tables at the end of the file.
    fn extra(mut self, tables: &str) -> Setup {
        self.extra.push_str(tables);
        self.extra.push('\n');
        self
    }

    fn start(self, dns: &TestDns) -> TestServer {
        let mut delivery = format!(
            "[delivery]\nnameserver = \"{}\"\nport = {}\n",
            dns.addr, self.port
        );
        for (key, value) in [
            ("connect_timeout", "2s"),
            ("command_timeout", "3s"),
            ("final_timeout", "3s"),
        ] {
            if !self.delivery.contains(key) {
                delivery.push_str(&format!("{key} = \"{value}\"\n"));
            }
        }
        delivery.push_str(&self.delivery);
        let mut queue = String::from("[queue]\n");
        if !self.queue.contains("retry_schedule") {
            queue.push_str("retry_schedule = [\"1s\"]\n");
        }
        queue.push_str(&self.queue);
        let targets: Vec<String> = self.targets.iter().map(|t| format!("\"{t}\"")).collect();
        let aliases = format!(
            "[aliases]\n\"fwd@localhost\" = [{}]\n{}",
            targets.join(", "),
            self.aliases
        );
        Options::default()
            .config(&format!("{delivery}\n{queue}\n{aliases}\n{}", self.extra))
            .start()
    }
}

/// Sends one message through a fresh connection, asserting it is accepted.
fn send(server: &TestServer, from: &str, to: &[&str], content: &str) {
    let mut client = server.client();
    let reply = client.send_message(from, to, content);
    assert!(reply.starts_with("250 "), "{reply}\n{}", server.log());
    client.command("QUIT");
}

/// Lines of `log` that contain every needle.
fn lines_with(log: &str, needles: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Lines of the whole log (all runs) that contain every needle, counting every line the
/// server has logged so far (`settled_log`).
fn log_lines(server: &TestServer, needles: &[&str]) -> Vec<String> {
    lines_with(&server.settled_log(), needles)
}

/// Waits until at least `count` log lines contain every needle.
fn wait_for_lines(server: &TestServer, needles: &[&str], count: usize) -> Vec<String> {
    wait_until(&format!("{count} log lines with {needles:?}"), || {
        let lines = lines_with(&server.log(), needles);
        (lines.len() >= count).then_some(lines)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// Content whose header section starts with `hops` Received fields.
fn with_received(hops: usize, subject: &str) -> String {
    let mut content = String::new();
    for i in (1..=hops).rev() {
        content.push_str(&format!(
            "Received: from relay{i}.test (relay{i}.test [192.0.2.{}]) by hop{i}.test\r\n\
             \twith ESMTP id h{i}; Mon, 1 Jan 2024 00:00:00 +0000\r\n",
            i % 250 + 1
        ));
    }
    content.push_str(&format!("Subject: {subject}\r\n\r\nbody\r\n"));
    content
}

/// A delivery status notification, as its recipient sees it.
#[derive(Debug)]
struct Notice {
    subject: String,
    /// The `message/delivery-status` part.
    status_part: String,
}

impl Notice {
    fn parse(raw: &[u8]) -> Notice {
        let text = String::from_utf8_lossy(raw);
        let message = MessageParser::default()
            .parse(raw)
            .unwrap_or_else(|| panic!("unparsable notice:\n{text}"));
        let top = message
            .content_type()
            .unwrap_or_else(|| panic!("notice without Content-Type:\n{text}"));
        assert!(
            top.ctype().eq_ignore_ascii_case("multipart")
                && top
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
                && top.attribute("report-type") == Some("delivery-status"),
            "not a delivery status notification:\n{text}"
        );
        let part = message
            .parts
            .iter()
            .find(|p| {
                p.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case("message")
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
                })
            })
            .unwrap_or_else(|| panic!("no message/delivery-status part:\n{text}"));
        Notice {
            subject: message.subject().unwrap_or_default().to_string(),
            status_part: String::from_utf8_lossy(part.contents()).into_owned(),
        }
    }

    /// Every value of a delivery-status field (per-message and per-recipient alike).
    fn fields(&self, name: &str) -> Vec<String> {
        self.status_part
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_string())
            .collect()
    }

    /// The only value of a field, asserting there is exactly one.
    fn field(&self, name: &str) -> String {
        let values = self.fields(name);
        assert_eq!(values.len(), 1, "{name} in\n{}", self.status_part);
        values.into_iter().next().unwrap_or_default()
    }
}

/// Waits for `count` messages in the postmaster's Maildir and parses them as notices.
fn postmaster_notices(server: &TestServer, count: usize) -> Vec<Notice> {
    server
        .wait_for_messages("postmaster", count)
        .iter()
        .map(|m| Notice::parse(m))
        .collect()
}

/// Asserts the postmaster got exactly one notice, a failure with `status` for `recipient`.
fn assert_one_bounce(server: &TestServer, recipient: &str, status: &str) -> Notice {
    let notice = postmaster_notices(server, 1).remove(0);
    assert_eq!(notice.field("Action"), "failed", "{notice:?}");
    assert_eq!(
        notice.field("Status"),
        status,
        "{notice:?}\n{}",
        server.log()
    );
    assert_eq!(
        notice.field("Final-Recipient"),
        format!("rfc822; {recipient}"),
        "{notice:?}"
    );
    server.wait_for_empty_queue();
    assert_eq!(server.messages("postmaster").len(), 1, "{}", server.log());
    notice
}

/// A port that was free on 127.0.0.1 a moment ago (bound and released), for a second mx
/// listener of the server under test.
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").expect("probe port");
    probe.local_addr().expect("probe address").port()
}

/// A minimal SMTP server on any address (the harness sink only binds 127.0.0.1 and picks
/// its own port): it counts connections and accepts every message, or, with a greeting
/// other than 220, says it and hangs up.
struct MiniMx {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MiniMx {
    fn start(addr: SocketAddr, greeting: &str) -> std::io::Result<MiniMx> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let greeting = greeting.to_string();
        let thread = {
            let (connections, messages, stop) =
                (connections.clone(), messages.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::SeqCst);
                            let (messages, greeting) = (messages.clone(), greeting.clone());
                            std::thread::spawn(move || {
                                let _ = mini_session(stream, &greeting, &messages);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(MiniMx {
            addr,
            connections,
            messages,
            stop,
            thread: Some(thread),
        })
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for MiniMx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn mini_session(
    stream: TcpStream,
    greeting: &str,
    messages: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("{greeting}\r\n").as_bytes())?;
    if !greeting.starts_with("220") {
        return Ok(());
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" | "HELO" => "250 mini.test",
            "MAIL" => "250 2.1.0 ok",
            "RCPT" => "250 2.1.5 ok",
            "RSET" | "NOOP" => "250 2.0.0 ok",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                writer.write_all(b"354 go ahead\r\n")?;
                let mut content = String::new();
                loop {
                    let mut data = String::new();
                    if reader.read_line(&mut data)? == 0 {
                        return Ok(());
                    }
                    if data == ".\r\n" {
                        break;
                    }
                    content.push_str(data.strip_prefix('.').unwrap_or(&data));
                }
                messages.lock().unwrap().push(content);
                "250 2.0.0 accepted"
            }
            _ => "502 5.5.1 not implemented",
        };
        writer.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

// ---------------------------------------------------------------------------------------
// MX selection
// ---------------------------------------------------------------------------------------

/// Two MX hosts on the same port, on different loopback addresses: pref 10 is the sink on
/// 127.0.0.1, pref 20 an accepting server on 127.0.0.2. The pref-20 record is listed first
/// in the answer. Five messages, one after the other (each on a new connection, so each
/// one's host list is built afresh): all go to pref 10, and pref 20 is never contacted. A
/// server ignoring preference would pick pref 20 half of the time (missed with odds 1/32).
#[test]
fn mx_lowest_preference_is_used_first() {
    let sink = Sink::builder().hostname("mx10.prio.test").start();
    let port = sink.addr.port();
    let backup = MiniMx::start(
        SocketAddr::from(([127, 0, 0, 2], port)),
        "220 mx20.prio.test",
    )
    .expect("bind 127.0.0.2 on the sink's port");
    let dns = TestDns::builder()
        .mx("prio.test", 20, "mx20.prio.test")
        .mx("prio.test", 10, "mx10.prio.test")
        .a("mx20.prio.test", "127.0.0.2")
        .a("mx10.prio.test", "127.0.0.1")
        .start();
    let server = Setup::new(port, &["user@prio.test"]).start(&dns);
    for i in 1..=5 {
        send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
        sink.wait_for_messages(i);
    }
    server.wait_for_empty_queue();
    assert_eq!(sink.messages().len(), 5);
    assert_eq!(sink.messages()[0].recipients(), ["user@prio.test"]);
    assert_eq!(backup.connections(), 0, "the pref-20 host was contacted");
}

/// MX 10 resolves to 127.0.0.3, where nothing listens on the MX port (the port is held on
/// 127.0.0.1 by the sink, so nothing can listen on it anywhere else): connection refused.
/// The message must then go to MX 20, the sink on 127.0.0.1, in the same attempt.
#[test]
fn mx_falls_back_to_next_preference_when_first_is_unreachable() {
    let sink = Sink::builder().hostname("mx20.fallback.test").start();
    let dns = TestDns::builder()
        .mx("fallback.test", 10, "mx10.fallback.test")
        .mx("fallback.test", 20, "mx20.fallback.test")
        .a("mx10.fallback.test", "127.0.0.3")
        .a("mx20.fallback.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@fallback.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), ["user@fallback.test"]);
    server.wait_for_empty_queue();
    // Log lines are written by a background thread: wait for the one counted below.
    server.wait_for_log("result=\"delivered\"");
    let failed = log_lines(
        &server,
        &[
            "connection failed",
            &format!("127.0.0.3:{}", sink.addr.port()),
        ],
    );
    assert_eq!(failed.len(), 1, "MX 10 tried once first\n{}", server.log());
    // Delivered on the first attempt, not after a retry.
    assert_eq!(
        log_lines(&server, &["result=\"delivered\"", "attempt=1"]).len(),
        1,
        "{}",
        server.log()
    );
    assert!(log_lines(&server, &["result=\"deferred\""]).is_empty());
}

/// Two MX hosts of the same preference, both accepting: 20 messages, sent one after the
/// other so each gets its own connection and its own shuffle (no connection is kept open
/// between them, which would rightly carry them all), must not all go to one host.
/// With a fair coin per message, a correct server fails this test with probability
/// 2 × 2^-20 ≈ 1.9 × 10^-6 (all 20 on the same side).
#[test]
fn equal_preference_mx_hosts_share_the_load() {
    let sink = Sink::builder().hostname("a.equal.test").start();
    let port = sink.addr.port();
    let other = MiniMx::start(SocketAddr::from(([127, 0, 0, 2], port)), "220 b.equal.test")
        .expect("bind 127.0.0.2 on the sink's port");
    let dns = TestDns::builder()
        .mx("equal.test", 10, "a.equal.test")
        .mx("equal.test", 10, "b.equal.test")
        .a("a.equal.test", "127.0.0.1")
        .a("b.equal.test", "127.0.0.2")
        .start();
    let server = Setup::new(port, &["user@equal.test"])
        .delivery("connection_cache_time = \"0s\"")
        .start(&dns);
    const MESSAGES: usize = 20;
    for i in 1..=MESSAGES {
        send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
        wait_until(&format!("{i} deliveries"), || {
            (sink.messages().len() + other.messages().len() >= i).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    }
    server.wait_for_empty_queue();
    let (a, b) = (sink.messages().len(), other.messages().len());
    eprintln!("equal preference: a.equal.test got {a}, b.equal.test got {b}");
    assert_eq!(a + b, MESSAGES);
    assert!(a > 0 && b > 0, "all to one host: a={a} b={b}");
}

/// A domain with no MX but an A record is its own mail host (RFC 5321 §5.1, implicit MX).
#[test]
fn domain_without_mx_is_reached_through_its_a_record() {
    let sink = Sink::builder().hostname("plain.test").start();
    let dns = TestDns::builder().a("plain.test", "127.0.0.1").start();
    let server = Setup::new(sink.addr.port(), &["user@plain.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), ["user@plain.test"]);
    server.wait_for_empty_queue();
    assert!(
        dns.count("plain.test", RecordType::MX) >= 1,
        "{:?}",
        dns.queries()
    );
    assert!(
        dns.count("plain.test", RecordType::A) >= 1,
        "{:?}",
        dns.queries()
    );
}

// ---------------------------------------------------------------------------------------
// DNS answers that stop or delay delivery
// ---------------------------------------------------------------------------------------

/// RFC 7505 null MX: a permanent failure (5.1.10), even though the domain has an A record
/// pointing at a listening sink: no fallback, no connection.
#[test]
fn null_mx_bounces_with_5_1_10_without_connecting() {
    let sink = Sink::start();
    let dns = TestDns::builder()
        .null_mx("nullmx.test")
        .a("nullmx.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@nullmx.test"]).start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    let notice = assert_one_bounce(&server, "user@nullmx.test", "5.1.10");
    assert_eq!(notice.subject, "Undelivered Mail Returned to Sender");
    assert_eq!(sink.connections(), 0, "{}", sink.transcript());
}

/// A recipient domain that does not exist (NXDOMAIN): bounced at once with 5.1.2.
#[test]
fn nxdomain_bounces_with_5_1_2() {
    let sink = Sink::start();
    let dns = TestDns::builder().a("other.test", "127.0.0.1").start();
    let server = Setup::new(sink.addr.port(), &["user@nowhere.test"]).start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    assert_one_bounce(&server, "user@nowhere.test", "5.1.2");
    assert_eq!(sink.connections(), 0);
    assert_eq!(
        log_lines(&server, &["result=\"failed\"", "user@nowhere.test"]).len(),
        1,
        "failed on the first attempt\n{}",
        server.log()
    );
}

/// SERVFAIL on the MX lookup is temporary: deferred (4.4.3 in the log), no bounce, still in
/// the queue; with retry_schedule ["1s"] it is attempted again, which the DNS server sees
/// as a new MX query about a second later.
#[test]
fn servfail_defers_and_retries() {
    let dns = TestDns::builder()
        .servfail("broken.test")
        .a("other.test", "127.0.0.1")
        .start();
    let sink = Sink::start();
    let server = Setup::new(sink.addr.port(), &["user@broken.test"]).start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    let first = wait_for_lines(&server, &["result=\"deferred\"", "user@broken.test"], 1);
    assert!(first[0].contains("4.4.3"), "{first:?}");
    let queries = dns.count("broken.test", RecordType::MX);
    assert!(queries >= 1);
    wait_until("a new MX query for broken.test", || {
        (dns.count("broken.test", RecordType::MX) > queries).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", dns.queries(), server.log()));
    wait_for_lines(&server, &["result=\"deferred\"", "attempt=2"], 1);
    assert!(
        server.messages("postmaster").is_empty(),
        "bounced:\n{}",
        server.log()
    );
    assert!(log_lines(&server, &["result=\"failed\""]).is_empty());
    assert!(!server.queue_files().is_empty(), "message left the queue");
    assert_eq!(sink.connections(), 0);
}

/// A DNS server that never answers: the lookup times out (the resolver's timeout follows
/// command_timeout, 1 s here), and the message is deferred, not bounced.
#[test]
fn dns_timeout_defers_without_bounce() {
    let dns = TestDns::builder()
        .timeout("silent.test")
        .a("other.test", "127.0.0.1")
        .start();
    let sink = Sink::start();
    let server = Setup::new(sink.addr.port(), &["user@silent.test"])
        .delivery("command_timeout = \"1s\"")
        .start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    let lines = wait_for_lines(&server, &["result=\"deferred\"", "user@silent.test"], 1);
    assert!(lines[0].contains("4.4.3"), "{lines:?}");
    assert!(dns.count("silent.test", RecordType::MX) >= 1);
    assert!(
        server.messages("postmaster").is_empty(),
        "bounced:\n{}",
        server.log()
    );
    assert!(log_lines(&server, &["result=\"failed\""]).is_empty());
    assert!(!server.queue_files().is_empty(), "message left the queue");
    assert_eq!(sink.connections(), 0);
}

/// MX exchanges reached through CNAMEs: `viaalias.test`'s MX host is an alias of an alias
/// of a name with the A record; `aliased.test` itself is an alias of a domain with an MX.
/// Both are delivered to the sink.
#[test]
fn cname_chains_to_the_mx_host_are_followed() {
    let sink = Sink::start();
    let dns = TestDns::builder()
        .mx("viaalias.test", 10, "mx.viaalias.test")
        .cname("mx.viaalias.test", "hop.viaalias.test")
        .cname("hop.viaalias.test", "real.viaalias.test")
        .a("real.viaalias.test", "127.0.0.1")
        .cname("aliased.test", "target.test")
        .mx("target.test", 10, "mx.target.test")
        .a("mx.target.test", "127.0.0.1")
        .start();
    let server = Setup::new(
        sink.addr.port(),
        &["user@viaalias.test", "user@aliased.test"],
    )
    .start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    let messages = sink.wait_for_messages(2);
    server.wait_for_empty_queue();
    let mut recipients: Vec<String> = messages.iter().flat_map(|m| m.recipients()).collect();
    recipients.sort();
    assert_eq!(recipients, ["user@aliased.test", "user@viaalias.test"]);
    assert!(server.messages("postmaster").is_empty(), "{}", server.log());
}

/// An MX host with only an AAAA record (::1). The harness sink binds 127.0.0.1 only, so
/// the receiving end here is the `MiniMx` of this file on [::1]; the test fails where the
/// machine has no IPv6 loopback.
#[test]
fn mx_host_with_only_an_aaaa_record() {
    require_ipv6_loopback();
    let mx =
        MiniMx::start("[::1]:0".parse().unwrap(), "220 mx.v6only.test").expect("listen on [::1]");
    let dns = TestDns::builder()
        .mx("v6only.test", 10, "mx.v6only.test")
        .aaaa("mx.v6only.test", "::1")
        .start();
    let server = Setup::new(mx.addr.port(), &["user@v6only.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    wait_until("delivery over IPv6", || {
        (!mx.messages().is_empty()).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    server.wait_for_empty_queue();
    assert!(mx.messages()[0].contains("Subject: routing test"));
    assert_eq!(mx.connections(), 1);
}

/// Fails the test, saying what is missing, where this machine cannot listen on the IPv6
/// loopback: a skipped test would look just like a passing one.
fn require_ipv6_loopback() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        panic!(
            "cannot listen on [::1] ({e}): this test needs the IPv6 loopback (Linux: sysctl -w \
             net.ipv6.conf.lo.disable_ipv6=0; Docker: a network with IPv6 enabled)"
        );
    }
}

/// An MX host with both AAAA ::1 and A 127.0.0.1, each accepting on the MX port (the sink on
/// 127.0.0.1, a `MiniMx` on [::1]): IPv6 is tried first, so the message goes over IPv6 and
/// the IPv4 sink is never contacted.
#[test]
fn ipv6_address_of_mx_host_is_tried_before_ipv4() {
    require_ipv6_loopback();
    let sink = Sink::builder().hostname("mx.dual.test").start();
    let port = sink.addr.port();
    let v6 = MiniMx::start(
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        "220 mx.dual.test",
    )
    .expect("bind [::1] on the sink's port");
    let dns = TestDns::builder()
        .mx("dual.test", 10, "mx.dual.test")
        .a("mx.dual.test", "127.0.0.1")
        .aaaa("mx.dual.test", "::1")
        .start();
    let server = Setup::new(port, &["user@dual.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    wait_until("delivery over IPv6", || {
        (!v6.messages().is_empty()).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    server.wait_for_empty_queue();
    assert_eq!(sink.connections(), 0, "{}", sink.transcript());
}

/// The same host when nothing listens on [::1] at the MX port (refused): the IPv4 address
/// is tried next, in the same attempt.
#[test]
fn ipv4_address_is_tried_when_ipv6_refuses() {
    require_ipv6_loopback();
    let sink = Sink::builder().hostname("mx.dual.test").start();
    let port = sink.addr.port();
    let dns = TestDns::builder()
        .mx("dual.test", 10, "mx.dual.test")
        .a("mx.dual.test", "127.0.0.1")
        .aaaa("mx.dual.test", "::1")
        .start();
    let server = Setup::new(port, &["user@dual.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
    let refused = log_lines(&server, &["connection failed", &format!("[::1]:{port}")]);
    assert_eq!(refused.len(), 1, "IPv6 first\n{}", server.log());
    assert_eq!(
        log_lines(&server, &["result=\"delivered\"", "attempt=1"]).len(),
        1,
        "{}",
        server.log()
    );
}

/// An MX host whose address lookup fails (SERVFAIL) while a worse-preference MX host
/// resolves and accepts: every host is tried in order, so the message goes to the second
/// host in the first attempt rather than waiting for the broken one's DNS to be repaired.
#[test]
fn mx_host_whose_address_lookup_fails_is_skipped() {
    let sink = Sink::builder().hostname("good.part.test").start();
    let dns = TestDns::builder()
        .mx("part.test", 10, "broken.part.test")
        .mx("part.test", 20, "good.part.test")
        .servfail("broken.part.test")
        .a("good.part.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@part.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    wait_for_lines(&server, &["delivery", "user@part.test"], 1);
    let first = log_lines(&server, &["delivery", "user@part.test", "attempt=1"]);
    assert!(
        first.iter().any(|l| l.contains("result=\"delivered\"")),
        "first attempt: {first:#?}\n{}",
        server.log()
    );
    sink.wait_for_messages(1);
    server.wait_for_empty_queue();
}

// ---------------------------------------------------------------------------------------
// Mail loops
// ---------------------------------------------------------------------------------------

/// The domain's only MX resolves to 127.0.0.1 on the port of one of our own mx listeners.
/// The harness's listener port is known only after start and a restart reuses the same
/// configuration, so the server gets a second mx listener on a port chosen beforehand
/// (bound and released just before the start: the small window in which another process
/// could take it would fail the start loudly, not the assertion), and `[delivery] port` is
/// that port. Without loop detection the server would connect to itself and be refused
/// relaying (5.7.1); with it, the message bounces with 5.4.6.
#[test]
fn mx_pointing_at_our_own_listener_bounces_with_5_4_6() {
    let port = free_port();
    let dns = TestDns::builder()
        .mx("loop.test", 10, "mx.loop.test")
        .a("mx.loop.test", "127.0.0.1")
        .start();
    let server = Setup::new(port, &["user@loop.test"])
        .extra(&format!(
            "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:{port}\"\n"
        ))
        .start(&dns);
    assert!(
        log_lines(&server, &["listening", &format!("127.0.0.1:{port}")]).len() == 1,
        "second listener not up\n{}",
        server.log()
    );
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    let notice = assert_one_bounce(&server, "user@loop.test", "5.4.6");
    assert!(notice.subject.contains("Undelivered"), "{notice:?}");
    assert!(
        notice.fields("Diagnostic-Code").is_empty(),
        "no SMTP reply: the server never talked to itself\n{notice:?}"
    );
    assert!(!server.settled_log().contains("5.7.1"), "{}", server.log());
}

/// The domain's MX host name is our own host name (`mx.test`): we are that MX, and mail
/// for it must not be sent anywhere (5.4.6), even though the name resolves to a sink.
#[test]
fn mx_host_named_like_us_bounces_with_5_4_6() {
    let sink = Sink::start();
    let dns = TestDns::builder()
        .mx("self.test", 10, "mx.test")
        .a("mx.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@self.test"]).start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    assert_one_bounce(&server, "user@self.test", "5.4.6");
    assert_eq!(sink.connections(), 0, "{}", sink.transcript());
}

/// RFC 5321 §5.1: a host that finds itself among a domain's MX hosts discards its own
/// record and every record of the same or a higher preference value. MX 10 is us
/// (`mx.test`), MX 20 a backup that resolves to a sink: nothing is left, 5.4.6, and the
/// backup is never contacted.
#[test]
fn backup_mx_after_our_own_name_is_not_used() {
    let sink = Sink::start();
    let dns = TestDns::builder()
        .mx("primary.test", 10, "mx.test")
        .mx("primary.test", 20, "backup.primary.test")
        .a("mx.test", "127.0.0.1")
        .a("backup.primary.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@primary.test"]).start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    assert_one_bounce(&server, "user@primary.test", "5.4.6");
    assert_eq!(sink.connections(), 0, "{}", sink.transcript());
}

/// The converse: we are only the backup (MX 20) and the primary (MX 10) is a sink: mail
/// goes to the primary.
#[test]
fn mx_with_better_preference_than_ours_is_used() {
    let sink = Sink::builder().hostname("primary.backup.test").start();
    let dns = TestDns::builder()
        .mx("backup.test", 10, "primary.backup.test")
        .mx("backup.test", 20, "mx.test")
        .a("primary.backup.test", "127.0.0.1")
        .a("mx.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@backup.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), ["user@backup.test"]);
    server.wait_for_empty_queue();
}

/// RFC 5321 §5.1 again, at equal preference: MX 10 is us and MX 10 a peer (a sink). "All
/// records at that preference level" are discarded, so every message must bounce with
/// 5.4.6 and the peer never be contacted. Eight messages: a server that only drops the
/// hosts shuffled after its own name sends each one to the peer with odds 1/2, and gets
/// through this test with odds 1/256.
#[test]
fn mx_peer_at_our_own_preference_is_not_used() {
    let sink = Sink::builder().hostname("peer.samepref.test").start();
    let dns = TestDns::builder()
        .mx("samepref.test", 10, "mx.test")
        .mx("samepref.test", 10, "peer.samepref.test")
        .a("mx.test", "127.0.0.1")
        .a("peer.samepref.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@samepref.test"]).start(&dns);
    const MESSAGES: usize = 8;
    for _ in 0..MESSAGES {
        send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    }
    wait_until("every message settled", || {
        let settled = log_lines(&server, &["delivery", "user@samepref.test"])
            .iter()
            .filter(|l| !l.contains("result=\"deferred\""))
            .count();
        (settled >= MESSAGES).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    server.wait_for_empty_queue();
    let delivered = sink.messages().len();
    let notices: Vec<Notice> = server
        .messages("postmaster")
        .iter()
        .map(|m| Notice::parse(m))
        .collect();
    eprintln!(
        "{MESSAGES} messages: {delivered} delivered to the same-preference peer, {} bounced",
        notices.len()
    );
    assert_eq!(delivered, 0, "delivered to a peer of our own preference");
    assert_eq!(notices.len(), MESSAGES);
    assert!(
        notices.iter().all(|n| n.field("Status") == "5.4.6"),
        "{notices:#?}"
    );
}

/// MX 10 resolves to our own listening socket (a second mx listener on a port chosen
/// beforehand, as in `mx_pointing_at_our_own_listener_bounces_with_5_4_6`), MX 20
/// is a backup on 127.0.0.2 at the same port (a `MiniMx`, accepting). We are the best MX,
/// so the backup (worse preference than us) must not be used either: 5.4.6, and the
/// backup never contacted.
#[test]
fn backup_mx_after_our_own_socket_is_not_used() {
    let port = free_port();
    let backup = MiniMx::start(
        SocketAddr::from(([127, 0, 0, 2], port)),
        "220 backup.selfsock.test",
    )
    .expect("bind 127.0.0.2");
    let dns = TestDns::builder()
        .mx("selfsock.test", 10, "mx.selfsock.test")
        .mx("selfsock.test", 20, "backup.selfsock.test")
        .a("mx.selfsock.test", "127.0.0.1")
        .a("backup.selfsock.test", "127.0.0.2")
        .start();
    let server = Setup::new(port, &["user@selfsock.test"])
        .extra(&format!(
            "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:{port}\"\n"
        ))
        .start(&dns);
    send(&server, "postmaster@localhost", &["fwd@localhost"], CONTENT);
    wait_for_lines(&server, &["delivery", "user@selfsock.test"], 1);
    server.wait_for_empty_queue();
    assert_eq!(
        backup.connections(),
        0,
        "the backup MX was used: {:?}\n{}",
        backup.messages(),
        server.log()
    );
    assert_one_bounce(&server, "user@selfsock.test", "5.4.6");
}

/// The hop-count test server: remote mail goes to the sink, `bob` is a local account.
fn hop_server(sink: &Sink, dns: &TestDns) -> TestServer {
    Setup::new(sink.addr.port(), &["user@hops.test"])
        .extra("[[account]]\nname = \"postmaster\"\n\n[[account]]\nname = \"bob\"\n")
        .start(dns)
}

fn hop_dns() -> TestDns {
    TestDns::builder()
        .mx("hops.test", 10, "mx.hops.test")
        .a("mx.hops.test", "127.0.0.1")
        .start()
}

/// 51 Received fields (plus ours: 52 > max_hops 50) to a remote recipient: a loop, 5.4.6,
/// and nothing reaches the sink.
#[test]
fn too_many_hops_to_remote_recipient_bounces_with_5_4_6() {
    let sink = Sink::start();
    let dns = hop_dns();
    let server = hop_server(&sink, &dns);
    send(
        &server,
        "postmaster@localhost",
        &["fwd@localhost"],
        &with_received(51, "looping"),
    );
    assert_one_bounce(&server, "user@hops.test", "5.4.6");
    assert_eq!(sink.connections(), 0, "{}", sink.transcript());
}

/// 51 Received fields to a local recipient: 5.4.6 too, and the mailbox stays empty.
#[test]
fn too_many_hops_to_local_recipient_bounces_with_5_4_6() {
    let sink = Sink::start();
    let dns = hop_dns();
    let server = hop_server(&sink, &dns);
    send(
        &server,
        "postmaster@localhost",
        &["bob@localhost"],
        &with_received(51, "looping"),
    );
    assert_one_bounce(&server, "bob@localhost", "5.4.6");
    assert!(server.messages("bob").is_empty());
}

/// 49 Received fields (plus ours: 50, not more than max_hops): delivered, remote and local.
#[test]
fn hop_count_within_limit_is_delivered() {
    let sink = Sink::start();
    let dns = hop_dns();
    let server = hop_server(&sink, &dns);
    send(
        &server,
        "postmaster@localhost",
        &["fwd@localhost", "bob@localhost"],
        &with_received(49, "long path"),
    );
    let remote = sink.wait_for_messages(1);
    let local = server.wait_for_messages("bob", 1);
    server.wait_for_empty_queue();
    let received = |text: &str| {
        text.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("received:"))
            .count()
    };
    assert_eq!(received(&remote[0].text()), 50);
    assert_eq!(received(&String::from_utf8_lossy(&local[0])), 50);
    assert!(server.messages("postmaster").is_empty(), "{}", server.log());
}

// ---------------------------------------------------------------------------------------
// Back-off and double bounces
// ---------------------------------------------------------------------------------------

/// The MX answers every connection with "421 4.3.2" (counted by `MiniMx`). The first message
/// finds it down and the destination is backed off, for the first step of retry_schedule:
/// an hour here, so that no retry and no end of the back-off can come within the test,
/// however slow the machine. Four more messages sent right after must be deferred without
/// any new connection: 5 messages, 1 connection.
#[test]
fn unreachable_destination_is_backed_off_as_a_whole() {
    let mx = MiniMx::start(
        "127.0.0.1:0".parse().unwrap(),
        "421 4.3.2 service not available",
    )
    .expect("bind");
    let dns = TestDns::builder()
        .mx("down.test", 10, "mx.down.test")
        .a("mx.down.test", "127.0.0.1")
        .start();
    let server = Setup::new(mx.addr.port(), &["user@down.test"])
        .queue("retry_schedule = [\"1h\"]")
        .start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    wait_for_lines(
        &server,
        &["destination unreachable, backing off", "mx:down.test"],
        1,
    );
    for _ in 0..4 {
        send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    }
    let deferred = wait_for_lines(&server, &["result=\"deferred\"", "user@down.test"], 5);
    eprintln!("5 messages, {} connection(s) to the MX", mx.connections());
    assert_eq!(deferred.len(), 5, "{deferred:#?}");
    assert_eq!(mx.connections(), 1, "{}", server.log());
    // The four later messages were never tried: they carry the first one's error.
    assert!(
        deferred.iter().all(|l| l.contains("421 4.3.2")),
        "the last error is kept: {deferred:#?}"
    );
    assert_eq!(
        log_lines(&server, &["destination unreachable, backing off"]).len(),
        1,
        "{}",
        server.log()
    );
    assert!(!server.queue_files().is_empty());
    assert!(server.messages("postmaster").is_empty());
}

/// A message with the null sender whose remote recipient is refused (550): the bounce has
/// nobody to go to, so the postmaster gets one notice, and nothing loops: the spool
/// empties, and then there is exactly one notice and the sink saw one connection. A notice
/// enters the spool before the message that owes it leaves, and leaves only once delivered:
/// a loop would never let the spool empty, and once it is empty nothing more can come.
#[test]
fn double_bounce_goes_to_postmaster_once() {
    let sink = Sink::builder().rcpt(|_| "550 5.1.1 no such user").start();
    let dns = TestDns::builder()
        .mx("refuses.test", 10, "mx.refuses.test")
        .a("mx.refuses.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@refuses.test"]).start(&dns);
    send(&server, "", &["fwd@localhost"], CONTENT);
    let notice = assert_one_bounce(&server, "user@refuses.test", "5.1.1");
    assert!(
        notice
            .fields("Diagnostic-Code")
            .iter()
            .any(|d| d.contains("550")),
        "{notice:?}"
    );
    assert_eq!(server.messages("postmaster").len(), 1, "{}", server.log());
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
    assert_eq!(sink.connections(), 1, "{}", sink.transcript());
    assert!(sink.messages().is_empty());
}

/// The same with `notify_postmaster = false`: nobody is told, and the spool still empties
/// (which settles it, as above).
#[test]
fn double_bounce_without_notify_postmaster_is_dropped() {
    let sink = Sink::builder().rcpt(|_| "550 5.1.1 no such user").start();
    let dns = TestDns::builder()
        .mx("refuses.test", 10, "mx.refuses.test")
        .a("mx.refuses.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@refuses.test"])
        .queue("notify_postmaster = false")
        .start(&dns);
    send(&server, "", &["fwd@localhost"], CONTENT);
    wait_for_lines(&server, &["result=\"failed\"", "user@refuses.test"], 1);
    server.wait_for_empty_queue();
    assert!(server.messages("postmaster").is_empty(), "{}", server.log());
    assert!(server.queue_files().is_empty());
    assert_eq!(sink.connections(), 1, "{}", sink.transcript());
    assert!(
        log_lines(&server, &["notice queued"]).is_empty(),
        "{}",
        server.log()
    );
}

/// The postmaster is remote here (`postmaster@localhost` is an alias of an address at the
/// refusing sink; the postmaster account keeps only `root@localhost`, so the alias may
/// claim the address). A null-sender message is refused, its notice goes to the postmaster and
/// is refused too: that notice about a notice is dropped. The spool empties (no loop, and
/// nothing more to come: see `double_bounce_goes_to_postmaster_once`), and there were two
/// connections in all: the message and the one notice.
#[test]
fn failed_notice_to_the_postmaster_is_dropped_not_looped() {
    let sink = Sink::builder().rcpt(|_| "550 5.1.1 no such user").start();
    let dns = TestDns::builder()
        .mx("refuses.test", 10, "mx.refuses.test")
        .a("mx.refuses.test", "127.0.0.1")
        .start();
    let server = Setup::new(sink.addr.port(), &["user@refuses.test"])
        .alias("postmaster@localhost", "pm@refuses.test")
        .extra("[[account]]\nname = \"postmaster\"\naddresses = [\"root@localhost\"]\n")
        .start(&dns);
    send(&server, "", &["fwd@localhost"], CONTENT);
    wait_for_lines(&server, &["result=\"failed\"", "pm@refuses.test"], 1);
    server.wait_for_empty_queue();
    assert_eq!(sink.connections(), 2, "{}", sink.transcript());
    assert_eq!(
        log_lines(&server, &["notice queued"]).len(),
        1,
        "one notice only\n{}",
        server.log()
    );
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
    assert!(server.messages("postmaster").is_empty());
    assert_eq!(
        log_lines(&server, &["no notice for a message without sender"]).len(),
        1,
        "{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------
// Crashes and restarts
// ---------------------------------------------------------------------------------------

/// True once a sink transcript shows the whole content was received: the final dot of DATA
/// or a BDAT chunk (the sink advertises CHUNKING, and Posthorn sends one BDAT LAST).
fn content_received(transcript: &str) -> bool {
    transcript.lines().any(|line| {
        let entry = line.split_once("] ").map_or(line, |(_, rest)| rest);
        entry == "C: ." || entry.starts_with("C: [BDAT chunk of")
    })
}

/// The sink reads the whole content and never answers (Stage::DataEnd); the server is then
/// killed with SIGKILL, the sink is set to accept, and the server restarted: the message is
/// delivered (at least once: the first copy got no reply, so a duplicate would be
/// legitimate but the sink only records what it acknowledged), and the spool ends empty.
#[test]
fn kill9_during_outbound_data_delivers_after_restart() {
    let sink = Sink::builder()
        .hostname("mx.crash.test")
        .stall_at(Stage::DataEnd)
        .start();
    let dns = TestDns::builder()
        .mx("crash.test", 10, "mx.crash.test")
        .a("mx.crash.test", "127.0.0.1")
        .start();
    let mut server = Setup::new(sink.addr.port(), &["user@crash.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    wait_until("the content at the sink", || {
        content_received(&sink.transcript()).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", sink.transcript(), server.log()));
    assert!(sink.messages().is_empty());
    server.kill9();
    assert!(
        !server.queue_files().is_empty(),
        "the message must survive the crash"
    );
    sink.reconfigure(|b| b.stall_at(None::<Stage>));
    server.restart();
    let messages = sink.wait_for_messages(1);
    // Every copy the sink acknowledged was recorded before the server had the reply, and
    // so before the message left the spool.
    server.wait_for_empty_queue();
    let copies = sink.messages().len();
    eprintln!(
        "after the crash: {copies} cop{} acknowledged by the sink, {} connection(s)",
        if copies == 1 { "y" } else { "ies" },
        sink.connections()
    );
    assert!(copies >= 1);
    assert_eq!(messages[0].recipients(), ["user@crash.test"]);
    assert!(messages[0].text().ends_with(CONTENT));
}

/// A message deferred because the MX says "421" at connect; the server stops (SIGTERM or
/// SIGKILL), the MX comes back, and the restarted server delivers it.
fn restart_resumes(graceful: bool) {
    let sink = Sink::builder()
        .hostname("mx.resume.test")
        .greeting("421 4.3.2 down for maintenance")
        .start();
    let dns = TestDns::builder()
        .mx("resume.test", 10, "mx.resume.test")
        .a("mx.resume.test", "127.0.0.1")
        .start();
    let mut server = Setup::new(sink.addr.port(), &["user@resume.test"]).start(&dns);
    send(&server, "alice@example.com", &["fwd@localhost"], CONTENT);
    wait_for_lines(&server, &["result=\"deferred\"", "user@resume.test"], 1);
    assert!(sink.connections() >= 1);
    if graceful {
        let status = server.stop();
        assert!(status.success(), "{status}\n{}", server.log());
    } else {
        server.kill9();
    }
    assert!(
        !server.queue_files().is_empty(),
        "the deferred message must stay queued"
    );
    sink.reconfigure(|b| b.greeting("220 mx.resume.test ESMTP back"));
    server.restart();
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), ["user@resume.test"]);
    server.wait_for_empty_queue();
    assert!(server.messages("postmaster").is_empty());
}

#[test]
fn restart_after_sigterm_resumes_deferred_delivery() {
    restart_resumes(true);
}

#[test]
fn restart_after_kill9_resumes_deferred_delivery() {
    restart_resumes(false);
}
