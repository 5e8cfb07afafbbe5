//! Fast checks of the test SMTP sink itself (tests/common/sink.rs), driven by the raw client
//! and by Python's smtplib/ssl, so that outbound-delivery tests can trust what it records.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;

use common::Client;
use common::sink::{DEFAULT_EXTENSIONS, Sink, SinkTls, Stage, base64_encode};

/// A raw client, greeting read and checked.
fn connect(sink: &Sink) -> Client {
    let mut client = Client::connect(sink.addr);
    let greeting = client.reply();
    assert!(
        greeting.starts_with("220 mx.sink.test"),
        "greeting: {greeting:?}"
    );
    client
}

/// Runs `script` with `HOST`, `PORT` and `CA` (the sink's CA file) set, plus `extra`
/// variables; returns its stdout, failing with its stderr and the sink transcript.
fn python(sink: &Sink, extra: &[(&str, String)], script: &str) -> String {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("HOST", sink.addr.ip().to_string())
        .env("PORT", sink.addr.port().to_string())
        .env("CA", sink.ca_pem_path())
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python failed:\n{stdout}\n{}\nsink transcript:\n{}",
        String::from_utf8_lossy(&output.stderr),
        sink.transcript()
    );
    stdout
}

/// A plain TCP connection, for stalls and drops.
fn raw(sink: &Sink) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(sink.addr).expect("connect");
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    (BufReader::new(stream.try_clone().unwrap()), stream)
}

/// Asserts that connection 1, stalled at `stage`, answers nothing more and stays open. A
/// probe line is sent and waited for in the transcript (a stalled sink reads and logs what
/// comes); every reply is logged before it is written, so no reply logged after the stall
/// means none was written; and the socket then has nothing to read, and no end.
fn assert_stalled(
    sink: &Sink,
    stage: &str,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) {
    writer.write_all(b"NOOP probe\r\n").unwrap();
    let transcript = sink.wait_for_transcript("[1] C: NOOP probe");
    let stalled = format!("[1] * stalled at {stage}: no more replies");
    let after: Vec<&str> = transcript
        .lines()
        .skip_while(|line| *line != stalled)
        .collect();
    assert!(!after.is_empty(), "{transcript}");
    assert!(
        !after.iter().any(|line| line.starts_with("[1] S: ")),
        "{transcript}"
    );
    assert!(reader.buffer().is_empty(), "{:?}", reader.buffer());
    let socket = reader.get_ref();
    socket.set_nonblocking(true).unwrap();
    let pending = socket.peek(&mut [0u8; 1]);
    socket.set_nonblocking(false).unwrap();
    assert!(
        pending
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::WouldBlock),
        "{pending:?}\n{transcript}"
    );
}

/// Reads until the peer closes (EOF or reset) within `common::PATIENCE`; false if it does not.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn plain_delivery_is_recorded() {
    let sink = Sink::start();
    let mut c = connect(&sink);
    let ehlo = c.expect("EHLO client.test", "250-mx.sink.test");
    for extension in DEFAULT_EXTENSIONS.iter().chain(&["STARTTLS"]) {
        assert!(ehlo.contains(extension), "{extension} missing: {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    c.expect(
        "MAIL FROM:<a@client.test> SIZE=40 BODY=8BITMIME RET=HDRS ENVID=x",
        "250 2.1.0",
    );
    c.expect("RCPT TO:<b@sink.test> NOTIFY=NEVER", "250 2.1.5");
    c.expect("DATA", "354");
    // "..dotted" is unstuffed; ".\n" after a bare LF is content, not the end.
    c.send("Subject: hi\r\n\r\n..dotted\r\nbare\n.\nend\r\n.\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    c.expect("QUIT", "221");

    let messages = sink.wait_for_messages(1);
    let m = &messages[0];
    assert_eq!(m.helo, "client.test");
    assert!(m.ehlo);
    assert_eq!(
        m.mail_from,
        "<a@client.test> SIZE=40 BODY=8BITMIME RET=HDRS ENVID=x"
    );
    assert_eq!(m.sender(), "a@client.test");
    assert_eq!(m.mail_param("size").as_deref(), Some("40"));
    assert_eq!(m.mail_param("SMTPUTF8"), None);
    assert_eq!(m.rcpt_to, ["<b@sink.test> NOTIFY=NEVER"]);
    assert_eq!(m.recipients(), ["b@sink.test"]);
    assert_eq!(m.text(), "Subject: hi\r\n\r\n.dotted\r\nbare\n.\nend\r\n");
    assert!(!m.bdat && !m.tls && m.tls_version.is_none() && m.auth_user.is_none());
    assert_eq!(m.connection, 1);
    assert_eq!(sink.connections(), 1);
    let transcript = sink.transcript();
    assert!(
        transcript.contains("[1] C: RCPT TO:<b@sink.test> NOTIFY=NEVER"),
        "{transcript}"
    );
    assert!(transcript.contains("[1] S: 221 2.0.0"), "{transcript}");
}

#[test]
fn pipelined_commands_are_answered_in_order_and_rcpt_closure_decides() {
    let sink = Sink::builder()
        .rcpt(|address| {
            if address.starts_with("bad") {
                "550 5.1.1 no such user"
            } else if address.starts_with("later") {
                "451 4.2.0 try later"
            } else {
                "250 2.1.5 ok"
            }
        })
        .start();
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.send(
        "MAIL FROM:<a@client.test>\r\nRCPT TO:<x@sink.test>\r\nRCPT TO:<bad@sink.test>\r\n\
         RCPT TO:<later@sink.test> NOTIFY=FAILURE\r\nRCPT TO:<y@sink.test>\r\nDATA\r\n",
    );
    let replies: Vec<String> = (0..6).map(|_| c.reply()).collect();
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["250", "250", "550", "451", "250", "354"],
        "{replies:?}"
    );
    assert!(replies[2].starts_with("550 5.1.1 no such user"));
    c.send("Subject: pipelined\r\n\r\nbody\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    c.send("RSET\r\nNOOP\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<bad@sink.test>\r\nDATA\r\n");
    let replies: Vec<String> = (0..5).map(|_| c.reply()).collect();
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(codes, ["250", "250", "250", "550", "554"], "{replies:?}");

    let m = &sink.wait_for_messages(1)[0];
    assert_eq!(m.rcpt_to, ["<x@sink.test>", "<y@sink.test>"]);
    assert_eq!(m.text(), "Subject: pipelined\r\n\r\nbody\r\n");
}

#[test]
fn bdat_chunks_are_concatenated_exactly() {
    let sink = Sink::start();
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@client.test> BODY=BINARYMIME", "555 5.5.4");
    c.expect("MAIL FROM:<a@client.test> BODY=8BITMIME", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    let first: &[u8] = b"Subject: bdat\r\n\r\n.\r\n";
    let second: &[u8] = b"\x00\xff\r\n.\r\nQUIT\r\n";
    c.send([format!("BDAT {}\r\n", first.len()).as_bytes(), first].concat());
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0 20 octets"), "{reply}");
    c.send([format!("BDAT {} LAST\r\n", second.len()).as_bytes(), second].concat());
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0 queued"), "{reply}");
    c.expect("DATA", "503");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.send("BDAT 0 LAST\r\n");
    assert!(c.reply().starts_with("250 2.0.0 queued"));

    let messages = sink.wait_for_messages(2);
    assert!(messages[0].bdat);
    assert_eq!(messages[0].content, [first, second].concat());
    assert!(messages[1].bdat && messages[1].content.is_empty());
}

#[test]
fn unadvertised_extensions_and_malformed_lines_are_refused_without_harm() {
    let sink = Sink::builder()
        .extensions(&["PIPELINING", "8BITMIME"])
        .tls(SinkTls::None)
        .start();
    let mut c = connect(&sink);
    c.send(b"\xff\xfe\x00garbage\r\n");
    assert!(c.reply().starts_with("500 5.5.2"));
    c.expect("MAIL FROM:<a@client.test>", "503 5.5.1");
    let ehlo = c.expect("EHLO client.test", "250");
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("CHUNKING"),
        "{ehlo}"
    );
    c.expect("STARTTLS", "502 5.5.1");
    c.expect("MAIL FROM: <a@client.test>", "501");
    c.expect("MAIL FROM:<a@client.test", "501");
    c.expect("MAIL FROM:", "501");
    c.expect("MAIL", "501");
    c.expect("MAIL FROM:<a@client.test> SIZE=10", "555 5.5.4");
    c.expect("MAIL FROM:<a@client.test> SMTPUTF8", "555 5.5.4");
    c.expect("MAIL FROM:<é@client.test>", "553 5.6.7");
    c.expect("MAIL FROM:<a@client.test> FOO=BAR", "555 5.5.4");
    c.expect("RCPT TO:<b@sink.test>", "503 5.5.1");
    c.expect("BDAT x", "501 5.5.4");
    c.expect("BDAT 1 LAST extra", "501 5.5.4");
    // Not advertised: the chunk is still consumed, so "QUIT\r\n" is not taken as a command.
    c.send("BDAT 6 LAST\r\nQUIT\r\n");
    assert!(c.reply().starts_with("502 5.5.1"));
    c.send(format!("NOOP {}\r\n", "x".repeat(70_000)));
    assert!(c.reply().starts_with("500 5.5.6"));
    c.expect("AUTH PLAIN AHVzZXIAc2VjcmV0", "502 5.5.1");
    c.expect("MAIL FROM:<a@client.test> BODY=8BITMIME", "250");
    c.expect("RCPT TO:<>", "501");
    c.expect("RCPT TO:<b@sink.test> NOTIFY=NEVER", "555 5.5.4");
    c.expect("DATA", "503");
    c.expect("NOOP", "250");
    assert!(sink.messages().is_empty());
}

#[test]
fn starttls_then_delivery_is_marked_tls_and_pipelined_bytes_are_discarded() {
    let sink = Sink::start();
    let out = python(
        &sink,
        &[],
        r#"
import os, smtplib, ssl
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.ehlo("py.test")
assert s.has_extn("starttls")
s.starttls(context=ssl._create_unverified_context())
s.ehlo("py.test")
print("starttls after tls:", s.has_extn("starttls"))
print("refused", s.sendmail("a@py.test", ["b@sink.test"], "Subject: tls\r\n\r\nhi\r\n"))
s.quit()

# STARTTLS with a command pipelined behind it: the sink must drop the plaintext NOOP.
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.ehlo("py.test")
s.sock.sendall(b"STARTTLS\r\nNOOP\r\n")
print("starttls", s.getreply()[0])
s.sock = ssl._create_unverified_context().wrap_socket(s.sock)
s.file = None
print("ehlo", s.ehlo("py.test")[0])
print("noop", s.noop()[0])
s.quit()
"#,
    );
    assert!(out.contains("starttls after tls: False"), "{out}");
    assert!(out.contains("refused {}"), "{out}");
    assert!(out.contains("starttls 220\nehlo 250\nnoop 250"), "{out}");
    let m = &sink.wait_for_messages(1)[0];
    assert!(m.tls);
    assert_eq!(m.tls_version.as_deref(), Some("TLSv1_3"));
    assert_eq!(m.helo, "py.test");
    assert_eq!(m.connection, 1);
    let transcript = sink.transcript();
    assert!(
        transcript.contains("[2] * discarded 6 octets received before the TLS handshake"),
        "{transcript}"
    );
}

#[test]
fn refuse_mode_gives_454_and_plaintext_still_works() {
    let sink = Sink::builder().tls(SinkTls::Refuse).start();
    let mut c = connect(&sink);
    let ehlo = c.expect("EHLO client.test", "250");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect("STARTTLS", "454 4.7.0");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.expect("DATA", "354");
    c.send("Subject: plain\r\n\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(!sink.wait_for_messages(1)[0].tls);
}

#[test]
fn auth_is_offered_after_tls_only_and_checks_credentials() {
    let sink = Sink::builder().auth("user", "secret").start();
    let out = python(
        &sink,
        &[],
        r#"
import os, smtplib, ssl
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.ehlo("py.test")
print("auth before tls:", s.has_extn("auth"))
print("mail before auth:", s.mail("a@py.test")[0])
print("auth before tls:", s.docmd("AUTH", "PLAIN AHVzZXIAc2VjcmV0")[0])
s.starttls(context=ssl._create_unverified_context())
s.ehlo("py.test")
print("auth after tls:", s.esmtp_features.get("auth", "").strip())
try:
    s.login("user", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("wrong password:", e.smtp_code)
print("login:", s.login("user", "secret")[0])
print("refused", s.sendmail("a@py.test", ["b@sink.test"], "Subject: auth\r\n\r\nhi\r\n"))
s.quit()

s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.starttls(context=ssl._create_unverified_context())
s.ehlo("py.test")
s.user, s.password = "user", "secret"
print("login challenge:", s.auth("LOGIN", s.auth_login, initial_response_ok=False)[0])
s.quit()
"#,
    );
    assert!(out.contains("auth before tls: False"), "{out}");
    assert!(out.contains("mail before auth: 530"), "{out}");
    assert!(out.contains("auth before tls: 538"), "{out}");
    assert!(out.contains("auth after tls: PLAIN LOGIN"), "{out}");
    assert!(out.contains("wrong password: 535"), "{out}");
    assert!(out.contains("login: 235"), "{out}");
    assert!(out.contains("refused {}"), "{out}");
    assert!(out.contains("login challenge: 235"), "{out}");
    let m = &sink.wait_for_messages(1)[0];
    assert_eq!(m.auth_user.as_deref(), Some("user"));
    assert!(m.tls);
}

#[test]
fn auth_plain_in_plaintext_when_allowed() {
    let sink = Sink::builder()
        .auth("user", "secret")
        .auth_plaintext(true)
        .start();
    let mut c = connect(&sink);
    let ehlo = c.expect("EHLO client.test", "250");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    c.expect("MAIL FROM:<a@client.test>", "530 5.7.0");
    let wrong = base64_encode(b"\0user\0nope");
    c.expect(&format!("AUTH PLAIN {wrong}"), "535 5.7.8");
    c.expect("AUTH PLAIN !!!", "501 5.5.2");
    c.expect("AUTH PLAIN", "334");
    c.expect("*", "501");
    c.expect("AUTH CRAM-MD5", "504");
    c.expect("AUTH PLAIN", "334");
    c.expect(&base64_encode(b"\0user\0secret"), "235 2.7.0");
    c.expect("AUTH PLAIN AHVzZXIAc2VjcmV0", "503");
    c.expect("MAIL FROM:<a@client.test> AUTH=<>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.expect("DATA", "354");
    c.send("Subject: auth\r\n\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let m = &sink.wait_for_messages(1)[0];
    assert_eq!(m.auth_user.as_deref(), Some("user"));
    assert!(!m.tls);
}

#[test]
fn verifying_tls_clients_accept_the_sink_certificate_for_its_names_only() {
    let sink = Sink::start();
    let implicit = Sink::builder().implicit_tls(true).start();
    let out = python(
        &sink,
        &[
            ("PORT2", implicit.addr.port().to_string()),
            ("CA2", implicit.ca_pem_path().display().to_string()),
        ],
        r#"
import os, smtplib, socket, ssl
host, port, ca = os.environ["HOST"], int(os.environ["PORT"]), os.environ["CA"]
for name in ["mx.sink.test", "localhost", "other.test"]:
    s = smtplib.SMTP(host, port)
    s._host = name  # smtplib verifies the name it connected to
    try:
        s.starttls(context=ssl.create_default_context(cafile=ca))
        print(name, "verified", s.sock.version())
        s.quit()
    except ssl.SSLCertVerificationError as e:
        print(name, "rejected", e.verify_message)

ctx = ssl.create_default_context(cafile=os.environ["CA"])
# The implicit-TLS sink has its own CA: ours must not verify it.
try:
    ctx.wrap_socket(socket.create_connection((host, int(os.environ["PORT2"]))), server_hostname="mx.sink.test")
    print("implicit with wrong CA verified")
except ssl.SSLCertVerificationError as e:
    print("implicit with wrong CA rejected")
ctx = ssl.create_default_context(cafile=os.environ["CA2"])
with ctx.wrap_socket(socket.create_connection((host, int(os.environ["PORT2"]))), server_hostname="127.0.0.1") as t:
    f = t.makefile("rb")
    print("implicit greeting", f.readline().decode().strip())
"#,
    );
    assert!(out.contains("mx.sink.test verified TLSv1.3"), "{out}");
    assert!(out.contains("localhost verified TLSv1.3"), "{out}");
    assert!(out.contains("other.test rejected"), "{out}");
    assert!(out.contains("implicit with wrong CA rejected"), "{out}");
    assert!(out.contains("implicit greeting 220 mx.sink.test"), "{out}");
    assert!(
        sink.transcript().contains("TLS handshake failed"),
        "{}",
        sink.transcript()
    );
    assert!(implicit.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn expired_certificate_is_rejected_by_verifying_clients() {
    let sink = Sink::builder().expired_certificate(true).start();
    let out = python(
        &sink,
        &[],
        r#"
import os, smtplib, ssl
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s._host = "mx.sink.test"
try:
    s.starttls(context=ssl.create_default_context(cafile=os.environ["CA"]))
    print("verified")
except ssl.SSLCertVerificationError as e:
    print("rejected:", e.verify_message)
"#,
    );
    assert!(out.contains("rejected: certificate has expired"), "{out}");
}

#[test]
fn drop_mid_data_closes_the_connection_before_the_end() {
    let sink = Sink::builder().drop_mid_data(true).start();
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.expect("DATA", "354");
    c.send("Subject: cut\r\n");
    assert_eq!(c.reply(), "", "the sink should have closed the connection");

    let (mut reader, mut writer) = raw(&sink);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer
        .write_all(b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@sink.test>\r\n")
        .unwrap();
    writer.write_all(b"BDAT 10 LAST\r\n12345").unwrap();
    assert!(closed_by_peer(&mut writer), "{}", sink.transcript());
    assert!(sink.messages().is_empty());
    let transcript = sink.transcript();
    assert!(transcript.contains("[1] * dropping the connection in the middle of DATA"));
    assert!(transcript.contains("[2] * dropping the connection after 5 octets"));
}

#[test]
fn two_messages_on_one_connection_share_its_number() {
    let sink = Sink::start();
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    for n in 0..2 {
        c.expect("MAIL FROM:<a@client.test>", "250");
        c.expect("RCPT TO:<b@sink.test>", "250");
        c.expect("DATA", "354");
        c.send(format!("Subject: {n}\r\n\r\n.\r\n"));
        assert!(c.reply().starts_with("250"));
    }
    let mut other = connect(&sink);
    other.expect("HELO other.test", "250 mx.sink.test");
    other.expect("MAIL FROM:<>", "250");
    other.expect("RCPT TO:<postmaster>", "250");
    other.expect("DATA", "354");
    other.send("Subject: 2\r\n\r\n.\r\n");
    assert!(other.reply().starts_with("250"));

    let messages = sink.wait_for_messages(3);
    let numbers: Vec<usize> = messages.iter().map(|m| m.connection).collect();
    assert_eq!(numbers, [1, 1, 2]);
    assert_eq!(sink.connections(), 2);
    assert!(!messages[2].ehlo);
    assert_eq!(messages[2].sender(), "");
}

#[test]
fn greeting_refusal_and_ehlo_fallback() {
    let busy = Sink::builder().greeting("421 4.3.2 busy").start();
    let mut c = Client::connect(busy.addr);
    assert_eq!(c.reply(), "421 4.3.2 busy\r\n");
    assert!(c.is_closed());

    let old = Sink::builder().ehlo_unsupported(true).start();
    let mut c = connect(&old);
    c.expect("EHLO client.test", "500 5.5.1");
    c.expect("HELO client.test", "250 mx.sink.test");
    c.expect("MAIL FROM:<a@client.test> SIZE=10", "555");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.send("BDAT 2 LAST\r\nhi");
    assert!(c.reply().starts_with("502"));
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.expect("DATA", "354");
    c.send("Subject: helo\r\n\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let m = &old.wait_for_messages(1)[0];
    assert!(!m.ehlo);
    assert_eq!(m.helo, "client.test");
}

#[test]
fn replies_can_fail_and_be_reconfigured() {
    let sink = Sink::builder()
        .mail_reply("451 4.3.0 not now")
        .data_reply("554 5.6.0 rejected")
        .start();
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@client.test>", "451 4.3.0 not now");
    c.expect("RCPT TO:<b@sink.test>", "503");
    sink.reconfigure(|b| b.mail_reply("250 2.1.0 ok"));
    // Reconfiguring applies to new connections only.
    c.expect("MAIL FROM:<a@client.test>", "451");

    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.expect("DATA", "354");
    c.send("Subject: no\r\n\r\n.\r\n");
    assert!(c.reply().starts_with("554 5.6.0 rejected"));
    assert!(sink.messages().is_empty());

    sink.reconfigure(|b| b.data_reply("250 2.0.0 fine").rcpt(|_| "421 4.3.2 closing"));
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "421 4.3.2 closing");
    assert!(c.is_closed());
    assert_eq!(sink.connections(), 3);
}

#[test]
fn stalls_keep_the_socket_open_without_answering() {
    let sink = Sink::builder().stall_at(Stage::Greeting).start();
    let (mut reader, mut writer) = raw(&sink);
    assert_stalled(&sink, "Greeting", &mut reader, &mut writer);

    let sink = Sink::builder().stall_at(Stage::AfterMail).start();
    let (mut reader, mut writer) = raw(&sink);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer
        .write_all(b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\n")
        .unwrap();
    let mut ehlo = String::new();
    while !ehlo.contains("250 ") {
        reader.read_line(&mut ehlo).unwrap();
    }
    assert_stalled(&sink, "AfterMail", &mut reader, &mut writer);

    let sink = Sink::builder().stall_at(Stage::DataEnd).start();
    let mut c = connect(&sink);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@client.test>", "250");
    c.expect("RCPT TO:<b@sink.test>", "250");
    c.expect("DATA", "354");
    c.send("Subject: stall\r\n\r\n.\r\nQUIT\r\n");
    let transcript = sink.wait_for_transcript("[1] C: QUIT");
    assert!(
        transcript.contains("[1] * stalled at DataEnd"),
        "{transcript}"
    );
    assert!(!transcript.contains("S: 250 2.0.0"), "{transcript}");
    assert!(sink.messages().is_empty());

    sink.reconfigure(|b| b.stall_at(None));
    let mut c = connect(&sink);
    c.expect("QUIT", "221");

    // Dropping a sink closes its stalled connections instead of hanging.
    let sink = Sink::builder().stall_at(Stage::AfterEhlo).start();
    let (mut reader, mut writer) = raw(&sink);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    writer.write_all(b"EHLO c.test\r\n").unwrap();
    sink.wait_for_transcript("[1] * stalled at AfterEhlo");
    drop(sink);
    assert!(closed_by_peer(&mut writer));
}

#[test]
fn base64_helpers_round_trip() {
    use common::sink::base64_decode;
    for (plain, encoded) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"\0user\0secret", "AHVzZXIAc2VjcmV0"),
        (b"\xff\xfe\xfd", "//79"),
    ] {
        assert_eq!(base64_encode(plain), encoded);
        assert_eq!(base64_decode(encoded).as_deref(), Some(plain));
    }
    assert_eq!(base64_decode("Zg").as_deref(), Some(&b"f"[..]));
    assert_eq!(base64_decode("Zm9v!"), None);
    assert_eq!(base64_decode("Zm 9v"), None);
}
