//! Submission and security against the real server: STARTTLS and implicit TLS (lettre,
//! swaks, openssl), SMTP AUTH, sender ownership, relay control, brute-force blocking,
//! rate limits and sending quotas, tarpitting, certificate reload.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, Options, PATIENCE, TestServer};
use rustls::pki_types::ServerName;

const ALICE: &str = "alice-password";
const BOB: &str = "bob-password";

/// Listeners for every role, two accounts with passwords (bob may send as anyone at
/// example.com), fast failure answers, and `extra` tables.
fn server(extra: &str) -> TestServer {
    let alice = posthorn::accounts::passwords::hash(ALICE).unwrap();
    let bob = posthorn::accounts::passwords::hash(BOB).unwrap();
    Options::default()
        .config(&format!(
            r#"
[[listener]]
role = "submission"
address = "127.0.0.1:0"

[[listener]]
role = "submissions"
address = "127.0.0.1:0"

[relay]
host = "[127.0.0.1]:9"
tls = "none"

[[domain]]
name = "example.com"

[[account]]
name = "postmaster"

[[account]]
name = "alice"
password = "{alice}"

[[account]]
name = "bob"
password = "{bob}"
send_as = ["@example.com"]
{extra}"#
        ))
        .start()
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn plain(user: &str, password: &str) -> String {
    base64(&format!("\0{user}\0{password}"))
}

/// A raw client that can switch to TLS: the certificate is not checked (ours is
/// self-signed), the rest is rustls.
struct TlsSession {
    reader: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    posthorn::delivery::remote::tls::TlsClient::new(None)
        .unwrap()
        .config(false)
        .expect("a non-verifying client config")
}

impl TlsSession {
    fn handshake(tcp: TcpStream) -> TlsSession {
        let name = ServerName::try_from("mx.test").unwrap();
        let connection = rustls::ClientConnection::new(tls_config(), name).unwrap();
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("handshake");
        }
        TlsSession {
            reader: BufReader::new(stream),
        }
    }

    /// Implicit TLS: handshake first, then the greeting.
    fn implicit(addr: SocketAddr) -> TlsSession {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut session = TlsSession::handshake(tcp);
        assert!(session.reply().starts_with("220 "));
        session
    }

    /// Plain connection, EHLO, STARTTLS, handshake.
    fn starttls(addr: SocketAddr) -> TlsSession {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut reader = BufReader::new(tcp.try_clone().unwrap());
        let mut writer = tcp.try_clone().unwrap();
        read_reply(&mut reader);
        writer.write_all(b"EHLO client.test\r\n").unwrap();
        assert!(read_reply(&mut reader).contains("STARTTLS"));
        writer.write_all(b"STARTTLS\r\n").unwrap();
        assert!(read_reply(&mut reader).starts_with("220 "));
        TlsSession::handshake(tcp)
    }

    fn peer_certificate(&self) -> Vec<u8> {
        let connection = &self.reader.get_ref().conn;
        connection.peer_certificates().unwrap()[0].to_vec()
    }

    fn reply(&mut self) -> String {
        read_reply(&mut self.reader)
    }

    fn command(&mut self, line: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn expect(&mut self, line: &str, expected: &str) -> String {
        let reply = self.command(line);
        assert!(
            reply.starts_with(expected),
            "{line:?}: expected {expected:?}, got {reply:?}"
        );
        reply
    }

    fn login(&mut self, user: &str, password: &str) -> String {
        self.command("EHLO client.test");
        self.command(&format!("AUTH PLAIN {}", plain(user, password)))
    }
}

fn read_reply(reader: &mut impl BufRead) -> String {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return reply,
            Ok(_) => {}
        }
        reply.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

#[test]
fn starttls_then_auth_then_mail_on_submission() {
    let server = server("");
    let submission = server.listener("submission");
    // Before TLS: no AUTH offered, no password accepted, no mail without AUTH.
    let mut plain_client = Client::greeted(submission);
    let ehlo = plain_client.expect("EHLO client.test", "250");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    plain_client.expect(
        &format!("AUTH PLAIN {}", plain("alice", ALICE)),
        "538 5.7.11",
    );
    plain_client.expect("MAIL FROM:<alice@example.com>", "530 5.7.0");

    let mut tls = TlsSession::starttls(submission);
    let ehlo = tls.expect("EHLO client.test", "250");
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    tls.expect(
        &format!("AUTH PLAIN {}", plain("alice", ALICE)),
        "235 2.7.0",
    );
    tls.expect("MAIL FROM:<alice@example.com>", "250");
    tls.expect("RCPT TO:<postmaster@example.com>", "250");
    tls.expect("DATA", "354");
    tls.expect("Subject: no date, no id\r\n\r\nhello\r\n.", "250 2.0.0");
    let message = String::from_utf8(server.wait_for_messages("postmaster", 1).remove(0)).unwrap();
    assert!(message.contains("with ESMTPSA id"), "{message}");
    assert!(message.contains("(using TLSv1.3 with cipher"), "{message}");
    assert!(
        message.contains("\r\nDate: "),
        "RFC 6409 §8 Date: {message}"
    );
    assert!(
        message.contains("\r\nMessage-ID: <"),
        "RFC 6409 §8 Message-ID: {message}"
    );
}

#[test]
fn mx_listener_offers_starttls_but_not_auth() {
    let server = server("");
    let mut tls = TlsSession::starttls(server.addr);
    let ehlo = tls.expect("EHLO client.test", "250");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    tls.expect(
        &format!("AUTH PLAIN {}", plain("alice", ALICE)),
        "502 5.5.1",
    );
    tls.expect("MAIL FROM:<someone@elsewhere.example>", "250");
    tls.expect("RCPT TO:<alice@example.com>", "250");
    tls.expect("DATA", "354");
    tls.expect("Subject: over TLS\r\n\r\nhello\r\n.", "250 2.0.0");
    let message = String::from_utf8(server.wait_for_messages("alice", 1).remove(0)).unwrap();
    assert!(message.contains("with ESMTPS id"), "{message}");
    assert!(
        !message.contains("\r\nMessage-ID:"),
        "mail from other servers is not completed"
    );
}

#[test]
fn pipelined_commands_after_starttls_are_never_answered() {
    let mut server = server("");
    let tcp = TcpStream::connect(server.listener("submission")).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut writer = tcp.try_clone().unwrap();
    read_reply(&mut reader);
    writer.write_all(b"EHLO client.test\r\n").unwrap();
    read_reply(&mut reader);
    // CVE-2011-0411: the injected commands arrive in the same packet as STARTTLS.
    writer
        .write_all(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.com>\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut reader), "220 2.0.0 Ready to start TLS\r\n");
    assert!(reader.buffer().is_empty());
    drop(reader);
    // The injected bytes were read with the STARTTLS line and are dropped; the
    // handshake that follows is clean, and nothing answers the injected commands: the
    // server answers in order, so the first reply after the handshake is the EHLO's, not
    // one to RSET or MAIL.
    let mut tls = TlsSession::handshake(tcp);
    assert!(tls.command("EHLO client.test").starts_with("250-mx.test"));
    server.stop();
    assert!(
        !server.settled_log().contains("injected@"),
        "the injected MAIL was never seen"
    );

    // A clean STARTTLS forgets the EHLO: the client must introduce itself again.
}

#[test]
fn starttls_forgets_the_earlier_ehlo() {
    let server = server("");
    let mut tls = TlsSession::starttls(server.listener("submission"));
    tls.expect("MAIL FROM:<alice@example.com>", "503 5.5.1");
}

#[test]
fn implicit_tls_with_lettre_and_starttls_with_lettre() {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let server = server("");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let parameters = || {
        TlsParameters::builder("mx.test".into())
            .dangerous_accept_invalid_certs(true)
            .build_rustls()
            .unwrap()
    };
    let cases = [
        ("submissions", Tls::Wrapper(parameters()), Mechanism::Plain),
        ("submission", Tls::Required(parameters()), Mechanism::Login),
    ];
    for (i, (role, tls, mechanism)) in cases.into_iter().enumerate() {
        let addr = server.listener(role);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(addr.port())
            .tls(tls)
            .credentials(Credentials::new("bob".into(), BOB.into()))
            .authentication(vec![mechanism])
            .build();
        let email = Message::builder()
            .from("Bob <anything@example.com>".parse().unwrap())
            .to("alice@example.com".parse().unwrap())
            .subject(format!("via {role}"))
            .header(ContentType::TEXT_PLAIN)
            .body("hello".to_string())
            .unwrap();
        let response = runtime.block_on(transport.send(email)).unwrap();
        assert_eq!(response.code().to_string(), "250");
        server.wait_for_messages("alice", i + 1);
    }
    let wrong = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.listener("submissions").port())
        .tls(Tls::Wrapper(parameters()))
        .credentials(Credentials::new("bob".into(), "wrong".into()))
        .build();
    let email = Message::builder()
        .from("bob@example.com".parse().unwrap())
        .to("alice@example.com".parse().unwrap())
        .body("x".to_string())
        .unwrap();
    let error = runtime.block_on(wrong.send(email)).unwrap_err();
    assert!(error.to_string().contains("535"), "{error}");
}

#[test]
fn swaks_with_starttls_and_implicit_tls() {
    let server = server("");
    let runs = [
        ("submission", "--tls", "PLAIN"),
        ("submissions", "--tlsc", "LOGIN"),
    ];
    for (i, (role, tls, mechanism)) in runs.into_iter().enumerate() {
        let addr = server.listener(role);
        let output = Command::new("swaks")
            .args(["--server", &addr.to_string(), tls])
            .args([
                "--auth",
                mechanism,
                "--auth-user",
                "alice",
                "--auth-password",
                ALICE,
            ])
            .args([
                "--from",
                "alice@example.com",
                "--to",
                "postmaster@example.com",
            ])
            .args(["--timeout", "20"])
            .output()
            .expect("swaks runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{role}: {text}");
        assert!(text.contains("235 2.7.0"), "{text}");
        server.wait_for_messages("postmaster", i + 1);
    }
}

/// `openssl s_client` with one protocol version, against STARTTLS or implicit TLS.
fn s_client(addr: SocketAddr, starttls: bool, version: &str) -> (bool, String) {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &addr.to_string(), version]);
    // Let the client itself offer the old versions, so a refusal is the server's.
    command.args(["-cipher", "DEFAULT@SECLEVEL=0"]);
    if starttls {
        command.args(["-starttls", "smtp"]);
    }
    let output = command.stdin(Stdio::null()).output().expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let negotiated = text
        .lines()
        .any(|l| l.contains("Cipher is") && !l.contains("(NONE)"));
    (negotiated, text)
}

#[test]
fn only_tls_1_2_and_1_3_are_spoken() {
    let server = server("");
    for (addr, starttls) in [
        (server.listener("submission"), true),
        (server.listener("submissions"), false),
    ] {
        for old in ["-tls1", "-tls1_1"] {
            let (negotiated, text) = s_client(addr, starttls, old);
            assert!(!negotiated, "{old} must be refused:\n{text}");
        }
        for current in ["-tls1_2", "-tls1_3"] {
            let (negotiated, text) = s_client(addr, starttls, current);
            assert!(negotiated, "{current} must work:\n{text}");
        }
    }
}

#[test]
fn sender_must_belong_to_the_authenticated_user() {
    let server = server("");
    let mut alice = TlsSession::implicit(server.listener("submissions"));
    assert!(alice.login("alice", ALICE).starts_with("235"));
    alice.expect("MAIL FROM:<bob@example.com>", "553 5.7.1");
    alice.expect("MAIL FROM:<alice+news@EXAMPLE.com>", "250");
    alice.expect("RSET", "250");
    // The null sender would hide the message from its bounces.
    alice.expect("MAIL FROM:<>", "553 5.7.1");
    // Authenticated users may relay.
    alice.expect("MAIL FROM:<alice@example.com>", "250");
    alice.expect("RCPT TO:<friend@elsewhere.example>", "250");

    let mut bob = TlsSession::implicit(server.listener("submissions"));
    assert!(bob.login("bob", BOB).starts_with("235"));
    bob.expect("MAIL FROM:<newsletter@example.com>", "250");
    bob.expect("RSET", "250");
    bob.expect("MAIL FROM:<bob@elsewhere.example>", "553 5.7.1");
}

#[test]
fn open_relay_battery_is_refused_on_the_mx_listener() {
    let server = server("[limits]\ntarpit_after = 100\n");
    let tricks = [
        "user@elsewhere.example",
        "user%elsewhere.example@example.com",
        "\"user@elsewhere.example\"@example.com",
        "@example.com:user@elsewhere.example",
        "user@elsewhere.example@example.com",
        "elsewhere.example!user@example.com",
        "user@[192.0.2.1]",
        "user@[127.0.0.1]",
        "user@ELSEWHERE.EXAMPLE",
        "user@elsewhere.example.",
        "user@example.com.",
        "user%elsewhere.example@[127.0.0.1]",
    ];
    for sender in ["<spammer@elsewhere.example>", "<>"] {
        let mut client = Client::greeted(server.addr);
        client.expect("EHLO client.test", "250");
        for trick in tricks {
            client.expect(&format!("MAIL FROM:{sender}"), "250");
            let reply = client.command(&format!("RCPT TO:<{trick}>"));
            assert!(
                reply.starts_with('5'),
                "{sender} → {trick} was not refused: {reply}"
            );
            client.expect("RSET", "250");
        }
    }
    assert!(server.queue_files().is_empty());
    // A real local recipient still works, so the refusals above were not blanket ones.
    let mut client = Client::greeted(server.addr);
    client.expect("EHLO client.test", "250");
    client.expect("MAIL FROM:<>", "250");
    client.expect("RCPT TO:<alice@example.com>", "250");
}

#[test]
fn repeated_failures_block_the_address() {
    let server = server("[auth]\nfailure_delay = \"50ms\"\nmax_failures = 3\n");
    let submissions = server.listener("submissions");
    let mut guesser = TlsSession::implicit(submissions);
    guesser.command("EHLO client.test");
    let failed_at = Instant::now();
    guesser.expect(
        &format!("AUTH PLAIN {}", plain("alice", "guess1")),
        "535 5.7.8",
    );
    assert!(
        failed_at.elapsed() >= Duration::from_millis(50),
        "a failure is answered late"
    );
    guesser.expect(
        &format!("AUTH PLAIN {}", plain("nobody", "guess2")),
        "535 5.7.8",
    );
    guesser.expect(
        &format!("AUTH PLAIN {}", plain("alice", "guess3")),
        "421 4.7.0",
    );
    // New connections from the address are turned away, right password or not.
    let tcp = TcpStream::connect(server.listener("submission")).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(tcp);
    assert!(read_reply(&mut reader).starts_with("421 4.7.0"));
    // The mx listener, which offers no AUTH, still takes mail.
    Client::greeted(server.addr);
    // fail2ban's line: the protocol, the bare address, the login as given.
    server.wait_for_log(
        "authentication failed protocol=smtp client=127.0.0.1 login=\"nobody\" blocked=false",
    );
}

/// Guesses sent in parallel count against the limit while they are checked: with
/// `max_failures = 3`, no more than three of nineteen are checked (all were, and a right
/// password sent meanwhile got in), and once one is refused, so is the right password.
#[test]
fn parallel_guesses_cannot_outrun_the_block() {
    const GUESSES: usize = 19;
    let server = server(
        r#"
[auth]
failure_delay = "0s"
max_failures = 3

[limits]
max_connections_per_ip = 30

[[listener]]
role = "submission"
address = "127.0.0.1:0"
allow_plaintext_auth = true
"#,
    );
    let addr = common::mailbox::listeners(&server, "submission")[1];
    let greeted = || {
        let mut client = Client::greeted(addr);
        client.expect("EHLO client.test", "250");
        client
    };
    let mut owner = greeted();
    let guessers: Vec<Client> = (0..GUESSES).map(|_| greeted()).collect();
    let (replies_tx, replies) = std::sync::mpsc::channel();
    for (i, mut guesser) in guessers.into_iter().enumerate() {
        let replies_tx = replies_tx.clone();
        std::thread::spawn(move || {
            let guess = plain("alice", &format!("guess{i}"));
            let _ = replies_tx.send(guesser.command(&format!("AUTH PLAIN {guess}")));
        });
    }
    let mut answered = Vec::new();
    while !answered
        .last()
        .is_some_and(|r: &String| r.starts_with("421"))
    {
        answered.push(
            replies
                .recv_timeout(PATIENCE)
                .expect("a reply to every guess"),
        );
    }
    owner.expect(
        &format!("AUTH PLAIN {}", plain("alice", ALICE)),
        "421 4.7.0",
    );
    while answered.len() < GUESSES {
        answered.push(
            replies
                .recv_timeout(PATIENCE)
                .expect("a reply to every guess"),
        );
    }
    let checked = answered
        .iter()
        .filter(|r| r.starts_with("535 5.7.8"))
        .count();
    assert!(
        answered
            .iter()
            .all(|r| r.starts_with("535 5.7.8") || r.starts_with("421 4.7.0")),
        "{answered:?}"
    );
    assert!(checked < 3, "{checked} guesses answered 535: {answered:?}");
}

#[test]
fn connection_rate_per_address() {
    let server = server("[limits]\nmax_connection_rate_per_ip = 3\n");
    for _ in 0..3 {
        Client::greeted(server.addr).expect("QUIT", "221");
    }
    let mut client = Client::connect(server.addr);
    assert!(client.reply().starts_with("421 4.7.0"));
}

/// Sends one message as alice over implicit TLS; returns the MAIL reply, or the final
/// reply when MAIL was accepted.
fn send_as_alice(addr: SocketAddr, recipients: &[&str]) -> String {
    let mut tls = TlsSession::implicit(addr);
    assert!(tls.login("alice", ALICE).starts_with("235"));
    let mail = tls.command("MAIL FROM:<alice@example.com>");
    if !mail.starts_with("250") {
        return mail;
    }
    for rcpt in recipients {
        let reply = tls.command(&format!("RCPT TO:<{rcpt}>"));
        if !reply.starts_with("250") {
            return reply;
        }
    }
    tls.expect("DATA", "354");
    tls.command("Subject: quota\r\n\r\nx\r\n.")
}

#[test]
fn sending_quotas_hold_across_a_restart() {
    let mut server = server("[sending]\nmessages_per_hour = 2\nrecipients_per_day = 3\n");
    let one = ["postmaster@example.com"];
    assert!(send_as_alice(server.listener("submissions"), &one).starts_with("250"));
    let three = [
        "postmaster@example.com",
        "bob@example.com",
        "alice@example.com",
    ];
    let reply = send_as_alice(server.listener("submissions"), &three);
    assert!(
        reply.starts_with("452 4.7.1"),
        "third recipient of the day: {reply}"
    );
    assert!(send_as_alice(server.listener("submissions"), &one).starts_with("250"));
    let reply = send_as_alice(server.listener("submissions"), &one);
    assert!(
        reply.starts_with("451 4.7.1"),
        "third message of the hour: {reply}"
    );
    server.stop();
    server.restart();
    let reply = send_as_alice(server.listener("submissions"), &one);
    assert!(reply.starts_with("451 4.7.1"), "after a restart: {reply}");
    // Other users have their own counters.
    let mut bob = TlsSession::implicit(server.listener("submissions"));
    assert!(bob.login("bob", BOB).starts_with("235"));
    bob.expect("MAIL FROM:<bob@example.com>", "250");
}

#[test]
fn clients_making_errors_are_slowed_down() {
    let server = server("[limits]\ntarpit_after = 2\ntarpit_delay = \"300ms\"\nmax_errors = 6\n");
    let mut client = Client::greeted(server.addr);
    client.expect("EHLO client.test", "250");
    for _ in 0..2 {
        client.expect("BOGUS", "500");
    }
    let started = Instant::now();
    client.expect("BOGUS", "500");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    client.expect("BOGUS", "500");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the delay grows"
    );
    client.expect("BOGUS", "500");
    client.expect("BOGUS", "500");
    assert!(client.reply().starts_with("421 4.7.0"));
    assert!(client.is_closed());
}

#[test]
fn certificate_is_reloaded_on_sighup_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str| {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        certified.cert.der().to_vec()
    };
    let first = write("first.test");
    let server = server(&format!(
        "[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    ));
    let mut open = TlsSession::starttls(server.listener("submission"));
    assert_eq!(open.peer_certificate(), first);
    open.expect("EHLO client.test", "250");

    let second = write("second.test");
    let pid = server.pid();
    common::signal(pid, rustix::process::Signal::HUP);
    server.wait_for_log("certificate reloaded");
    let fresh = TlsSession::starttls(server.listener("submission"));
    assert_eq!(fresh.peer_certificate(), second);
    open.expect("NOOP", "250");
    assert!(open.login("alice", ALICE).starts_with("235"));
}

#[test]
fn the_self_signed_certificate_names_the_host_and_the_listener_addresses() {
    let server = server("\n[[listener]]\nrole = \"imaps\"\naddress = \"127.0.0.2:0\"\n");
    let certificate = server.data().join("tls").join("self-signed.crt");
    let output = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(&certificate)
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(text.contains("subject=CN = mx.test\n"), "{text}");
    assert!(
        text.contains("DNS:mx.test, IP Address:127.0.0.1, IP Address:127.0.0.2\n"),
        "{text}"
    );
}

#[test]
fn session_ends_are_told_apart_and_an_address_as_sni_is_no_warning() {
    let server = server("");
    let submissions = server.listener("submissions");
    // Dropped, this rustls stream closes the TCP connection without TLS's close_notify,
    // as most clients do: the client closed the session, nothing failed.
    let mut tls = TlsSession::implicit(submissions);
    tls.expect("EHLO client.test", "250");
    drop(tls);
    server.wait_for_log("end=\"client closed\"");
    // Told to, openssl sends the address it connects to as SNI, as some clients do.
    let mut openssl = Command::new("openssl");
    openssl.args(["s_client", "-quiet", "-crlf", "-connect"]);
    openssl.arg(submissions.to_string());
    let output = common::run_command(openssl, &["-servername", "127.0.0.1"], "QUIT\n");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("221 2.0.0"),
        "{output:?}"
    );
    server.wait_for_log("end=\"quit\"");
    // Plain text where TLS is due: the log says what went wrong.
    let mut plain = Client::connect(submissions);
    plain.send("EHLO client.test\r\n");
    assert!(plain.is_closed());
    server.wait_for_log("TLS handshake failed client=127.0.0.1 error=\"");
    let log = server.settled_log();
    assert!(
        !log.contains("read error") && !log.contains("SNI") && !log.contains("WARN rustls"),
        "{log}"
    );
}
