//! One outbound SMTP connection: the tokio driver of the protocol client. It connects,
//! greets, takes TLS when offered (or insists on it), authenticates, and then carries any
//! number of transactions, each streaming its content from the spool.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use posthorn_proto::client::{
    Capabilities, Client, DotStuffer, Event, Outgoing, Stage, TransactionEnd, Waiting,
};
use posthorn_proto::{Reply, Status};
use posthorn_spool::Diagnostic;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::info;

use super::tls::TlsClient;
use crate::config::TlsPolicy;
use crate::delivery::message::QueuedMessage;
use crate::stream::{self, ClientConnection, negotiated};

/// Content is read from the spool and written in blocks of this size.
const BLOCK: usize = 256 * 1024;

/// How to reach and talk to one server.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Its name: for SNI, certificate checks and `Remote-MTA`.
    pub name: String,
    /// Where to connect.
    pub address: SocketAddr,
    /// How hard to insist on TLS.
    pub tls: TlsPolicy,
    /// TLS from the first byte.
    pub implicit_tls: bool,
    /// AUTH user and password.
    pub credentials: Option<(String, String)>,
}

/// Settings shared by all connections.
#[derive(Debug)]
pub struct Settings {
    /// Our EHLO name.
    pub helo_name: String,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Wait for the greeting and each reply.
    pub command_timeout: Duration,
    /// Wait for the reply after the content.
    pub final_timeout: Duration,
    /// How long an open connection waits for the next message (see `idle`).
    pub idle_limit: Duration,
    /// TLS configurations.
    pub tls: TlsClient,
}

/// Why a connection or a transaction could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What to record for the recipients concerned.
    pub diagnostic: Diagnostic,
    /// True when trying again cannot help.
    pub permanent: bool,
}

impl std::fmt::Display for Hop {
    /// `mx.example.net[192.0.2.1]:25`, as Postfix names a server, or `192.0.2.1:25` when
    /// its name is its address: which server, at which address and port.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == self.address.ip().to_string() {
            write!(f, "{}", self.address)
        } else {
            let (ip, port) = (self.address.ip(), self.address.port());
            write!(f, "{}[{ip}]:{port}", self.name)
        }
    }
}

impl Failure {
    /// A failure of our own making or of the network, not a server's reply; with the
    /// `server` we were talking to, if any, named at its end: `(server 192.0.2.1:25)`.
    pub fn local(status: Status, text: impl Into<String>, server: Option<&Hop>) -> Self {
        let text = text.into();
        Failure {
            permanent: status.class == 5,
            diagnostic: Diagnostic {
                status,
                text: match server {
                    Some(hop) => format!("{text} (server {hop})"),
                    None => text,
                },
                remote_mta: server.map(|hop| hop.name.clone()),
                smtp_reply: None,
            },
        }
    }

    /// A server's refusal.
    pub fn reply(reply: &Reply, server: &Hop, context: &str) -> Self {
        Failure {
            permanent: reply.code >= 500,
            diagnostic: diagnostic_of(reply, server, context),
        }
    }
}

/// The diagnostic for a server's reply: its enhanced status code, or one derived from the
/// reply code when the server sent none; the text names the step and the server that
/// replied: `RCPT TO refused: 550 5.1.1 no such user (reply from mx.example.net[192.0.2.1]:25)`.
pub fn diagnostic_of(reply: &Reply, server: &Hop, context: &str) -> Diagnostic {
    let status = reply.status.unwrap_or_else(|| match reply.code / 100 {
        2 => Status::new(2, 0, 0),
        4 => Status::new(4, 0, 0),
        _ => Status::new(5, 0, 0),
    });
    Diagnostic {
        status,
        text: format!("{context}: {reply} (reply from {server})"),
        remote_mta: Some(server.name.clone()),
        smtp_reply: Some(reply.to_string()),
    }
}

/// The message content as it goes out: our prepended headers, then the spooled content.
pub struct Source {
    head: Vec<u8>,
    reader: Option<Box<dyn Read + Send>>,
}

impl Source {
    /// A source over a queued message: its head, then the rest from disk. A message whose
    /// head holds it all (nearly every one: the head is its first 64 KiB, or a job carries
    /// it in memory) never goes to a blocking thread for an empty read.
    pub fn new(message: QueuedMessage) -> Self {
        Source {
            head: message.head,
            reader: (message.rest_len > 0).then_some(message.rest),
        }
    }

    /// The next block, read on a blocking thread; `None` at the end.
    async fn next_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        if !self.head.is_empty() {
            return Ok(Some(std::mem::take(&mut self.head)));
        }
        let Some(mut reader) = self.reader.take() else {
            return Ok(None);
        };
        let (reader, block) = tokio::task::spawn_blocking(move || {
            let mut block = Vec::with_capacity(BLOCK);
            let result = (&mut reader).take(BLOCK as u64).read_to_end(&mut block);
            (reader, result.map(|_| block))
        })
        .await
        .map_err(io::Error::other)?;
        let block = block?;
        if block.is_empty() {
            return Ok(None);
        }
        // Short of a whole block, the reader is at its end: no read is owed for it.
        if block.len() == BLOCK {
            self.reader = Some(reader);
        }
        Ok(Some(block))
    }
}

/// The replies of one transaction.
#[derive(Debug)]
pub struct Report {
    /// The RCPT reply of each recipient, in order (`None` if never answered).
    pub recipients: Vec<Option<Reply>>,
    /// How the transaction ended.
    pub end: TransactionEnd,
}

/// An open, greeted (and possibly encrypted and authenticated) connection.
pub struct Connection {
    stream: ClientConnection,
    client: Client,
    settings: Arc<Settings>,
    buffer: Vec<u8>,
    /// The server we talk to.
    pub hop: Hop,
    /// The negotiated TLS version, if any.
    pub tls: Option<String>,
    /// When it was opened.
    opened: Instant,
}

impl Connection {
    /// Connects to `hop` and gets the connection ready for transactions.
    pub async fn open(hop: Hop, settings: Arc<Settings>) -> Result<Connection, Failure> {
        let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(hop.address))
            .await
            .map_err(|_| Failure::local(Status::new(4, 4, 1), "connect timed out", Some(&hop)))?
            .map_err(|e| {
                Failure::local(
                    Status::new(4, 4, 1),
                    format!("cannot connect: {e}"),
                    Some(&hop),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let mut connection = Connection {
            stream: stream::Connection::Plain(tcp),
            client: Client::new(settings.helo_name.clone()),
            settings,
            buffer: vec![0; 16 * 1024],
            hop,
            tls: None,
            opened: Instant::now(),
        };
        if connection.hop.implicit_tls {
            connection.handshake().await?;
        }
        connection.expect_ready().await?;
        let wants_tls = connection.hop.tls != TlsPolicy::None && !connection.hop.implicit_tls;
        if wants_tls && connection.client.capabilities().starttls {
            connection.client.start_tls();
            match connection.next_event().await? {
                Event::StartTls => {
                    connection.handshake().await?;
                    connection.client.tls_established();
                    connection.expect_ready().await?;
                }
                Event::Refused(_, reply) if connection.hop.tls == TlsPolicy::Opportunistic => {
                    info!(mta = %connection.hop.name, reply = %reply, "STARTTLS refused, going on without TLS");
                    // The server refused STARTTLS; it is still at the command level.
                }
                other => return Err(connection.unexpected(other, "STARTTLS")),
            }
        }
        if connection.tls.is_none()
            && matches!(connection.hop.tls, TlsPolicy::Required | TlsPolicy::Verify)
        {
            return Err(Failure::local(
                Status::new(4, 7, 10),
                "the server does not offer TLS, which is required",
                Some(&connection.hop),
            ));
        }
        if let Some((user, password)) = connection.hop.credentials.clone() {
            if connection.tls.is_none() {
                return Err(Failure::local(
                    Status::new(4, 7, 10),
                    "refusing to send credentials without TLS",
                    Some(&connection.hop),
                ));
            }
            connection.client.authenticate(&user, &password);
            connection.expect_ready().await?;
        }
        Ok(connection)
    }

    /// What the server offers.
    pub fn capabilities(&self) -> &Capabilities {
        self.client.capabilities()
    }

    /// Sends one message: envelope, then content from `source`.
    pub async fn send(
        &mut self,
        outgoing: Outgoing,
        source: &mut Source,
    ) -> Result<Report, Failure> {
        let bdat = outgoing.chunk_len.is_some();
        let mut recipients = vec![None; outgoing.recipients.len()];
        self.client.send(outgoing);
        loop {
            match self.next_event().await? {
                Event::Recipient(index, reply) => {
                    if let Some(slot) = recipients.get_mut(index) {
                        *slot = Some(reply);
                    }
                }
                Event::SendContent => {
                    self.write_content(source, bdat).await?;
                    self.client.content_sent();
                }
                Event::Done(end) => return Ok(Report { recipients, end }),
                other => return Err(self.unexpected(other, "a transaction")),
            }
        }
    }

    /// How long it has been open.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Whether the server has sent nothing since its last reply: an idle server that
    /// times us out says `421` or closes, which leaves something (or the end) to read.
    /// What is read is lost, so a connection that is not quiet must be dropped.
    pub async fn is_quiet(&mut self) -> bool {
        let mut probe = [0; 1];
        tokio::time::timeout(Duration::ZERO, self.stream.read(&mut probe))
            .await
            .is_err()
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn quit(mut self) {
        self.client.quit();
        let bye = tokio::time::timeout(Duration::from_secs(5), self.next_event()).await;
        drop(bye);
        let _ = self.stream.shutdown().await;
    }

    async fn write_content(&mut self, source: &mut Source, bdat: bool) -> Result<(), Failure> {
        self.flush().await?;
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        loop {
            let block = source.next_block().await.map_err(|e| {
                Failure::local(
                    Status::new(4, 3, 0),
                    format!("cannot read the queued message: {e}"),
                    None,
                )
            })?;
            let Some(block) = block else { break };
            let bytes = if bdat {
                &block
            } else {
                out.clear();
                stuffer.stuff(&block, &mut out);
                &out
            };
            self.write(bytes).await?;
        }
        if !bdat {
            out.clear();
            stuffer.finish(&mut out);
            self.write(&out).await?;
        }
        Ok(())
    }

    async fn handshake(&mut self) -> Result<(), Failure> {
        let hop = self.hop.clone();
        let mta = hop.name.as_str();
        let verify = self.hop.tls == TlsPolicy::Verify;
        let Some(config) = self.settings.tls.config(verify) else {
            return Err(Failure::local(
                Status::new(4, 7, 5),
                "no trusted roots to verify certificates",
                Some(&hop),
            ));
        };
        let name = match self.hop.name.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.hop.name.clone()).map_err(|e| {
                Failure::local(
                    Status::new(4, 7, 5),
                    format!("bad TLS name: {e}"),
                    Some(&hop),
                )
            })?,
        };
        let Some(tcp) = self.stream.take_plain() else {
            return Err(Failure::local(
                Status::new(4, 7, 5),
                "TLS is already active",
                Some(&hop),
            ));
        };
        let connector = TlsConnector::from(config);
        let tls = tokio::time::timeout(
            self.settings.command_timeout,
            connector.connect(name.clone(), tcp),
        )
        .await
        .map_err(|_| Failure::local(Status::new(4, 7, 5), "TLS handshake timed out", Some(&hop)))?
        .map_err(|e| {
            Failure::local(
                Status::new(4, 7, 5),
                format!("TLS handshake failed: {e}"),
                Some(&hop),
            )
        })?;
        let (_, session) = tls.get_ref();
        let (version, cipher) = negotiated(session);
        let verified = verify
            || session
                .peer_certificates()
                .is_some_and(|certs| self.settings.tls.would_verify(certs, &name));
        info!(mta, address = %self.hop.address, version, cipher, verified, "TLS established");
        self.tls = Some(version);
        self.stream = stream::Connection::Tls(Box::new(tls));
        Ok(())
    }

    /// Waits for [`Event::Ready`]; anything else is a failure of the set-up.
    async fn expect_ready(&mut self) -> Result<(), Failure> {
        match self.next_event().await? {
            Event::Ready => Ok(()),
            other => Err(self.unexpected(other, "connection set-up")),
        }
    }

    fn unexpected(&self, event: Event, during: &str) -> Failure {
        let hop = &self.hop;
        match event {
            Event::Refused(Stage::Auth, reply) => {
                // Our credentials are wrong: an operator's mistake to fix, not the sender's
                // fault, so mail waits instead of bouncing (Postfix's smtp_sasl_auth_soft_bounce).
                let mut failure = Failure::reply(
                    &reply,
                    hop,
                    "AUTH refused; check the credentials configured for this hop",
                );
                failure.permanent = false;
                failure
            }
            Event::Refused(stage, reply) => {
                let context = match stage {
                    Stage::Greeting => "greeting refused",
                    Stage::Hello => "EHLO refused",
                    Stage::StartTls => "STARTTLS refused, and TLS is required for this hop",
                    Stage::Auth => "AUTH refused",
                    Stage::Reset => "RSET refused",
                };
                Failure::reply(&reply, hop, context)
            }
            other => Failure::local(
                Status::new(4, 5, 0),
                format!("protocol error during {during}: unexpected {other:?}"),
                Some(hop),
            ),
        }
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        if self.client.output().is_empty() {
            return Ok(());
        }
        let output = self.client.output().to_vec();
        self.client.clear_output();
        self.write(&output).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let timeout = self.settings.command_timeout;
        let result = tokio::time::timeout(timeout, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.lost(format!("write failed: {e}"))),
            Err(_) => Err(self.lost("write timed out".into())),
        }
    }

    async fn next_event(&mut self) -> Result<Event, Failure> {
        loop {
            match self.client.next_event() {
                Ok(Some(event)) => return Ok(event),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::local(
                        Status::new(4, 5, 0),
                        format!("protocol error: {}", e.0),
                        Some(&self.hop),
                    ));
                }
            }
            self.flush().await?;
            let timeout = match self.client.waiting() {
                Some(Waiting::ContentEnd) => self.settings.final_timeout,
                _ => self.settings.command_timeout,
            };
            let read = tokio::time::timeout(timeout, self.stream.read(&mut self.buffer)).await;
            match read {
                Err(_) => {
                    return Err(
                        self.lost(format!("timeout waiting for {:?}", self.client.waiting()))
                    );
                }
                Ok(Err(e)) => return Err(self.lost(format!("read failed: {e}"))),
                Ok(Ok(0)) => return Err(self.lost("connection closed by the server".into())),
                Ok(Ok(n)) => self.client.feed(&self.buffer[..n]),
            }
        }
    }

    fn lost(&self, text: String) -> Failure {
        Failure::local(Status::new(4, 4, 2), text, Some(&self.hop))
    }
}
