//! POP3 against the real server: Python's poplib for whole sessions in the clear (on a
//! listener that allows it), after STLS and over implicit TLS (pop3s); raw sockets for
//! the exact responses, the UPDATE-state rules (deletions only at QUIT), the IN-USE lock
//! and the brute-force throttle.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use std::time::{Duration, Instant};

use common::mailbox::{listeners, maildir_files, subject_of};
use common::{Options, PATIENCE, TestServer, wait_until};

const PW: &str = "alice-pop-password";

/// A server with alice (password `PW`) at example.com and, in this order, a POP3
/// listener that allows logins in the clear, a default one (STLS first) and a pop3s one.
fn server(extra: &str) -> TestServer {
    let alice = posthorn::accounts::passwords::hash(PW).unwrap();
    Options::default()
        .config(&format!(
            r#"
[[listener]]
role = "pop3"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[listener]]
role = "pop3"
address = "127.0.0.1:0"

[[listener]]
role = "pop3s"
address = "127.0.0.1:0"

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{alice}"
{extra}"#
        ))
        .start()
}

/// The POP3 listener that takes passwords in the clear.
fn plain_pop3(server: &TestServer) -> SocketAddr {
    listeners(server, "pop3")[0]
}

/// The default POP3 listener (STLS before login).
fn tls_pop3(server: &TestServer) -> SocketAddr {
    listeners(server, "pop3")[1]
}

/// A test message with a unique subject; its body has a line starting with a dot.
fn message(subject: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\nfirst line of {subject}\r\n\
         .leading dot\r\nthird line\r\n"
    )
}

/// Delivers messages with these subjects to alice by SMTP, one at a time so that they
/// arrive (and are numbered) in this order.
fn deliver(server: &TestServer, subjects: &[&str]) {
    let mut client = server.client();
    for subject in subjects {
        let before = server.messages("alice").len();
        let reply = client.send_message(
            "sender@example.org",
            &["alice@example.com"],
            &message(subject),
        );
        assert!(reply.starts_with("250"), "delivery of {subject}: {reply}");
        server.wait_for_messages("alice", before + 1);
    }
}

/// The subjects of alice's INBOX messages on disk, sorted.
fn subjects_on_disk(server: &TestServer) -> Vec<String> {
    let mut subjects: Vec<String> = maildir_files(&server.maildir("alice"))
        .iter()
        .map(|(_, content)| subject_of(content))
        .collect();
    subjects.sort();
    subjects
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Runs a python3 script with `env` set (plus HOST and PW); returns its stdout, failing
/// with its stderr when it fails.
fn python(script: &str, env: &[(&str, String)]) -> String {
    let mut command = std::process::Command::new("python3");
    command
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .env("HOST", "127.0.0.1")
        .env("PW", PW);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python failed:\n{stderr}\nstdout:\n{stdout}"
    );
    stdout
}

const PRELUDE: &str = r#"
import os, ssl, poplib, base64, time
HOST = os.environ["HOST"]
PW = os.environ["PW"]
def port(name):
    return int(os.environ[name])
def out(*args):
    print(*args, flush=True)
ctx = ssl._create_unverified_context()
def disk_count():
    root = os.environ["MAILDIR"]
    return sum(len(os.listdir(os.path.join(root, sub))) for sub in ("cur", "new") if os.path.isdir(os.path.join(root, sub)))
def capa_text(p):
    return " ".join(sorted(" ".join([k] + v) for k, v in p.capa().items()))
def err(call):
    try:
        call()
        return "no error"
    except poplib.error_proto as e:
        return e.args[0].decode()
"#;

/// A raw POP3 client: exact lines out and in.
struct Pop3 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Pop3 {
    fn connect(addr: SocketAddr) -> Pop3 {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Pop3 {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Connects and checks the `+OK` greeting.
    fn greeted(addr: SocketAddr) -> Pop3 {
        let mut pop = Pop3::connect(addr);
        let greeting = pop.line();
        assert!(greeting.starts_with("+OK "), "greeting: {greeting:?}");
        pop
    }

    /// Connects and logs alice in with USER/PASS.
    fn logged_in(addr: SocketAddr) -> Pop3 {
        let mut pop = Pop3::greeted(addr);
        pop.expect("USER alice", "+OK");
        pop.expect(&format!("PASS {PW}"), "+OK");
        pop
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.writer.write_all(bytes.as_ref()).expect("send");
    }

    /// One line with its CRLF, or "" at end of stream.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a line");
        line
    }

    /// Sends a command, returns the status line.
    fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n"));
        self.line()
    }

    /// Sends a command and asserts its status line starts with `expected`.
    fn expect(&mut self, line: &str, expected: &str) -> String {
        let reply = self.command(line);
        assert!(
            reply.starts_with(expected),
            "{line:?}: expected {expected:?}, got {reply:?}"
        );
        reply
    }

    /// The body of a multi-line reply up to and without the `.` line, as sent (stuffed).
    fn body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).expect("read");
            assert!(
                !line.is_empty(),
                "connection closed inside a multi-line reply"
            );
            if line == b".\r\n" {
                return body;
            }
            body.extend_from_slice(&line);
        }
    }

    /// A command with a multi-line answer: (status, stuffed body).
    fn multi(&mut self, line: &str) -> (String, Vec<u8>) {
        let status = self.expect(line, "+OK");
        (status, self.body())
    }

    /// True once the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }
}

#[test]
fn poplib_full_session_in_the_clear() {
    let server = server("");
    deliver(&server, &["pop-1", "pop-2", "pop-3"]);
    let files = server.messages("alice");
    let out = python(
        r#"
p = poplib.POP3(HOST, port("PORT"), timeout=10)
out("welcome", p.getwelcome().decode())
out("capa", capa_text(p))
out("user", p.user("alice").decode())
out("pass", p.pass_(PW).decode())
count, size = p.stat()
out("stat", count, size)
resp, listing, _ = p.list()
out("listresp", resp.decode())
out("list", "|".join(l.decode() for l in listing))
out("list2", p.list(2).decode())
resp, uidls, _ = p.uidl()
out("uidl", "|".join(u.decode() for u in uidls))
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    out("retr", i, resp.decode().replace(" ", "_"), (b"\r\n".join(lines) + b"\r\n").hex())
resp, lines, octets = p.top(3, 1)
out("top", (b"\r\n".join(lines) + b"\r\n").hex())
resp, lines, octets = p.top(3, 0)
out("top0", (b"\r\n".join(lines) + b"\r\n").hex())
out("dele2", p.dele(2).decode())
out("stat-after-dele", *p.stat())
out("list-deleted", err(lambda: p.list(2)))
out("retr-deleted", err(lambda: p.retr(2)))
out("dele-again", err(lambda: p.dele(2)))
out("rset", p.rset().decode())
out("stat-after-rset", *p.stat())
out("noop", p.noop().decode())
out("dele1", p.dele(1).decode())
out("disk-before-quit", disk_count())
out("quit", p.quit().decode())
out("disk-after-quit", disk_count())
"#,
        &[
            ("PORT", plain_pop3(&server).port().to_string()),
            ("MAILDIR", server.maildir("alice").display().to_string()),
        ],
    );
    let field = |key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
            .to_string()
    };
    assert!(field("welcome").starts_with("+OK"), "{out}");
    let capa = field("capa");
    for cap in [
        "USER",
        "SASL PLAIN",
        "TOP",
        "UIDL",
        "RESP-CODES",
        "PIPELINING",
        "STLS",
    ] {
        assert!(capa.contains(cap), "CAPA lacks {cap}: {capa}");
    }
    assert!(field("pass").starts_with("+OK 3"), "{out}");

    // STAT, LIST and RETR agree with the files on disk, sizes included.
    let total: usize = files.iter().map(Vec::len).sum();
    assert_eq!(field("stat"), format!("3 {total}"), "{out}");
    assert!(field("listresp").starts_with("+OK"), "{out}");
    let listing = field("list");
    let sizes: Vec<String> = listing.split('|').map(str::to_string).collect();
    assert_eq!(sizes.len(), 3, "{listing}");
    let uidls: Vec<String> = field("uidl").split('|').map(str::to_string).collect();
    assert_eq!(uidls.len(), 3, "{out}");
    let ids: Vec<&str> = uidls.iter().map(|u| u.split(' ').nth(1).unwrap()).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "unique ids: {ids:?}"
    );
    for id in &ids {
        assert!(
            (1..=70).contains(&id.len()) && id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "RFC 1939 unique-id: {id:?}"
        );
    }
    let retrs: Vec<&str> = out.lines().filter(|l| l.starts_with("retr ")).collect();
    assert_eq!(retrs.len(), 3, "{out}");
    // The subjects by message number (the order is checked by uids_follow_delivery_order).
    let mut numbered = Vec::new();
    for (i, line) in retrs.iter().enumerate() {
        let mut parts = line.split(' ');
        parts.next();
        assert_eq!(parts.next(), Some((i + 1).to_string().as_str()));
        let status = parts.next().unwrap();
        let content = hex_decode(parts.next().unwrap());
        let subject = subject_of(&content);
        numbered.push(subject.clone());
        let on_disk = files
            .iter()
            .find(|f| subject_of(f) == subject)
            .expect("message on disk");
        assert_eq!(
            String::from_utf8_lossy(&content),
            String::from_utf8_lossy(on_disk),
            "RETR {} gives the stored message byte for byte (dot-stuffing undone)",
            i + 1
        );
        assert_eq!(
            sizes[i],
            format!("{} {}", i + 1, on_disk.len()),
            "LIST size of {}",
            i + 1
        );
        assert_eq!(status, format!("+OK_{}_octets", on_disk.len()));
    }
    assert_eq!(field("list2"), format!("+OK {}", sizes[1]));

    // TOP: the whole header, then that many body lines.
    let third = &numbered[2];
    let top = String::from_utf8(hex_decode(&field("top"))).unwrap();
    assert!(
        top.ends_with(&format!(
            "Message-ID: <{third}@example.org>\r\n\r\nfirst line of {third}\r\n"
        )),
        "TOP 3 1: {top:?}"
    );
    assert!(top.contains(&format!("Subject: {third}\r\n")), "{top:?}");
    let top0 = String::from_utf8(hex_decode(&field("top0"))).unwrap();
    assert!(
        top0.ends_with(&format!("Message-ID: <{third}@example.org>\r\n\r\n")),
        "TOP 3 0 is the header only: {top0:?}"
    );

    // DELE marks; RSET unmarks; QUIT removes.
    assert!(field("dele2").starts_with("+OK"), "{out}");
    let size2: usize = sizes[1].split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(
        field("stat-after-dele"),
        format!("2 {}", total - size2),
        "STAT leaves out the marked message"
    );
    assert!(field("list-deleted").starts_with("-ERR"), "{out}");
    assert!(field("retr-deleted").starts_with("-ERR"), "{out}");
    assert!(field("dele-again").starts_with("-ERR"), "{out}");
    assert!(field("rset").starts_with("+OK"), "{out}");
    assert_eq!(field("stat-after-rset"), format!("3 {total}"));
    assert!(field("noop").starts_with("+OK"), "{out}");
    assert_eq!(
        field("disk-before-quit"),
        "3",
        "DELE must not remove anything before QUIT"
    );
    assert!(field("quit").starts_with("+OK"), "{out}");
    assert_eq!(
        field("disk-after-quit"),
        "2",
        "QUIT removes the marked message"
    );
    let mut kept = vec![numbered[1].clone(), numbered[2].clone()];
    kept.sort();
    assert_eq!(
        subjects_on_disk(&server),
        kept,
        "message 1 was {}",
        numbered[0]
    );

    // The unique ids stay the same in the next session.
    let out = python(
        r#"
p = poplib.POP3(HOST, port("PORT"), timeout=10)
p.user("alice"); p.pass_(PW)
resp, uidls, _ = p.uidl()
out("uidl", "|".join(u.decode() for u in uidls))
out("uidl1", p.uidl(1).decode())
p.quit()
"#,
        &[("PORT", plain_pop3(&server).port().to_string())],
    );
    assert!(
        out.contains(&format!("uidl 1 {}|2 {}\n", ids[1], ids[2])),
        "UIDL after the deletion must keep the ids {ids:?}: {out}"
    );
    assert!(out.contains(&format!("uidl1 +OK 1 {}", ids[1])), "{out}");
}

#[test]
fn dropped_connection_deletes_nothing() {
    let server = server("");
    deliver(&server, &["keep-1", "keep-2", "keep-3"]);
    let out = python(
        r#"
p = poplib.POP3(HOST, port("PORT"), timeout=10)
p.user("alice"); p.pass_(PW)
out("dele", p.dele(1).decode(), p.dele(3).decode())
out("disk", disk_count())
p.close()   # no QUIT: the connection just drops
# The dropped session releases its lock: a new session gets in (retry until it does).
for attempt in range(200):
    q = poplib.POP3(HOST, port("PORT"), timeout=10)
    q.user("alice")
    try:
        q.pass_(PW)
        break
    except poplib.error_proto as e:
        assert b"IN-USE" in e.args[0], e
        q.close()
        time.sleep(0.05)
out("stat", q.stat()[0])
q.quit()
out("disk-end", disk_count())
"#,
        &[
            ("PORT", plain_pop3(&server).port().to_string()),
            ("MAILDIR", server.maildir("alice").display().to_string()),
        ],
    );
    assert!(out.contains("dele +OK"), "{out}");
    assert!(out.contains("disk 3\n"), "{out}");
    assert!(
        out.contains("stat 3\n"),
        "nothing deleted without QUIT: {out}"
    );
    assert!(out.contains("disk-end 3\n"), "{out}");
    assert_eq!(subjects_on_disk(&server), ["keep-1", "keep-2", "keep-3"]);
}

#[test]
fn second_session_is_refused_in_use() {
    let server = server("");
    deliver(&server, &["lock-1"]);
    let out = python(
        r#"
a = poplib.POP3(HOST, port("PORT"), timeout=10)
a.user("alice"); out("a", a.pass_(PW).decode())
b = poplib.POP3(HOST, port("PORT"), timeout=10)
b.user("alice")
out("b", err(lambda: b.pass_(PW)))
# Also through AUTH PLAIN.
out("b-auth", err(lambda: b._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0" + PW.encode()).decode())))
out("a-quit", a.quit().decode())
b.user("alice")
out("b-again", b.pass_(PW).decode())
out("b-stat", b.stat()[0])
b.quit()
"#,
        &[("PORT", plain_pop3(&server).port().to_string())],
    );
    assert!(out.contains("a +OK"), "{out}");
    assert!(
        out.contains("b -ERR [IN-USE]"),
        "second session must get [IN-USE]: {out}"
    );
    assert!(out.contains("b-auth -ERR [IN-USE]"), "{out}");
    assert!(
        out.contains("b-again +OK"),
        "after QUIT the lock is free: {out}"
    );
    assert!(out.contains("b-stat 1"), "{out}");
}

#[test]
fn stls_then_login_with_poplib() {
    let server = server("");
    deliver(&server, &["tls-1", "tls-2"]);
    let out = python(
        r#"
p = poplib.POP3(HOST, port("PORT"), timeout=10)
out("capa-before", capa_text(p))
out("user-before", err(lambda: p.user("alice")))
out("auth-before", err(lambda: p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0" + PW.encode()).decode())))
out("stls", p.stls(ctx).decode())
out("capa-after", capa_text(p))
out("stls-again", err(lambda: p._shortcmd("STLS")))
p.user("alice")
out("pass", p.pass_(PW).decode())
resp, lines, octets = p.retr(2)
out("retr2", b"\r\n".join(lines).decode().count("Subject: tls-2"))
out("quit", p.quit().decode())
"#,
        &[("PORT", tls_pop3(&server).port().to_string())],
    );
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key}: {out}"))
            .to_string()
    };
    let before = line("capa-before");
    assert!(before.contains("STLS"), "{before}");
    assert!(
        !before.contains("USER") && !before.contains("SASL"),
        "no login methods offered before TLS: {before}"
    );
    assert!(
        line("user-before").starts_with("user-before -ERR [AUTH]"),
        "{out}"
    );
    assert!(
        line("auth-before").starts_with("auth-before -ERR [AUTH]"),
        "{out}"
    );
    assert!(line("stls").starts_with("stls +OK"), "{out}");
    let after = line("capa-after");
    assert!(
        after.contains("USER") && after.contains("SASL PLAIN") && !after.contains("STLS"),
        "{after}"
    );
    assert!(line("stls-again").contains("-ERR"), "{out}");
    assert!(line("pass").starts_with("pass +OK 2"), "{out}");
    assert_eq!(line("retr2"), "retr2 1");
    assert!(line("quit").starts_with("quit +OK"), "{out}");
}

#[test]
fn pop3s_with_poplib_and_auth_plain() {
    let server = server("");
    deliver(&server, &["sec-1", "sec-2"]);
    let out = python(
        r#"
def plain(user, pw):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
p = poplib.POP3_SSL(HOST, port("PORT"), context=ctx, timeout=10)
out("welcome", p.getwelcome().decode())
out("capa", capa_text(p))
# AUTH PLAIN with the response after a "+ " continuation.
out("auth-cont", p._shortcmd("AUTH PLAIN").decode())
out("auth", p._shortcmd(plain("alice", PW)).decode())
out("stat", *p.stat())
out("dele", p.dele(1).decode())
out("quit", p.quit().decode())
# AUTH PLAIN with an initial response, in a new session.
q = poplib.POP3_SSL(HOST, port("PORT"), context=ctx, timeout=10)
out("auth-ir", q._shortcmd("AUTH PLAIN " + plain("alice", PW)).decode())
out("stat2", *q.stat())
q.quit()
# Cancelled and unsupported.
r = poplib.POP3_SSL(HOST, port("PORT"), context=ctx, timeout=10)
r._shortcmd("AUTH PLAIN")
out("cancel", err(lambda: r._shortcmd("*")))
out("login-mech", err(lambda: r._shortcmd("AUTH LOGIN")))
r.quit()
"#,
        &[("PORT", server.listener("pop3s").port().to_string())],
    );
    assert!(out.contains("welcome +OK"), "{out}");
    let capa = out.lines().find(|l| l.starts_with("capa ")).unwrap();
    assert!(
        capa.contains("USER") && capa.contains("SASL PLAIN"),
        "{capa}"
    );
    assert!(
        !capa.contains("STLS"),
        "no STLS on a TLS connection: {capa}"
    );
    assert!(out.contains("auth-cont +"), "{out}");
    assert!(out.contains("auth +OK"), "{out}");
    assert!(out.contains("stat 2 "), "{out}");
    assert!(out.contains("quit +OK"), "{out}");
    assert!(out.contains("auth-ir +OK"), "{out}");
    assert!(out.contains("stat2 1 "), "DELE+QUIT removed one: {out}");
    assert!(out.contains("cancel -ERR"), "{out}");
    assert!(out.contains("login-mech -ERR"), "{out}");
    assert_eq!(subjects_on_disk(&server).len(), 1);
}

#[test]
fn user_pass_refused_before_stls_on_a_default_listener() {
    let server = server("");
    let mut pop = Pop3::greeted(tls_pop3(&server));
    pop.expect("USER alice", "-ERR [AUTH]");
    pop.expect(&format!("PASS {PW}"), "-ERR");
    let plain = base64_plain("alice", PW);
    pop.expect(&format!("AUTH PLAIN {plain}"), "-ERR [AUTH]");
    pop.expect("STAT", "-ERR");
    pop.send("CAPA\r\n");
    let mut capa = String::new();
    loop {
        let line = pop.line();
        assert!(!line.is_empty(), "closed inside CAPA: {capa}");
        capa.push_str(&line);
        if line == ".\r\n" {
            break;
        }
    }
    assert!(capa.starts_with("+OK"), "{capa}");
    assert!(capa.contains("\r\nSTLS\r\n"), "{capa}");
    assert!(!capa.contains("USER"), "{capa}");
    pop.expect("QUIT", "+OK");
    assert!(pop.closed());
}

fn base64_plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

#[test]
fn wrong_passwords_are_delayed_then_blocked() {
    let server = server("[auth]\nfailure_delay = \"50ms\"\nmax_failures = 3\n");
    let addr = plain_pop3(&server);
    let mut pop = Pop3::greeted(addr);
    pop.expect("USER alice", "+OK");
    let started = Instant::now();
    pop.expect("PASS wrong-1", "-ERR [AUTH]");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "a failure is answered late"
    );
    pop.expect("PASS after-failure", "-ERR");
    pop.expect("USER nobody", "+OK");
    pop.expect("PASS wrong-2", "-ERR [AUTH]");
    pop.expect(
        &format!("AUTH PLAIN {}", base64_plain("alice", "wrong-3")),
        "-ERR",
    );
    // Blocked now: even the right password is refused.
    pop.expect("USER alice", "+OK");
    let blocked = pop.command(&format!("PASS {PW}"));
    assert!(
        blocked.starts_with("-ERR [SYS/TEMP]") || blocked.starts_with("-ERR [AUTH]"),
        "the right password after max_failures: {blocked:?}"
    );
    assert!(!blocked.starts_with("+OK"), "{blocked:?}");
    // New connections from the address are turned away in POP3 words.
    let mut again = Pop3::connect(addr);
    let refusal = again.line();
    assert!(
        refusal.starts_with("-ERR"),
        "a blocked address must get a POP3 -ERR refusal, got {refusal:?}"
    );
    assert!(again.closed());
    server.wait_for_log(
        "authentication failed protocol=pop3 client=127.0.0.1 login=\"nobody\" blocked=false",
    );
}

#[test]
fn raw_exact_responses_and_hostile_input() {
    let server = server("");
    deliver(&server, &["raw-1", "raw-2"]);
    let mut pop = Pop3::greeted(plain_pop3(&server));
    // Before login.
    pop.expect("STAT", "-ERR");
    pop.expect("PASS x", "-ERR");
    pop.expect("NONSENSE", "-ERR");
    pop.expect("RETR 1", "-ERR");
    // Login with AUTH PLAIN and a continuation.
    pop.expect("AUTH PLAIN", "+ ");
    pop.expect(&base64_plain("alice", PW), "+OK");
    pop.expect("USER alice", "-ERR");
    // Bad message numbers.
    pop.expect("RETR 0", "-ERR");
    pop.expect("RETR 99999999999999999999", "-ERR");
    pop.expect("RETR 99", "-ERR");
    pop.expect("RETR -1", "-ERR");
    pop.expect("RETR one", "-ERR");
    pop.expect("TOP 1", "-ERR");
    pop.expect("TOP 1 99999999999999999999999", "-ERR");
    pop.expect("DELE 3", "-ERR");
    pop.expect("LIST 0", "-ERR");
    pop.expect("UIDL 3", "-ERR");
    pop.expect("STAT 1", "-ERR");
    pop.expect("FOO BAR", "-ERR");
    pop.expect("", "-ERR");
    pop.expect("\u{1}\u{2}\u{ff}", "-ERR");
    // An over-long line is refused once and the session goes on.
    let long = format!("NOOP {}", "x".repeat(100_000));
    pop.expect(&long, "-ERR");
    pop.expect("NOOP", "+OK");
    // Lower case commands.
    pop.expect("noop", "+OK");
    // RETR: status with the size, dot-stuffed body, final dot.
    let disk = server.messages("alice");
    let (status, body) = pop.multi("RETR 1");
    let subject = subject_of(&body);
    let first = disk.iter().find(|m| subject_of(m) == subject).unwrap();
    assert_eq!(status, format!("+OK {} octets\r\n", first.len()));
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.ends_with(&format!(
            "first line of {subject}\r\n..leading dot\r\nthird line\r\n"
        )),
        "lines starting with a dot are doubled: {text:?}"
    );
    assert_eq!(body.len(), first.len() + 1, "one stuffed dot");
    // TOP n 0 of a message.
    let (_, top) = pop.multi("TOP 2 0");
    assert!(String::from_utf8_lossy(&top).ends_with("@example.org>\r\n\r\n"));
    // Pipelined commands in one write are answered in order.
    pop.send("NOOP\r\nLIST 1\r\nUIDL 2\r\nSTAT\r\n");
    assert_eq!(pop.line(), "+OK\r\n");
    assert_eq!(pop.line(), format!("+OK 1 {}\r\n", first.len()));
    assert!(pop.line().starts_with("+OK 2 "));
    assert!(pop.line().starts_with("+OK 2 "));
    pop.expect("DELE 1", "+OK");
    pop.expect("DELE 1", "-ERR");
    pop.expect("RETR 1", "-ERR");
    pop.expect("RSET", "+OK");
    pop.expect("QUIT", "+OK");
    assert!(pop.closed());
    assert_eq!(subjects_on_disk(&server), ["raw-1", "raw-2"]);
}

#[test]
fn new_mail_shows_in_the_next_session_not_the_current_one() {
    let server = server("");
    deliver(&server, &["snap-1"]);
    let addr = plain_pop3(&server);
    let mut pop = Pop3::logged_in(addr);
    let stat = pop.expect("STAT", "+OK 1 ");
    deliver(&server, &["snap-2"]);
    assert_eq!(
        pop.command("STAT"),
        stat,
        "a POP3 session works on the snapshot taken at login"
    );
    pop.expect("DELE 1", "+OK");
    pop.expect("QUIT", "+OK bye");
    assert!(pop.closed());
    // The lock is released once the session is gone.
    let mut next = wait_until("a second POP3 session", || {
        let mut pop = Pop3::greeted(addr);
        pop.expect("USER alice", "+OK");
        pop.command(&format!("PASS {PW}"))
            .starts_with("+OK")
            .then_some(pop)
    })
    .unwrap();
    next.expect("STAT", "+OK 1 ");
    let (_, body) = next.multi("RETR 1");
    assert!(String::from_utf8_lossy(&body).contains("Subject: snap-2"));
    next.expect("QUIT", "+OK");
    assert_eq!(subjects_on_disk(&server), ["snap-2"]);
}

#[test]
fn uids_follow_delivery_order() {
    let server = server("");
    let subjects: Vec<String> = (1..=12).map(|i| format!("order-{i:02}")).collect();
    let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
    deliver(&server, &refs);
    let mut pop = Pop3::logged_in(plain_pop3(&server));
    let mut numbered = Vec::new();
    for n in 1..=subjects.len() {
        let (_, header) = pop.multi(&format!("TOP {n} 0"));
        numbered.push(subject_of(&header));
    }
    pop.expect("QUIT", "+OK");
    let names: Vec<String> = maildir_files(&server.maildir("alice"))
        .into_iter()
        .map(|(name, content)| format!("{name} = {}", subject_of(&content)))
        .collect();
    assert_eq!(
        numbered,
        subjects,
        "messages delivered one after the other must be numbered in that order; the files:\n{}",
        names.join("\n")
    );
}
