//! A scriptable SMTP server ("sink") on loopback that receives the mail Posthorn delivers
//! outbound, records it, and misbehaves on demand (refused TLS, 4xx/5xx replies, dropped or
//! stalled connections) so tests can check retries, bounces and queue states.
//!
//! It is written from scratch on purpose and must not use `posthorn-proto`: the sink must not
//! share bugs with the code under test. It is deliberately strict about what was advertised
//! (BDAT without CHUNKING, MAIL parameters of extensions it did not announce, non-ASCII
//! addresses without SMTPUTF8 are refused), and lenient nowhere else than needed.
//!
//! ```ignore
//! let sink = Sink::builder()
//!     .rcpt(|address| if address.starts_with("bad") { "550 5.1.1 no such user" } else { "250 2.1.5 ok" })
//!     .start();
//! // ... make Posthorn deliver to sink.addr ...
//! let messages = sink.wait_for_messages(1);
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;

/// The extensions a sink advertises unless told otherwise (STARTTLS and AUTH are added
/// according to [`SinkTls`] and [`SinkBuilder::auth`]).
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "PIPELINING",
    "SIZE 1000000",
    "8BITMIME",
    "SMTPUTF8",
    "DSN",
    "CHUNKING",
    "ENHANCEDSTATUSCODES",
];

/// Longest command line the sink reads before answering "500 5.5.6 line too long".
const MAX_COMMAND_LINE: u64 = 64 * 1024;

/// How many characters of each line the transcript keeps.
const TRANSCRIPT_WIDTH: usize = 300;

/// What the sink does about STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTls {
    /// STARTTLS is advertised and works.
    Offer,
    /// STARTTLS is advertised, but the command gets "454 4.7.0".
    Refuse,
    /// STARTTLS is not advertised (and the command gets "502 5.5.1").
    None,
}

/// A point of the conversation from which the sink never answers again (it keeps reading,
/// and keeps the socket open until the client closes it or the sink is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// No greeting at all (after the TLS handshake in implicit TLS mode).
    Greeting,
    /// EHLO or HELO gets no reply.
    AfterEhlo,
    /// MAIL FROM gets no reply.
    AfterMail,
    /// The first RCPT TO gets no reply.
    AfterRcpt,
    /// The DATA command gets no 354.
    AfterDataCommand,
    /// The whole content is read (final dot, or BDAT LAST chunk) but never answered.
    DataEnd,
}

/// One transaction the sink accepted (its 2xx reply to the content was sent).
#[derive(Clone, Debug)]
pub struct SinkMessage {
    /// The EHLO/HELO argument of the session.
    pub helo: String,
    /// True for EHLO, false for HELO.
    pub ehlo: bool,
    /// Everything after `MAIL FROM:`, raw (e.g. `<a@b> SIZE=10 RET=HDRS ENVID=x`).
    pub mail_from: String,
    /// Everything after `RCPT TO:`, raw, for each recipient that got a 2xx reply.
    pub rcpt_to: Vec<String>,
    /// The content: dot-unstuffed for DATA, the chunks concatenated for BDAT.
    pub content: Vec<u8>,
    /// True if the content came in BDAT chunks.
    pub bdat: bool,
    /// True if the session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    /// The negotiated protocol (`"TLSv1_3"`, `"TLSv1_2"`), if TLS was active.
    pub tls_version: Option<String>,
    /// The user that authenticated with AUTH, if any.
    pub auth_user: Option<String>,
    /// Which connection (1-based, in accept order) the message arrived on.
    pub connection: usize,
}

impl SinkMessage {
    /// The reverse-path without angle brackets ("" for the null sender).
    pub fn sender(&self) -> String {
        parse_path(&self.mail_from)
            .map(|(address, _)| address)
            .unwrap_or_default()
    }

    /// The accepted recipients' addresses without angle brackets.
    pub fn recipients(&self) -> Vec<String> {
        self.rcpt_to
            .iter()
            .filter_map(|arg| parse_path(arg).map(|(address, _)| address))
            .collect()
    }

    /// The value of a MAIL FROM parameter (case-insensitive key): `Some("")` for a flag like
    /// `SMTPUTF8`, `None` if absent.
    pub fn mail_param(&self, key: &str) -> Option<String> {
        let (_, params) = parse_path(&self.mail_from)?;
        params.iter().find_map(|param| {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            k.eq_ignore_ascii_case(key).then(|| v.to_string())
        })
    }

    /// The content as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

/// The reply to a RCPT TO, given the address without angle brackets.
type RcptFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Configures a [`Sink`]. Every setting but the certificate (made at [`SinkBuilder::start`]
/// from the hostname) can be changed later with [`Sink::reconfigure`].
#[derive(Clone)]
pub struct SinkBuilder {
    hostname: String,
    tls: SinkTls,
    implicit_tls: bool,
    auth: Option<(String, String)>,
    auth_plaintext: bool,
    extensions: Vec<String>,
    ehlo_unsupported: bool,
    greeting: Option<String>,
    rcpt: RcptFn,
    mail_reply: String,
    data_reply: String,
    drop_mid_data: bool,
    stall_at: Option<Stage>,
    expired_certificate: bool,
}

impl Default for SinkBuilder {
    fn default() -> Self {
        SinkBuilder {
            hostname: "mx.sink.test".to_string(),
            tls: SinkTls::Offer,
            implicit_tls: false,
            auth: None,
            auth_plaintext: false,
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
            ehlo_unsupported: false,
            greeting: None,
            rcpt: Arc::new(|_| "250 2.1.5 ok".to_string()),
            mail_reply: "250 2.1.0 ok".to_string(),
            data_reply: "250 2.0.0 queued".to_string(),
            drop_mid_data: false,
            stall_at: None,
            expired_certificate: false,
        }
    }
}

impl SinkBuilder {
    /// The name in the greeting and the EHLO reply, and in the certificate (default
    /// "mx.sink.test").
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Whether STARTTLS is offered, refused or absent (default [`SinkTls::Offer`]).
    pub fn tls(mut self, tls: SinkTls) -> Self {
        self.tls = tls;
        self
    }

    /// TLS from the first byte, port-465 style (default false).
    pub fn implicit_tls(mut self, implicit: bool) -> Self {
        self.implicit_tls = implicit;
        self
    }

    /// Advertises AUTH PLAIN LOGIN (after TLS only, unless [`Self::auth_plaintext`]) and
    /// requires it before MAIL; wrong credentials get "535 5.7.8".
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// Also advertises and accepts AUTH without TLS (default false).
    pub fn auth_plaintext(mut self, allowed: bool) -> Self {
        self.auth_plaintext = allowed;
        self
    }

    /// Replaces the advertised extensions (default [`DEFAULT_EXTENSIONS`]); STARTTLS and AUTH
    /// are added on their own.
    pub fn extensions(mut self, extensions: &[&str]) -> Self {
        self.extensions = extensions.iter().map(|e| e.to_string()).collect();
        self
    }

    /// EHLO gets "500 5.5.1": the client must fall back to HELO (default false).
    pub fn ehlo_unsupported(mut self, unsupported: bool) -> Self {
        self.ehlo_unsupported = unsupported;
        self
    }

    /// The greeting line (default "220 <hostname> ESMTP test sink"); anything not starting
    /// with 220 (e.g. "421 4.3.2 busy", "554 5.7.1 go away") is sent and the socket closed.
    pub fn greeting(mut self, greeting: impl Into<String>) -> Self {
        self.greeting = Some(greeting.into());
        self
    }

    /// The reply to each RCPT TO, from the address without angle brackets (default
    /// "250 2.1.5 ok"). Only recipients answered 2xx join the transaction.
    pub fn rcpt<F, R>(mut self, reply: F) -> Self
    where
        F: Fn(&str) -> R + Send + Sync + 'static,
        R: Into<String>,
    {
        self.rcpt = Arc::new(move |address| reply(address).into());
        self
    }

    /// The reply to a valid MAIL FROM (default "250 2.1.0 ok").
    pub fn mail_reply(mut self, reply: impl Into<String>) -> Self {
        self.mail_reply = reply.into();
        self
    }

    /// The reply after the end of DATA or the last BDAT chunk (default "250 2.0.0 queued");
    /// the message is recorded only if it is 2xx.
    pub fn data_reply(mut self, reply: impl Into<String>) -> Self {
        self.data_reply = reply.into();
        self
    }

    /// Closes the socket after reading the first content line (DATA) or half of the first
    /// chunk (BDAT), before the end and without a reply (default false).
    pub fn drop_mid_data(mut self, drop: bool) -> Self {
        self.drop_mid_data = drop;
        self
    }

    /// Never answers from that stage on (`None` to answer again).
    pub fn stall_at(mut self, stage: impl Into<Option<Stage>>) -> Self {
        self.stall_at = stage.into();
        self
    }

    /// Makes the leaf certificate one that expired in 2001 (default false). Only read by
    /// [`Self::start`].
    pub fn expired_certificate(mut self, expired: bool) -> Self {
        self.expired_certificate = expired;
        self
    }

    /// Starts the sink on 127.0.0.1 and an ephemeral port, with its own tokio runtime in a
    /// background thread. It is listening when this returns.
    pub fn start(self) -> Sink {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("sink temp dir");
        let certificates = make_certificates(&self.hostname, self.expired_certificate);
        let ca_pem_path = dir.path().join("sink-ca.pem");
        std::fs::write(&ca_pem_path, &certificates.ca_pem).expect("write sink CA");
        let tls_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certificates.chain, certificates.key)
            .expect("sink TLS configuration");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
        listener.set_nonblocking(true).expect("nonblocking sink");
        let addr = listener.local_addr().expect("sink address");
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(self),
            messages: Mutex::new(Vec::new()),
            transcript: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            acceptor: TlsAcceptor::from(Arc::new(tls_config)),
        });
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("smtp-sink-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("sink runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("sink listener");
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => {
                                    let id = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
                                    tokio::spawn(serve(Arc::clone(&state), id, stream));
                                }
                                Err(e) => {
                                    state.log(0, &format!("* accept failed: {e}"));
                                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                                }
                            },
                        }
                    }
                });
                // Dropping the runtime cancels every connection task and closes its socket.
            })
            .expect("sink thread");
        Sink {
            addr,
            shared,
            ca_pem: certificates.ca_pem,
            ca_pem_path,
            _dir: dir,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

/// A running sink; dropping it stops the listener and closes every connection.
pub struct Sink {
    /// Where it listens (127.0.0.1, ephemeral port).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    ca_pem: String,
    ca_pem_path: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// A builder with the defaults (see [`SinkBuilder`]).
    pub fn builder() -> SinkBuilder {
        SinkBuilder::default()
    }

    /// A sink with the defaults: STARTTLS offered, every recipient and message accepted.
    pub fn start() -> Sink {
        SinkBuilder::default().start()
    }

    /// Changes the behaviour for connections accepted from now on (those already open keep
    /// theirs); the certificate stays the one made at start.
    pub fn reconfigure(&self, change: impl FnOnce(SinkBuilder) -> SinkBuilder) {
        let mut behaviour = lock(&self.shared.behaviour);
        let current = behaviour.clone();
        *behaviour = change(current);
    }

    /// The transactions accepted so far, in order.
    pub fn messages(&self) -> Vec<SinkMessage> {
        lock(&self.shared.messages).clone()
    }

    /// Waits (up to `PATIENCE`) until at least `count` messages are accepted, and returns all
    /// of them; panics with the transcript on timeout.
    pub fn wait_for_messages(&self, count: usize) -> Vec<SinkMessage> {
        super::wait_until(&format!("{count} messages at the sink"), || {
            let messages = self.messages();
            (messages.len() >= count).then_some(messages)
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e} (got {})\nsink transcript:\n{}",
                self.messages().len(),
                self.transcript()
            )
        })
    }

    /// How many TCP connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits (up to `PATIENCE`) until at least `count` connections were accepted.
    pub fn wait_for_connections(&self, count: usize) -> usize {
        super::wait_until(&format!("{count} connections to the sink"), || {
            let n = self.connections();
            (n >= count).then_some(n)
        })
        .unwrap_or_else(|e| panic!("{e}\nsink transcript:\n{}", self.transcript()))
    }

    /// Every line received (`C:`) and sent (`S:`) and every event (`*`), on all connections,
    /// one per line, each prefixed with its connection number like `[2] C: EHLO x`.
    pub fn transcript(&self) -> String {
        lock(&self.shared.transcript).join("\n")
    }

    /// Waits (up to `PATIENCE`) until the transcript contains `needle`, and returns it.
    pub fn wait_for_transcript(&self, needle: &str) -> String {
        super::wait_until(&format!("{needle:?} in the sink transcript"), || {
            let transcript = self.transcript();
            transcript.contains(needle).then_some(transcript)
        })
        .unwrap_or_else(|e| panic!("{e}\nsink transcript:\n{}", self.transcript()))
    }

    /// A PEM file with the CA that signed the sink's certificate (for its hostname,
    /// "localhost", 127.0.0.1 and ::1).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The same CA certificate, as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Encodes bytes in standard base64 with padding (for AUTH in tests).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// State shared by the sink thread and the test.
struct Shared {
    behaviour: Mutex<SinkBuilder>,
    messages: Mutex<Vec<SinkMessage>>,
    transcript: Mutex<Vec<String>>,
    connections: AtomicUsize,
    acceptor: TlsAcceptor,
}

impl Shared {
    fn log(&self, connection: usize, entry: &str) {
        let entry: String = entry.chars().take(TRANSCRIPT_WIDTH).collect();
        lock(&self.transcript).push(format!("[{connection}] {entry}"));
    }
}

/// Locks a mutex even if a panicking test thread poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The CA (PEM) and the server's chain and key.
struct Certificates {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A fresh CA, and a leaf it signs for `hostname`, "localhost", 127.0.0.1 and ::1.
fn make_certificates(hostname: &str, expired: bool) -> Certificates {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Posthorn test sink CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");

    let names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let mut leaf = CertificateParams::new(names).expect("certificate names");
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, hostname);
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let leaf_key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&leaf_key, &*ca).expect("leaf certificate");
    Certificates {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone(), ca.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// A plaintext or TLS stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the conversation does after a command.
enum Next {
    Continue,
    Close,
    Stall(Stage),
}

/// An open transaction (after an accepted MAIL FROM).
struct Transaction {
    mail_from: String,
    smtputf8: bool,
    rcpt_to: Vec<String>,
    rcpt_attempted: bool,
    chunks: Option<Vec<u8>>,
}

/// One connection's conversation.
struct Conn {
    id: usize,
    shared: Arc<Shared>,
    b: SinkBuilder,
    io: BufReader<Box<dyn Io>>,
    tls_version: Option<String>,
    helo: Option<String>,
    ehlo: bool,
    auth_user: Option<String>,
    tx: Option<Transaction>,
}

async fn serve(shared: Arc<Shared>, id: usize, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    shared.log(id, &format!("* connection from {peer}"));
    let behaviour = lock(&shared.behaviour).clone();
    let mut conn = Conn {
        id,
        shared: Arc::clone(&shared),
        b: behaviour,
        io: BufReader::new(Box::new(stream)),
        tls_version: None,
        helo: None,
        ehlo: false,
        auth_user: None,
        tx: None,
    };
    match conn.run().await {
        Ok(()) => shared.log(id, "* closed"),
        Err(e) => shared.log(id, &format!("* closed on error: {e}")),
    }
}

impl Conn {
    fn log(&self, entry: &str) {
        self.shared.log(self.id, entry);
    }

    fn stalls(&self, stage: Stage) -> bool {
        self.b.stall_at == Some(stage)
    }

    async fn run(&mut self) -> io::Result<()> {
        if self.b.implicit_tls && !self.handshake().await {
            return Ok(());
        }
        if self.stalls(Stage::Greeting) {
            return self.stall(Stage::Greeting).await;
        }
        let greeting = self
            .b
            .greeting
            .clone()
            .unwrap_or_else(|| format!("220 {} ESMTP test sink", self.b.hostname));
        self.reply(&greeting).await?;
        if !greeting.starts_with("220") {
            return Ok(());
        }
        loop {
            let Some(line) = self.read_command().await? else {
                self.log("* client closed the connection");
                return Ok(());
            };
            match self.command(&line).await? {
                Next::Continue => {}
                Next::Close => return Ok(()),
                Next::Stall(stage) => return self.stall(stage).await,
            }
        }
    }

    /// Sends a reply (one or more lines) and flushes; a 421 ends the connection.
    async fn reply(&mut self, text: &str) -> io::Result<Next> {
        let mut out = Vec::new();
        for line in text.lines() {
            self.log(&format!("S: {line}"));
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let stream = self.io.get_mut();
        stream.write_all(&out).await?;
        stream.flush().await?;
        Ok(if text.starts_with("421") {
            Next::Close
        } else {
            Next::Continue
        })
    }

    /// Reads one line with its ending, at most `limit` octets; `None` at end of stream.
    async fn read_raw_line(&mut self, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let n = (&mut self.io)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?;
        Ok((n > 0).then_some(line))
    }

    /// Reads the next command line (without its ending), answering over-long lines itself.
    async fn read_command(&mut self) -> io::Result<Option<String>> {
        loop {
            let Some(raw) = self.read_raw_line(MAX_COMMAND_LINE).await? else {
                return Ok(None);
            };
            if !raw.ends_with(b"\n") && raw.len() as u64 == MAX_COMMAND_LINE {
                self.log("C: [line too long]");
                while let Some(rest) = self.read_raw_line(MAX_COMMAND_LINE).await? {
                    if rest.ends_with(b"\n") {
                        break;
                    }
                }
                self.reply("500 5.5.6 line too long").await?;
                continue;
            }
            let mut text = String::from_utf8_lossy(&raw).into_owned();
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            self.log(&format!("C: {text}"));
            return Ok(Some(text));
        }
    }

    /// Stops answering: reads (and logs) whatever comes until the client closes.
    async fn stall(&mut self, stage: Stage) -> io::Result<()> {
        self.log(&format!("* stalled at {stage:?}: no more replies"));
        while let Some(line) = self.read_raw_line(MAX_COMMAND_LINE).await? {
            self.log(&format!("C: {}", String::from_utf8_lossy(&line).trim_end()));
        }
        self.log("* client closed the stalled connection");
        Ok(())
    }

    /// TLS handshake on the current stream; anything buffered before it is discarded.
    /// False (and logged) if it failed.
    async fn handshake(&mut self) -> bool {
        let placeholder: Box<dyn Io> = Box::new(tokio::io::empty());
        let old = std::mem::replace(&mut self.io, BufReader::new(placeholder));
        let pending = old.buffer().len();
        if pending > 0 {
            self.log(&format!(
                "* discarded {pending} octets received before the TLS handshake"
            ));
        }
        match self.shared.acceptor.accept(old.into_inner()).await {
            Ok(tls) => {
                let version = tls
                    .get_ref()
                    .1
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_else(|| "unknown".to_string());
                self.log(&format!("* TLS established: {version}"));
                self.tls_version = Some(version);
                self.io = BufReader::new(Box::new(tls));
                true
            }
            Err(e) => {
                self.log(&format!("* TLS handshake failed: {e}"));
                false
            }
        }
    }

    /// AUTH is offered in this session.
    fn auth_offered(&self) -> bool {
        self.b.auth.is_some() && (self.tls_version.is_some() || self.b.auth_plaintext)
    }

    /// The EHLO keywords and their parameters, STARTTLS and AUTH included when offered.
    fn advertised(&self) -> Vec<String> {
        let mut extensions = self.b.extensions.clone();
        if self.b.tls != SinkTls::None && self.tls_version.is_none() {
            extensions.push("STARTTLS".to_string());
        }
        if self.auth_offered() {
            extensions.push("AUTH PLAIN LOGIN".to_string());
        }
        extensions
    }

    /// The extension `keyword` was advertised in this (EHLO) session.
    fn has_ext(&self, keyword: &str) -> bool {
        self.ehlo
            && self.advertised().iter().any(|e| {
                e.split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
            })
    }

    /// The advertised SIZE limit, if any (0 means none).
    fn size_limit(&self) -> Option<u64> {
        if !self.has_ext("SIZE") {
            return None;
        }
        self.b
            .extensions
            .iter()
            .find_map(|e| {
                let mut words = e.split_whitespace();
                let keyword = words.next()?;
                keyword
                    .eq_ignore_ascii_case("SIZE")
                    .then(|| words.next().and_then(|n| n.parse::<u64>().ok()))
            })
            .flatten()
            .filter(|&n| n > 0)
    }

    async fn command(&mut self, line: &str) -> io::Result<Next> {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(arg, true).await,
            "HELO" => self.hello(arg, false).await,
            "MAIL" => self.mail(line).await,
            "RCPT" => self.rcpt(line).await,
            "DATA" => self.data(arg).await,
            "BDAT" => self.bdat(arg).await,
            "RSET" => {
                self.tx = None;
                self.reply("250 2.0.0 ok").await
            }
            "NOOP" => self.reply("250 2.0.0 ok").await,
            "QUIT" => {
                self.reply("221 2.0.0 bye").await?;
                Ok(Next::Close)
            }
            "STARTTLS" => self.starttls(arg).await,
            "AUTH" => self.auth(arg).await,
            "VRFY" => self.reply("252 2.5.0 cannot verify").await,
            "HELP" => self.reply("214 2.0.0 this is a test sink").await,
            _ => self.reply("500 5.5.2 command not recognized").await,
        }
    }

    async fn hello(&mut self, arg: &str, extended: bool) -> io::Result<Next> {
        if self.stalls(Stage::AfterEhlo) {
            return Ok(Next::Stall(Stage::AfterEhlo));
        }
        if extended && self.b.ehlo_unsupported {
            return self.reply("500 5.5.1 EHLO not supported").await;
        }
        let Some(name) = arg.split_whitespace().next() else {
            return self.reply("501 5.5.4 a hostname is required").await;
        };
        self.tx = None;
        self.helo = Some(name.to_string());
        self.ehlo = extended;
        if !extended {
            let reply = format!("250 {}", self.b.hostname);
            return self.reply(&reply).await;
        }
        let mut lines = vec![format!("{} greets {name}", self.b.hostname)];
        lines.extend(self.advertised());
        let last = lines.len() - 1;
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect();
        self.reply(&reply.join("\r\n")).await
    }

    async fn mail(&mut self, line: &str) -> io::Result<Next> {
        if self.stalls(Stage::AfterMail) {
            return Ok(Next::Stall(Stage::AfterMail));
        }
        let Some(arg) = strip_prefix_ci(line, "MAIL FROM:") else {
            return self.reply("501 5.5.4 syntax: MAIL FROM:<address>").await;
        };
        if self.helo.is_none() {
            return self.reply("503 5.5.1 send EHLO or HELO first").await;
        }
        if self.tx.is_some() {
            return self.reply("503 5.5.1 nested MAIL command").await;
        }
        if self.b.auth.is_some() && self.auth_user.is_none() {
            return self.reply("530 5.7.0 authentication required").await;
        }
        let Some((address, params)) = parse_path(arg) else {
            return self.reply("501 5.1.7 bad sender address syntax").await;
        };
        if !address.is_empty() && !address.contains('@') {
            return self.reply("501 5.1.7 bad sender address syntax").await;
        }
        let mut smtputf8 = false;
        for param in &params {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
                None => (param.to_ascii_uppercase(), None),
            };
            let (extension, valid) = match key.as_str() {
                "SIZE" => (
                    "SIZE",
                    value.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())),
                ),
                "BODY" => match value.map(|v| v.to_ascii_uppercase()).as_deref() {
                    Some("7BIT") | Some("8BITMIME") => ("8BITMIME", true),
                    Some("BINARYMIME") => ("BINARYMIME", true),
                    _ => ("8BITMIME", false),
                },
                "SMTPUTF8" => {
                    smtputf8 = true;
                    ("SMTPUTF8", value.is_none())
                }
                "RET" => (
                    "DSN",
                    value.is_some_and(|v| {
                        v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS")
                    }),
                ),
                "ENVID" => ("DSN", value.is_some_and(|v| !v.is_empty())),
                "AUTH" => ("AUTH", value.is_some_and(|v| !v.is_empty())),
                "REQUIRETLS" => ("REQUIRETLS", value.is_none()),
                _ => {
                    let reply = format!("555 5.5.4 unsupported parameter {param}");
                    return self.reply(&reply).await;
                }
            };
            if !self.has_ext(extension) {
                let reply = format!("555 5.5.4 {key} used but {extension} not advertised");
                return self.reply(&reply).await;
            }
            if !valid {
                let reply = format!("501 5.5.4 invalid parameter {param}");
                return self.reply(&reply).await;
            }
            if key == "SIZE" {
                let declared = value
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                if self.size_limit().is_some_and(|limit| declared > limit) {
                    return self
                        .reply("552 5.3.4 message size exceeds fixed limit")
                        .await;
                }
            }
        }
        if !smtputf8 && !address.is_ascii() {
            return self
                .reply("553 5.6.7 non-ASCII address without SMTPUTF8")
                .await;
        }
        let reply = self.b.mail_reply.clone();
        if reply.starts_with('2') {
            self.tx = Some(Transaction {
                mail_from: arg.to_string(),
                smtputf8,
                rcpt_to: Vec::new(),
                rcpt_attempted: false,
                chunks: None,
            });
        }
        self.reply(&reply).await
    }

    async fn rcpt(&mut self, line: &str) -> io::Result<Next> {
        if self.stalls(Stage::AfterRcpt) {
            return Ok(Next::Stall(Stage::AfterRcpt));
        }
        let Some(arg) = strip_prefix_ci(line, "RCPT TO:") else {
            return self.reply("501 5.5.4 syntax: RCPT TO:<address>").await;
        };
        let Some(smtputf8) = self.tx.as_ref().map(|tx| tx.smtputf8) else {
            return self.reply("503 5.5.1 need MAIL first").await;
        };
        let Some((address, params)) = parse_path(arg) else {
            return self.reply("501 5.1.3 bad recipient address syntax").await;
        };
        if !address.contains('@') && !address.eq_ignore_ascii_case("postmaster") {
            return self.reply("501 5.1.3 bad recipient address syntax").await;
        }
        for param in &params {
            let key = param
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if !matches!(key.as_str(), "NOTIFY" | "ORCPT") {
                let reply = format!("555 5.5.4 unsupported parameter {param}");
                return self.reply(&reply).await;
            }
            if !self.has_ext("DSN") {
                let reply = format!("555 5.5.4 {key} used but DSN not advertised");
                return self.reply(&reply).await;
            }
        }
        if !smtputf8 && !address.is_ascii() {
            return self
                .reply("553 5.6.7 non-ASCII address without SMTPUTF8")
                .await;
        }
        let reply = (self.b.rcpt)(&address);
        if let Some(tx) = self.tx.as_mut() {
            tx.rcpt_attempted = true;
            if reply.starts_with('2') {
                tx.rcpt_to.push(arg.to_string());
            }
        }
        self.reply(&reply).await
    }

    /// Why the content of the open transaction cannot be taken now, if it cannot.
    fn content_refusal(&self) -> Option<&'static str> {
        match &self.tx {
            None => Some("503 5.5.1 need MAIL first"),
            Some(tx) if tx.rcpt_to.is_empty() && tx.rcpt_attempted => {
                Some("554 5.5.1 no valid recipients")
            }
            Some(tx) if tx.rcpt_to.is_empty() => Some("503 5.5.1 need RCPT first"),
            Some(_) => None,
        }
    }

    async fn data(&mut self, arg: &str) -> io::Result<Next> {
        if self.stalls(Stage::AfterDataCommand) {
            return Ok(Next::Stall(Stage::AfterDataCommand));
        }
        if !arg.trim().is_empty() {
            return self.reply("501 5.5.4 DATA takes no argument").await;
        }
        if let Some(refusal) = self.content_refusal() {
            return self.reply(refusal).await;
        }
        if self.tx.as_ref().is_some_and(|tx| tx.chunks.is_some()) {
            self.tx = None;
            return self.reply("503 5.5.1 DATA after BDAT").await;
        }
        self.reply("354 2.0.0 end data with <CR><LF>.<CR><LF>")
            .await?;
        let mut content = Vec::new();
        let mut line_start = true;
        loop {
            let Some(line) = self.read_raw_line(u64::MAX).await? else {
                self.log("* client closed the connection during DATA");
                return Ok(Next::Close);
            };
            self.log(&format!("C: {}", String::from_utf8_lossy(&line).trim_end()));
            if self.b.drop_mid_data {
                self.log("* dropping the connection in the middle of DATA");
                return Ok(Next::Close);
            }
            if line_start && line == b".\r\n" {
                break;
            }
            let unstuffed = if line_start && line.starts_with(b".") {
                &line[1..]
            } else {
                &line[..]
            };
            content.extend_from_slice(unstuffed);
            line_start = line.ends_with(b"\r\n");
        }
        self.finish(content, false).await
    }

    async fn bdat(&mut self, arg: &str) -> io::Result<Next> {
        let mut words = arg.split_whitespace();
        let size = words
            .next()
            .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.parse::<u64>().ok());
        let last = match words.next() {
            None => Some(false),
            Some(w) if w.eq_ignore_ascii_case("LAST") => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last), None) = (size, last, words.next()) else {
            return self.reply("501 5.5.4 syntax: BDAT size [LAST]").await;
        };
        let refusal = if self.has_ext("CHUNKING") {
            self.content_refusal()
        } else {
            Some("502 5.5.1 CHUNKING not advertised")
        };
        if let Some(refusal) = refusal {
            let mut discard = Vec::new();
            let n = (&mut self.io).take(size).read_to_end(&mut discard).await?;
            self.log(&format!("C: [BDAT chunk of {n} octets, discarded]"));
            if (n as u64) < size {
                return Ok(Next::Close);
            }
            self.tx = None;
            return self.reply(refusal).await;
        }
        if self.b.drop_mid_data {
            let part = size.div_ceil(2);
            let mut discard = Vec::new();
            let n = (&mut self.io).take(part).read_to_end(&mut discard).await?;
            self.log(&format!(
                "* dropping the connection after {n} octets of a {size}-octet chunk"
            ));
            return Ok(Next::Close);
        }
        let mut chunk = Vec::new();
        let n = (&mut self.io).take(size).read_to_end(&mut chunk).await?;
        self.log(&format!("C: [BDAT chunk of {n} octets]"));
        if (n as u64) < size {
            self.log("* client closed the connection during BDAT");
            return Ok(Next::Close);
        }
        let Some(tx) = self.tx.as_mut() else {
            return self.reply("503 5.5.1 need MAIL first").await;
        };
        tx.chunks
            .get_or_insert_with(Vec::new)
            .extend_from_slice(&chunk);
        if !last {
            let reply = format!("250 2.0.0 {size} octets received");
            return self.reply(&reply).await;
        }
        let content = tx.chunks.take().unwrap_or_default();
        self.finish(content, true).await
    }

    /// The end of the content: the record if the configured reply is 2xx, then the reply.
    /// Recorded first, so a sender holding the 250 (and anything it did after, such as
    /// removing the message from its spool) finds the message in `messages()`.
    async fn finish(&mut self, content: Vec<u8>, bdat: bool) -> io::Result<Next> {
        if self.stalls(Stage::DataEnd) {
            return Ok(Next::Stall(Stage::DataEnd));
        }
        let Some(tx) = self.tx.take() else {
            return self.reply("503 5.5.1 need MAIL first").await;
        };
        if self
            .size_limit()
            .is_some_and(|limit| content.len() as u64 > limit)
        {
            return self
                .reply("552 5.3.4 message size exceeds fixed limit")
                .await;
        }
        let reply = self.b.data_reply.clone();
        if reply.starts_with('2') {
            self.log(&format!("* message recorded ({} octets)", content.len()));
            lock(&self.shared.messages).push(SinkMessage {
                helo: self.helo.clone().unwrap_or_default(),
                ehlo: self.ehlo,
                mail_from: tx.mail_from,
                rcpt_to: tx.rcpt_to,
                content,
                bdat,
                tls: self.tls_version.is_some(),
                tls_version: self.tls_version.clone(),
                auth_user: self.auth_user.clone(),
                connection: self.id,
            });
        }
        self.reply(&reply).await
    }

    async fn starttls(&mut self, arg: &str) -> io::Result<Next> {
        if !arg.trim().is_empty() {
            return self.reply("501 5.5.4 STARTTLS takes no argument").await;
        }
        if self.tls_version.is_some() {
            return self.reply("503 5.5.1 TLS already active").await;
        }
        if self.b.tls == SinkTls::None {
            return self.reply("502 5.5.1 STARTTLS not supported").await;
        }
        if self.helo.is_none() {
            return self.reply("503 5.5.1 send EHLO first").await;
        }
        if !self.ehlo {
            return self.reply("502 5.5.1 STARTTLS not advertised").await;
        }
        if self.b.tls == SinkTls::Refuse {
            return self.reply("454 4.7.0 TLS not available").await;
        }
        self.reply("220 2.0.0 ready to start TLS").await?;
        if !self.handshake().await {
            return Ok(Next::Close);
        }
        self.helo = None;
        self.ehlo = false;
        self.auth_user = None;
        self.tx = None;
        Ok(Next::Continue)
    }

    /// Sends a 334 challenge and reads the response line; `None` at end of stream.
    async fn challenge(&mut self, prompt: &str) -> io::Result<Option<String>> {
        self.reply(prompt).await?;
        self.read_command().await
    }

    async fn auth(&mut self, arg: &str) -> io::Result<Next> {
        let Some((user, password)) = self.b.auth.clone() else {
            return self.reply("502 5.5.1 AUTH not supported").await;
        };
        if !self.ehlo {
            return self.reply("503 5.5.1 send EHLO first").await;
        }
        if !self.auth_offered() {
            return self
                .reply("538 5.7.11 encryption required for authentication")
                .await;
        }
        if self.auth_user.is_some() {
            return self.reply("503 5.5.1 already authenticated").await;
        }
        if self.tx.is_some() {
            return self.reply("503 5.5.1 AUTH during a transaction").await;
        }
        let mut words = arg.split_whitespace();
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next().map(str::to_string);
        let (given_user, given_password) = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(response) => response,
                    None => match self.challenge("334 ").await? {
                        Some(response) => response,
                        None => return Ok(Next::Close),
                    },
                };
                if response == "*" {
                    return self.reply("501 5.7.0 authentication cancelled").await;
                }
                let Some(decoded) = base64_decode(&response) else {
                    return self.reply("501 5.5.2 invalid base64").await;
                };
                let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
                let [_authzid, authcid, passwd] = parts.as_slice() else {
                    return self.reply("501 5.5.2 malformed PLAIN response").await;
                };
                (
                    String::from_utf8_lossy(authcid).into_owned(),
                    String::from_utf8_lossy(passwd).into_owned(),
                )
            }
            "LOGIN" => {
                let username = match initial {
                    Some(response) => response,
                    None => match self.challenge("334 VXNlcm5hbWU6").await? {
                        Some(response) => response,
                        None => return Ok(Next::Close),
                    },
                };
                if username == "*" {
                    return self.reply("501 5.7.0 authentication cancelled").await;
                }
                let Some(password) = self.challenge("334 UGFzc3dvcmQ6").await? else {
                    return Ok(Next::Close);
                };
                if password == "*" {
                    return self.reply("501 5.7.0 authentication cancelled").await;
                }
                let (Some(username), Some(password)) =
                    (base64_decode(&username), base64_decode(&password))
                else {
                    return self.reply("501 5.5.2 invalid base64").await;
                };
                (
                    String::from_utf8_lossy(&username).into_owned(),
                    String::from_utf8_lossy(&password).into_owned(),
                )
            }
            _ => {
                return self
                    .reply("504 5.5.4 unrecognized authentication mechanism")
                    .await;
            }
        };
        if given_user == user && given_password == password {
            self.log(&format!("* authenticated as {given_user}"));
            self.auth_user = Some(given_user);
            self.reply("235 2.7.0 authentication successful").await
        } else {
            self.reply("535 5.7.8 authentication credentials invalid")
                .await
        }
    }
}

/// `line` without `prefix` (compared case-insensitively), if it starts with it.
fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &line[prefix.len()..])
}

/// Splits `<address> PARAM PARAM=VALUE` into the address (without brackets) and the
/// parameters; `None` unless it starts with `<` and the path closes (quoted parts allowed).
fn parse_path(arg: &str) -> Option<(String, Vec<String>)> {
    let rest = arg.strip_prefix('<')?;
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '>' && !quoted {
            end = Some(i);
            break;
        }
    }
    let end = end?;
    let address = &rest[..end];
    let after = &rest[end + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        return None;
    }
    let params = after
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    Some((address.to_string(), params.collect()))
}
