//! The tokio driver of an inbound SMTP session: it moves bytes between the socket and the
//! protocol core, answers the core's questions (who exists, may this client relay, is the
//! password right, is the mailbox full, did the spool take the message) and streams
//! message content into the spool.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use posthorn_proto::reply::table;
use posthorn_proto::{
    Action, Credentials, ForwardPath, MailFrom, RcptTo, Reply, ReversePath, Session, SessionConfig,
};
use posthorn_spool::{Envelope, MessageWriter, QueueId, QueueStore, Recipient, Route};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::accounts::directory::{Directory, Resolution, Target};
use crate::accounts::login::{Checked, Logins, Protocol};
use crate::accounts::users::LiveDirectory;
use crate::clock::unix_now;
use crate::config::SendingLimits;
use crate::delivery::message::HEAD_LIMIT;
use crate::delivery::sieve::Sieve;
use crate::inbound::checks::milters::{self, Milters};
use crate::inbound::checks::{self, Stage};
use crate::inbound::envelope::{self, Arrival};
use crate::inbound::limits::sending::SendingQuota;
use crate::inbound::policy::{self, Party};
use crate::inbound::sieve_reject::{self, Decided, SieveAtData};
use crate::inbound::submission::Missing;
use crate::learning::Learning;
use crate::mailauth::sign::Signer;
use crate::mailauth::spf::SpfChecks;
use crate::mailauth::verify::{self, Disposition, Verdict, Verifier, strip_own_results};
use crate::queue::QueueHandle;
use crate::queue::flow::{Flow, Ticket};
use crate::stream::ServerConnection;
use posthorn_mailbox::budget::MemoryBudget;
use posthorn_maildir::Quota;
use posthorn_proto::headers::{has_field, header_section, section_end_from};

/// Octets read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;
/// Content is handed to the spool file once this much is buffered.
const FLUSH_AT: usize = 256 * 1024;
/// The header section is held until it ends, to be filtered and checked before anything is
/// written; a longer one gets the message refused. No more than a session buffers anyway
/// (Postfix keeps 100 KiB of a header field and discards the rest).
const MAX_HEADER_SECTION: usize = FLUSH_AT;

/// What every inbound session shares.
pub struct Inbound {
    /// Wait for a command.
    pub command_timeout: Duration,
    /// Wait for message content.
    pub data_timeout: Duration,
    /// Who receives mail here, and who may log in.
    pub directory: Arc<LiveDirectory>,
    /// Where accepted mail goes.
    pub store: Arc<dyn QueueStore>,
    /// Tells the queue manager about new mail.
    pub queue: QueueHandle,
    /// Client networks allowed to relay.
    pub trusted_networks: Vec<ipnet::IpNet>,
    /// STARTTLS and implicit TLS with our certificate.
    pub tls: TlsAcceptor,
    /// Password checks with their brute-force throttle, shared with POP3 and IMAP.
    pub logins: Arc<Logins>,
    /// What authenticated users have sent.
    pub sending: SendingQuota,
    /// Errors before replies are delayed, and the delay per further error.
    pub tarpit: (u32, Duration),
    /// SPF, DKIM, DMARC and ARC checks of mail from other servers.
    pub verifier: Verifier,
    /// DKIM signing of our domains' mail; `None` when signing is off.
    pub signer: Option<Arc<Signer>>,
    /// ARC-seal mail from other servers that an alias or a Sieve `redirect` forwards
    /// elsewhere.
    pub arc_seal: bool,
    /// Memory for messages held whole while they are checked or signed.
    pub whole_messages: MemoryBudget,
    /// What a local user (through `sendmail`) may send: `[sending]`.
    pub local_sending: SendingLimits,
    /// The checking stage; `None` when `checks.enabled` is off.
    pub checks: Option<Arc<Stage>>,
    /// Inflow control: new messages wait while delivery is behind.
    pub flow: Arc<Flow>,
    /// What users taught: the classifier's models, their correspondents.
    pub learning: Option<Arc<Learning>>,
    /// The Sieve compiler ManageSieve checks uploads with.
    pub sieve: Arc<Sieve>,
    /// The recipients' Sieve scripts, asked for a reject before the reply to DATA;
    /// `None` when `[sieve]` is off.
    pub sieve_at_data: Option<Arc<SieveAtData>>,
}

impl Inbound {
    /// True when `ip` is in a trusted network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_networks.iter().any(|n| n.contains(&ip))
    }
}

/// How one listener runs its sessions.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Protocol limits, STARTTLS and AUTH for this listener.
    pub session_config: SessionConfig,
    /// A submission service: messages get a missing Date or Message-ID (RFC 6409 §8).
    pub submission: bool,
    /// `[checks]` runs on mail arriving here.
    pub checks: bool,
    /// The external filters mail arriving here is shown.
    pub milters: Milters,
}

/// Who is at the other end.
#[derive(Debug, Clone)]
pub enum Client {
    /// A network client.
    Network(SocketAddr),
    /// A local program through `posthorn sendmail`.
    Local(LocalUser),
}

/// The Unix user a local program runs as, known from the socket (SO_PEERCRED).
#[derive(Debug, Clone)]
pub struct LocalUser {
    /// Its user id.
    pub uid: u32,
    /// Its name, or `unknown`.
    pub name: String,
    /// Root or a member of `policy.local_any_sender_group`: may use any sender.
    pub any_sender: bool,
}

impl Client {
    /// The client's address, for network clients.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Client::Network(addr) => Some(addr.ip()),
            Client::Local(_) => None,
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Network(addr) => write!(f, "{}", addr.ip()),
            Client::Local(user) => write!(f, "local:{}", user.name),
        }
    }
}

/// The message being received.
struct Incoming {
    id: QueueId,
    writer: Box<dyn MessageWriter>,
    arrival: u64,
    /// Part of the content already went to the spool file: it is not all in memory.
    spilled: bool,
    /// What the header section showed, once it has all arrived.
    header: Option<HeaderFindings>,
    /// Octets of content searched for the end of the header section so far.
    scanned: usize,
}

/// What the header section of a message showed.
struct HeaderFindings {
    /// Headers a submitted message lacks; none for mail from other servers, which is not
    /// completed.
    missing: Missing,
    /// Why the message will be refused at its end, if it will.
    refusal: Option<Reply>,
    /// We will DKIM-sign it: its sender is one we sign for, and we hold keys for its From
    /// domain.
    signed: bool,
    /// It carries DKIM or ARC signatures, whose check needs its body.
    signatures: bool,
    /// The length of the header section.
    len: u64,
}

/// Runs one session on `connection` until the client leaves, the session ends, or
/// shutdown.
pub async fn run(
    inbound: Arc<Inbound>,
    endpoint: Arc<Endpoint>,
    connection: ServerConnection,
    client: Client,
    shutdown: watch::Receiver<bool>,
) {
    let tls = connection.tls_description();
    let config = endpoint.session_config.clone();
    let session = if tls.is_some() {
        Session::new_tls(config)
    } else {
        Session::new(config)
    };
    let mut driver = Driver {
        inbound,
        endpoint,
        connection,
        client,
        tls,
        session,
        incoming: None,
        content: Vec::new(),
        accepted: 0,
        spf: None,
        ticket: None,
    };
    let started = Instant::now();
    let end = driver.drive(shutdown).await.to_string();
    info!(
        client = %driver.client,
        helo = driver.session.hello().map_or("", |h| h.name.as_str()),
        tls = driver.tls.as_deref().unwrap_or("none"),
        user = driver.session.authenticated().unwrap_or(""),
        accepted = driver.accepted,
        duration_ms = started.elapsed().as_millis() as u64,
        end = end.as_str(),
        "session"
    );
}

struct Driver {
    inbound: Arc<Inbound>,
    endpoint: Arc<Endpoint>,
    connection: ServerConnection,
    client: Client,
    /// The TLS version and cipher, once encrypted.
    tls: Option<String>,
    session: Session<Vec<Target>>,
    incoming: Option<Incoming>,
    content: Vec<u8>,
    accepted: u32,
    /// The SPF results of the transaction, when its mail is checked.
    spf: Option<SpfChecks>,
    /// The inflow ticket of the transaction, handed to the queue with its message.
    ticket: Option<Ticket>,
}

/// How a session ended, for the log.
enum End {
    /// The client said QUIT.
    Quit,
    /// The client closed the connection without QUIT.
    ClientClosed,
    /// The client was silent too long.
    Timeout,
    /// The server is stopping.
    Shutdown,
    /// We closed it: too many errors, or not SMTP.
    Closed,
    /// Reading failed.
    ReadError(std::io::Error),
    /// Writing failed.
    WriteError(std::io::Error),
    /// STARTTLS was answered, but the handshake failed (or timed out).
    TlsFailed(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Quit => f.write_str("quit"),
            End::ClientClosed => f.write_str("client closed"),
            End::Timeout => f.write_str("timeout"),
            End::Shutdown => f.write_str("shutdown"),
            End::Closed => f.write_str("closed"),
            End::ReadError(e) => write!(f, "read error: {e}"),
            End::WriteError(e) => write!(f, "write error: {e}"),
            End::TlsFailed(why) => write!(f, "TLS handshake failed: {why}"),
        }
    }
}

impl End {
    /// The end a failed read means. A TLS client that closes the TCP connection without
    /// TLS's close_notify gets an "unexpected EOF" from rustls: most clients do that, and
    /// SMTP, which frames its own data, loses nothing by it, so it is a close, not an error.
    fn of_read_error(error: std::io::Error) -> End {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            End::ClientClosed
        } else {
            End::ReadError(error)
        }
    }
}

/// What woke the driver while it waited for input.
enum Wake {
    Read(std::io::Result<usize>),
    TimedOut,
    Shutdown,
}

impl Driver {
    /// The session loop; returns how it ended, for the log.
    async fn drive(&mut self, mut shutdown: watch::Receiver<bool>) -> End {
        let mut shutting_down = false;
        let mut timed_out = false;
        self.session.greet();
        loop {
            match self.session.next_action() {
                Action::NeedInput => {
                    if let Err(e) = self.flush().await {
                        return End::WriteError(e);
                    }
                    let limit = if self.session.in_content() {
                        self.inbound.data_timeout
                    } else {
                        self.inbound.command_timeout
                    };
                    self.session.release_idle_buffers();
                    let wake = tokio::select! {
                        read = tokio::time::timeout(limit, self.read()) => {
                            read.map_or(Wake::TimedOut, Wake::Read)
                        }
                        _ = shutdown.wait_for(|stop| *stop), if !shutting_down => Wake::Shutdown,
                    };
                    match wake {
                        Wake::Read(Ok(0)) => return End::ClientClosed,
                        Wake::Read(Err(e)) => return End::of_read_error(e),
                        Wake::Read(Ok(_)) => {}
                        Wake::TimedOut => {
                            timed_out = true;
                            self.session.timeout();
                        }
                        Wake::Shutdown => {
                            shutting_down = true;
                            self.session.shutdown();
                        }
                    }
                }
                Action::Hello(_) => self.session.accept(),
                // The work of a command runs in its own boxed future: inline, the largest
                // (checks, commit, handshake) would be part of every idle session's task.
                Action::Mail(mail) => Box::pin(self.mail(&mail)).await,
                Action::Rcpt(rcpt) => Box::pin(self.rcpt(rcpt)).await,
                Action::DataStart => self.data_start(),
                Action::Data => {
                    self.session.take_content(&mut self.content);
                    Box::pin(self.receive_content()).await;
                }
                Action::DataEnd => {
                    let reply = Box::pin(self.commit()).await;
                    self.session.finish(reply);
                }
                Action::DataAbort => {
                    self.incoming = None;
                    self.content.clear();
                }
                Action::StartTls => {
                    if let Err(e) = self.flush().await {
                        return End::WriteError(e);
                    }
                    let handshake = Box::pin(self.connection.start_tls(&self.inbound.tls));
                    match tokio::time::timeout(self.inbound.command_timeout, handshake).await {
                        Ok(Ok(())) => {
                            self.tls = self.connection.tls_description();
                            self.session.tls_established();
                        }
                        Ok(Err(e)) => return End::TlsFailed(e.to_string()),
                        Err(_) => return End::TlsFailed("timed out".into()),
                    }
                }
                Action::Auth(credentials) => Box::pin(self.auth(credentials)).await,
                Action::Close => {
                    let _ = self.flush().await;
                    return if self.session.said_quit() {
                        End::Quit
                    } else if timed_out {
                        End::Timeout
                    } else if shutting_down {
                        End::Shutdown
                    } else {
                        End::Closed
                    };
                }
            }
        }
    }

    /// Writes pending replies. A client that stops reading is dropped after the command
    /// timeout, like one that stops writing: otherwise it could hold a session forever.
    /// Reads what the client sent straight into the session. The buffer exists only inside
    /// each poll, never while the connection waits: an idle connection holds no buffer, so
    /// ten thousand of them cost little.
    async fn read(&mut self) -> std::io::Result<usize> {
        let (stream, session) = (&mut self.connection, &mut self.session);
        std::future::poll_fn(|cx| {
            let mut buffer = [0u8; READ_BUFFER];
            let mut read = ReadBuf::new(&mut buffer);
            match Pin::new(&mut *stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    session.feed(filled);
                    Poll::Ready(Ok(filled.len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.session.output().is_empty() {
            let (after, delay) = self.inbound.tarpit;
            if let Some(wait) = policy::tarpit(&self.client, self.session.errors(), after, delay) {
                tokio::time::sleep(wait).await;
            }
            let write = self.connection.write_all(self.session.output());
            tokio::time::timeout(self.inbound.command_timeout, write)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            self.session.clear_output();
        }
        Ok(())
    }

    /// What the rules of `policy` know about the client now.
    fn party(&self) -> Party<'_> {
        Party {
            client: &self.client,
            user: self.session.authenticated(),
            submission_listener: self.endpoint.submission,
            trusted: self
                .client
                .ip()
                .is_some_and(|ip| self.inbound.is_trusted(ip)),
        }
    }

    /// MAIL: mail from another server gets its SPF checked; a user may only use its own
    /// sender addresses (RFC 6409 §6.1) and only as much as its sending quota allows.
    async fn mail(&mut self, mail: &MailFrom) {
        self.spf = None;
        self.ticket = None;
        if let Some(stage) = self.filtered() {
            let sender = match &mail.from {
                ReversePath::Mailbox(sender) => Some(sender),
                ReversePath::Null => None,
            };
            if stage.blocks(&self.inbound.directory.current(), self.client.ip(), sender) {
                info!(client = %self.client, from = %mail.from, "sender blocked");
                self.session.reject(table::sender_blocked());
                return;
            }
        }
        if !self.party().is_user() {
            if let Some(client) = self.checked_client() {
                let sender = match &mail.from {
                    ReversePath::Null => String::new(),
                    ReversePath::Mailbox(sender) => sender.to_string(),
                };
                match self.inbound.verifier.spf(&client, &sender).await {
                    Ok(checks) => self.spf = Some(checks),
                    Err(reply) => {
                        info!(client = %self.client, from = %mail.from, "SPF temporary error, deferred");
                        self.session.reject(reply);
                        return;
                    }
                }
            }
            self.accept_mail().await;
            return;
        }
        let directory = self.inbound.directory.current();
        let party = self.party();
        let user = party.user.unwrap_or("");
        if !party.owns_sender(&directory, &mail.from) {
            info!(client = %self.client, user, from = %mail.from, "sender not owned");
            self.session.reject(table::sender_not_owned());
        } else if let Some((key, limits)) = party.counted(&directory, self.inbound.local_sending)
            && !self.inbound.sending.may_send(&key, &limits, unix_now())
        {
            info!(client = %self.client, user = key, "sending quota reached");
            self.session.reject(table::message_quota_exceeded());
        } else {
            self.accept_mail().await;
        }
    }

    /// Accepts MAIL once the transaction holds an inflow ticket, which slows the client
    /// while delivery is behind (see `queue::flow`).
    async fn accept_mail(&mut self) {
        self.ticket = Some(self.inbound.flow.admit().await);
        self.session.accept();
    }

    /// AUTH: the shared login check; failures are answered late and counted against the
    /// client's address there.
    async fn auth(&mut self, credentials: Credentials) {
        match self
            .inbound
            .logins
            .check(Protocol::Smtp, self.client.ip(), &credentials)
            .await
        {
            Checked::Accepted(account) => {
                info!(client = %self.client, user = %account.name, "authenticated");
                self.session.authenticated_as(account.name);
            }
            Checked::Blocked | Checked::Rejected { blocked: true } => {
                self.session.reject(table::blocked_for_auth_failures());
            }
            Checked::Rejected { blocked: false } => self.session.reject(table::auth_failed()),
        }
    }

    /// RCPT: resolve through the directory; unknown users and relaying are refused here,
    /// so we never accept mail we would have to bounce.
    async fn rcpt(&mut self, rcpt: RcptTo) {
        let directory = self.inbound.directory.current();
        if let Some((key, limits)) = self.party().counted(&directory, self.inbound.local_sending) {
            let pending = self
                .session
                .transaction()
                .map_or(0, |t| t.recipients.len() as u64);
            if !self
                .inbound
                .sending
                .may_add_recipient(&key, &limits, pending, unix_now())
            {
                info!(user = key, "recipient quota reached");
                self.session.reject(table::recipient_quota_exceeded());
                return;
            }
        }
        match directory.resolve(&rcpt.to) {
            Resolution::Deliver(targets) => {
                if self.blocked_by_recipient(&directory, &targets) {
                    info!(client = %self.client, to = %rcpt.to, "sender blocked by recipient");
                    self.session.reject(table::sender_blocked());
                } else if all_mailboxes_full(&directory, &targets).await {
                    self.session.reject(table::mailbox_full());
                } else {
                    self.session.accept_rcpt(targets);
                }
            }
            Resolution::UnknownUser => self.session.reject(table::unknown_user()),
            Resolution::Remote => match (&rcpt.to, self.party().may_relay()) {
                (ForwardPath::Mailbox(address), true) => self.session.accept_rcpt(vec![Target {
                    address: address.clone(),
                    route: Route::Remote,
                }]),
                _ => self.session.reject(table::relay_denied()),
            },
        }
    }

    /// The checking stage, when it looks at this session's mail.
    fn filtered(&self) -> Option<Arc<Stage>> {
        let stage = self.inbound.checks.as_ref()?;
        self.party()
            .is_filtered(self.endpoint.checks, stage.checks_submissions())
            .then(|| Arc::clone(stage))
    }

    /// True when a local account among `targets` blocks the transaction's sender.
    fn blocked_by_recipient(&self, directory: &Directory, targets: &[Target]) -> bool {
        let Some(ReversePath::Mailbox(sender)) = self.session.transaction().map(|t| &t.mail.from)
        else {
            return false;
        };
        self.filtered().is_some()
            && targets.iter().any(|target| match &target.route {
                Route::Local { account } => {
                    checks::lists::account_blocks(directory, account, sender)
                }
                Route::Remote => false,
            })
    }

    /// The client whose mail is checked (SPF, DKIM, DMARC, ARC), with its HELO name.
    fn checked_client(&self) -> Option<verify::Client<'_>> {
        let ip = self.client.ip()?;
        if !self
            .party()
            .is_checked(self.inbound.verifier.applies_to(ip))
        {
            return None;
        }
        let helo = self.session.hello()?;
        Some(verify::Client {
            ip,
            helo: &helo.name,
        })
    }

    /// The domain of the first recipient address that an alias forwards to another server,
    /// when such mail from another server is ARC-sealed.
    fn forwarding_domain(&self) -> Option<String> {
        if !self.party().seals_forwards(self.inbound.arc_seal) {
            return None;
        }
        let transaction = self.session.transaction()?;
        transaction.recipients.iter().find_map(|accepted| {
            let forwarded = accepted.resolved.iter().any(|t| t.route == Route::Remote);
            match (&accepted.rcpt.to, forwarded) {
                (ForwardPath::Mailbox(address), true) => Some(address.domain_key()),
                _ => None,
            }
        })
    }

    fn data_start(&mut self) {
        let store = &self.inbound.store;
        let id = store.new_id();
        match store.writer(id) {
            Ok(writer) => {
                self.incoming = Some(Incoming {
                    id,
                    writer,
                    arrival: unix_now(),
                    spilled: false,
                    header: None,
                    scanned: 0,
                });
                self.content.clear();
                self.session.accept();
            }
            Err(e) => {
                warn!(error = %e, "cannot open spool file");
                self.session.reject(table::local_error());
            }
        }
    }

    /// Content as it arrives: held until the header section is complete and has been
    /// read, then handed to the spool file whenever enough is buffered, so a message of
    /// any size costs a session no more than `FLUSH_AT` (after a header section of at most
    /// `MAX_HEADER_SECTION`). Nothing more is kept of a message that will be refused.
    async fn receive_content(&mut self) {
        let Some(incoming) = &mut self.incoming else {
            self.content.clear();
            return;
        };
        let refused = if let Some(header) = &incoming.header {
            header.refusal.is_some()
        } else {
            let found = section_end_from(&self.content, incoming.scanned).is_some();
            incoming.scanned = self.content.len();
            let header = if found {
                self.read_header()
            } else if self.content.len() > MAX_HEADER_SECTION {
                HeaderFindings {
                    missing: Missing::default(),
                    refusal: Some(table::header_section_too_long()),
                    signed: false,
                    signatures: false,
                    len: 0,
                }
            } else {
                return;
            };
            let refused = header.refusal.is_some();
            if let Some(incoming) = &mut self.incoming {
                incoming.header = Some(header);
            }
            refused
        };
        if refused {
            self.content.clear();
        } else if self.content.len() >= FLUSH_AT {
            self.write_content().await;
        }
    }

    /// Reads the complete header section at the start of the buffered content: removes
    /// `Authentication-Results` fields that claim to be ours (RFC 8601 §5: only we may say
    /// what we found), notes what a submission lacks, and refuses a submission whose
    /// author is not its sender's to claim.
    fn read_header(&mut self) -> HeaderFindings {
        let removed = strip_own_results(&mut self.content, self.inbound.verifier.authserv_id());
        if removed > 0 {
            info!(client = %self.client, removed, "forged Authentication-Results removed");
        }
        if self.filtered().is_some() {
            let removed = checks::strip_foreign_verdicts(&mut self.content);
            if removed > 0 {
                info!(client = %self.client, removed, "verdict headers from outside removed");
            }
        }
        let section = header_section(&self.content);
        let party = self.party();
        let submission = party.is_submission();
        let missing = if submission {
            Missing::in_section(section)
        } else {
            Missing::default()
        };
        let directory = self.inbound.directory.current();
        let refusal = party
            .foreign_author(&directory, authors(section))
            .map(|author| {
                info!(
                    client = %self.client,
                    user = self.session.authenticated().unwrap_or(""),
                    author,
                    "author not owned"
                );
                table::author_not_owned()
            });
        let signed = party.is_signed(self.inbound.signer.is_some())
            && self
                .inbound
                .signer
                .as_ref()
                .is_some_and(|signer| signer.signs_for(section));
        let signatures = [
            &b"dkim-signature"[..],
            b"arc-seal",
            b"arc-message-signature",
        ]
        .iter()
        .any(|name| has_field(section, name));
        HeaderFindings {
            missing,
            refusal,
            signed,
            signatures,
            len: section.len() as u64,
        }
    }

    /// Hands buffered content to the spool file on a blocking thread.
    async fn write_content(&mut self) {
        let Some(incoming) = self.incoming.take() else {
            self.content.clear();
            return;
        };
        let mut content = std::mem::take(&mut self.content);
        let write = on_writer(incoming, move |writer| {
            let written = writer.write_all(&content);
            content.clear();
            (content, written)
        });
        let Some((mut incoming, (content, written))) = write.await else {
            return;
        };
        self.content = content;
        match written {
            Ok(()) => {
                incoming.spilled = true;
                self.incoming = Some(incoming);
            }
            // Dropping the writer discards the file; the end of content gets 451.
            Err(e) => warn!(queue_id = %incoming.id, error = %e, "spool write failed"),
        }
    }

    /// The end of content: store envelope and content durably, then answer.
    async fn commit(&mut self) -> Reply {
        let Some(mut incoming) = self.incoming.take() else {
            return table::local_error();
        };
        let header = match incoming.header.take() {
            Some(header) => header,
            None => self.read_header(),
        };
        if let Some(reply) = header.refusal {
            self.content.clear();
            return reply;
        }
        let size = self.session.transaction().map_or(0, |t| t.content_size());
        let mut content = std::mem::take(&mut self.content);
        // A spilled message that must be signed, or whose signatures must be verified or
        // sealed, is read back whole, within the budget all sessions share; for DMARC of an
        // unsigned one its header section is enough.
        let checked = self.spf.is_some();
        let filtered = self.filtered();
        let whole_needed = header.signed
            || filtered.is_some()
            || !self.endpoint.milters.is_empty()
            || (checked && (header.signatures || self.forwarding_domain().is_some()));
        let mut header_only = None;
        let whole_budget = if incoming.spilled && whole_needed {
            let held = self.inbound.whole_messages.hold(size).await;
            let read = on_writer(incoming, |writer| writer.read_back(u64::MAX)).await;
            let Some((back, Ok(mut whole))) = read else {
                return table::local_error();
            };
            incoming = back;
            whole.extend_from_slice(&content);
            content = whole;
            Some(held)
        } else {
            if incoming.spilled && checked {
                let len = header.len;
                let read = on_writer(incoming, move |writer| writer.read_back(len)).await;
                let Some((back, Ok(section))) = read else {
                    return table::local_error();
                };
                incoming = back;
                header_only = Some(section);
            }
            None
        };
        let spf = self.spf.take();
        let checked_content = header_only.as_deref().unwrap_or(&content);
        let verdict = match self.check(spf.as_ref(), checked_content).await {
            Ok(verdict) => verdict,
            Err(reply) => return reply,
        };
        let mut rewritten = false;
        let mut milter_changes = None;
        if !self.endpoint.milters.is_empty() {
            let (back, changes) = self.ask_milters(incoming.id.as_str(), content).await;
            content = back;
            if let Some(reply) = changes.refusal {
                return reply;
            }
            if changes.discard {
                info!(queue_id = %incoming.id, client = %self.client, "discarded by milter");
                return table::queued(incoming.id.as_str());
            }
            rewritten = changes.rewrote;
            milter_changes = Some(changes);
        }
        let judged = match filtered {
            Some(stage) => {
                let mut facts = self.facts(verdict.as_ref().map(|v| &v.results), &content);
                facts.milters = milter_changes.as_ref();
                let (back, judged) = stage.run(&facts, content).await;
                content = back;
                if let checks::Action::Reject(reply) | checks::Action::Defer(reply) = &judged.action
                {
                    info!(
                        client = %self.client,
                        from = %facts.sender.map_or(String::new(), |s| s.to_string()),
                        checks = %judged.summary(),
                        reply = %reply,
                        "refused by checks"
                    );
                    return reply.clone();
                }
                Some(judged)
            }
            None => None,
        };
        let Some(mut envelope) = self.envelope(&incoming, header.missing) else {
            return table::local_error();
        };
        if let Some(verdict) = &verdict {
            envelope.prepend.push_str(&verdict.headers);
            envelope.quarantine = verdict.disposition == Disposition::Quarantine;
        }
        if let Some(judged) = &judged {
            envelope.prepend.push_str(&judged.headers());
            envelope.quarantine |= judged.action == checks::Action::Junk;
        }
        if let Some(changes) = &milter_changes {
            self.apply_milter_changes(&mut envelope, changes);
        }
        if let Some(signer) = self.inbound.signer.as_ref().filter(|_| header.signed) {
            let signatures = signer.sign(envelope.prepend.as_bytes(), &mut content);
            envelope.prepend.insert_str(0, &signatures);
        }
        let whole = !incoming.spilled || whole_budget.is_some();
        let Some((back, decided)) = self
            .sieve_at_data(incoming, whole, &content, &envelope)
            .await
        else {
            return table::local_error();
        };
        incoming = back;
        let rejected = decided.rejected;
        if !rejected.is_empty() {
            info!(
                queue_id = %incoming.id,
                client = %self.client,
                from = %envelope.sender,
                rejected = rejected.len(),
                recipients = envelope.recipients.len(),
                "Sieve reject at DATA"
            );
            if rejected.len() == envelope.recipients.len() {
                return sieve_reject::reply(&rejected);
            }
            sieve_reject::record(&mut envelope, &rejected);
        }
        if let Some(domain) = &decided.redirected_from {
            let sealed = self
                .seal_redirect(incoming, whole, &content, spf.as_ref(), domain)
                .await;
            let Some((back, set)) = sealed else {
                return table::local_error();
            };
            incoming = back;
            envelope.prepend.insert_str(0, &set);
        }
        if whole_budget.is_some() {
            // Only what the file lacks is written; signing may have cut the end off, and
            // a filter that changed the content has it written again whole.
            let written = incoming.writer.written();
            let kept = if rewritten {
                0
            } else {
                written.min(content.len() as u64)
            };
            if kept < written {
                let cut = on_writer(incoming, move |writer| writer.truncate(kept)).await;
                let Some((back, Ok(()))) = cut else {
                    return table::local_error();
                };
                incoming = back;
            }
            content = content.split_off(kept as usize);
        }
        drop(whole_budget);
        let id = incoming.id;
        // A message held whole in memory goes to delivery with its content, which spares
        // the delivery a read of the spool.
        let whole = (!incoming.spilled).then(|| Arc::<[u8]>::from(content.as_slice()));
        // No blocking thread: the group committer finishes the file and syncs it together
        // with everything else committed at this moment; the 250 waits for that.
        let durable = incoming.writer.commit(content, &envelope).durable().await;
        match durable {
            Ok(()) => {
                self.accepted += 1;
                info!(
                    queue_id = %id,
                    from = %envelope.sender,
                    recipients = envelope.recipients.len(),
                    size,
                    client = %self.client,
                    user = self.session.authenticated().unwrap_or(""),
                    auth = verdict.as_ref().map_or("-", |v| v.summary.as_str()),
                    checks = %judged.as_ref().map_or_else(|| "-".to_string(), checks::Verdict::summary),
                    quarantine = envelope.quarantine,
                    "accepted"
                );
                self.count_sent(&envelope);
                self.record_correspondents(&envelope);
                self.inbound
                    .queue
                    .submit(envelope, whole, self.ticket.take());
                table::queued(id.as_str())
            }
            Err(e) => {
                warn!(queue_id = %id, error = %e, "spool commit failed");
                table::local_error()
            }
        }
    }

    /// What the local recipients' Sieve scripts decide at the end of DATA
    /// (`sieve_reject`), shown the message's start as delivery will read it: `content`
    /// when it is `whole`, else the spool file's start followed by `content`. `None` when
    /// the spool file cannot be read back (the writer is then gone).
    async fn sieve_at_data(
        &mut self,
        incoming: Incoming,
        whole: bool,
        content: &[u8],
        envelope: &Envelope,
    ) -> Option<(Incoming, Decided)> {
        let Some(at_data) = &self.inbound.sieve_at_data else {
            return Some((incoming, Decided::default()));
        };
        if !envelope
            .recipients
            .iter()
            .any(|r| matches!(r.route, Route::Local { .. }))
        {
            return Some((incoming, Decided::default()));
        }
        let (incoming, head) = if whole {
            let head = sieve_reject::head(&envelope.prepend, &[content]);
            (incoming, head)
        } else {
            let read = on_writer(incoming, |writer| writer.read_back(HEAD_LIMIT)).await;
            let (back, Ok(start)) = read? else {
                return None;
            };
            (
                back,
                sieve_reject::head(&envelope.prepend, &[&start, content]),
            )
        };
        let directory = self.inbound.directory.current();
        let decided = at_data.decide(&directory, envelope, head).await;
        Some((incoming, decided))
    }

    /// The ARC set (RFC 8617) for a message that a local recipient's Sieve script
    /// redirects to another server, sealed in that recipient's `domain`: what `check`
    /// gives mail an alias forwards, on the same conditions (sealing on, checked mail from
    /// another server), unless `check` sealed the message already; empty otherwise. The
    /// set goes on top of the header fields every copy starts with, so the redirect's copy
    /// made at delivery carries it, as an alias's forward does. The message is read back
    /// whole for it when only its end is in memory (`whole` false), within the budget all
    /// sessions share. `None` when the spool file cannot be read back (the writer is then
    /// gone).
    ///
    /// Delivery runs the script again and may decide otherwise (a `date` test, a script
    /// changed in between): its redirect then goes without a set, as before; a redirect
    /// is never held back for want of one.
    async fn seal_redirect(
        &mut self,
        incoming: Incoming,
        whole: bool,
        content: &[u8],
        spf: Option<&SpfChecks>,
        domain: &str,
    ) -> Option<(Incoming, String)> {
        let sealing = self.party().seals_forwards(self.inbound.arc_seal)
            && self.forwarding_domain().is_none();
        let signer = self.inbound.signer.as_deref().filter(|_| sealing);
        let (Some(signer), Some(spf), Some(client)) = (signer, spf, self.checked_client()) else {
            return Some((incoming, String::new()));
        };
        let verifier = &self.inbound.verifier;
        if whole {
            let set = verifier.seal(&client, spf, content, signer, domain).await;
            return Some((incoming, set.unwrap_or_default()));
        }
        let size = self.session.transaction().map_or(0, |t| t.content_size());
        let _held = self.inbound.whole_messages.hold(size).await;
        let read = on_writer(incoming, |writer| writer.read_back(u64::MAX)).await;
        let (incoming, Ok(mut message)) = read? else {
            return None;
        };
        message.extend_from_slice(content);
        let set = verifier.seal(&client, spf, &message, signer, domain).await;
        Some((incoming, set.unwrap_or_default()))
    }

    /// Checks DKIM, ARC and DMARC of mail from another server (its SPF was checked at MAIL)
    /// and applies the policy: the verdict to record, or the refusal. Unchecked mail has no
    /// verdict.
    async fn check(
        &mut self,
        spf: Option<&SpfChecks>,
        content: &[u8],
    ) -> Result<Option<Verdict>, Reply> {
        let Some(spf) = spf else {
            return Ok(None);
        };
        let Some(client) = self.checked_client() else {
            return Ok(None);
        };
        let forwarding = self.forwarding_domain();
        let seal = self.inbound.signer.as_deref().zip(forwarding.as_deref());
        let verdict = self
            .inbound
            .verifier
            .message(&client, spf, content, seal)
            .await;
        match &verdict.disposition {
            Disposition::Refuse(reply) => {
                info!(
                    client = %self.client,
                    from = %spf.sender,
                    auth = %verdict.summary,
                    reply = %reply,
                    "refused by authentication policy"
                );
                Err(reply.clone())
            }
            Disposition::Accept | Disposition::Quarantine => Ok(Some(verdict)),
        }
    }

    /// Shows the message to the listener's filters (see `checks::milters`).
    fn ask_milters(
        &self,
        queue_id: &str,
        content: Vec<u8>,
    ) -> impl Future<Output = (Vec<u8>, milters::Changes)> + Send + use<> {
        let transaction = self.session.transaction();
        let recipients = transaction.map_or(&[][..], |t| t.recipients.as_slice());
        let asked = milters::Transaction {
            client: match &self.client {
                Client::Network(addr) => Some(*addr),
                Client::Local(_) => None,
            },
            helo: self
                .session
                .hello()
                .map_or(String::new(), |h| h.name.clone()),
            sender: transaction.map_or(String::new(), |t| match &t.mail.from {
                ReversePath::Mailbox(sender) => sender.to_string(),
                ReversePath::Null => String::new(),
            }),
            recipients: recipients.iter().map(|r| r.rcpt.to.to_string()).collect(),
            queue_id: queue_id.to_string(),
            user: self.session.authenticated().map(str::to_string),
            tls: self.tls.clone(),
            hostname: self.endpoint.session_config.hostname.clone(),
        };
        let endpoint = Arc::clone(&self.endpoint);
        async move { endpoint.milters.run(&asked, content).await }
    }

    /// A filter's changes to the envelope: the sender, recipients removed and added
    /// (resolved like RCPT; an address we cannot deliver to is left out), Junk.
    fn apply_milter_changes(&self, envelope: &mut Envelope, changes: &milters::Changes) {
        if let Some(sender) = &changes.sender {
            match sender.as_str() {
                "" => envelope.sender = ReversePath::Null,
                text => match posthorn_proto::address::parse_mailbox(text) {
                    Ok(mailbox) => envelope.sender = ReversePath::Mailbox(mailbox),
                    Err(e) => {
                        warn!(queue_id = %envelope.id, sender, error = %e, "milter's new sender ignored")
                    }
                },
            }
        }
        for removed in &changes.removed {
            envelope.recipients.retain(|r| {
                !r.rcpt.eq_ignore_ascii_case(removed)
                    && !r.address.to_string().eq_ignore_ascii_case(removed)
            });
        }
        let directory = self.inbound.directory.current();
        for added in &changes.added {
            let Ok(mailbox) = posthorn_proto::address::parse_mailbox(added) else {
                warn!(queue_id = %envelope.id, recipient = added, "milter's new recipient ignored");
                continue;
            };
            let targets = match directory.resolve(&ForwardPath::Mailbox(mailbox.clone())) {
                Resolution::Deliver(targets) => targets,
                Resolution::Remote => vec![Target {
                    address: mailbox,
                    route: Route::Remote,
                }],
                Resolution::UnknownUser => {
                    warn!(queue_id = %envelope.id, recipient = added, "milter's new recipient is unknown");
                    continue;
                }
            };
            for target in targets {
                if !envelope
                    .recipients
                    .iter()
                    .any(|r| r.address == target.address)
                {
                    envelope
                        .recipients
                        .push(Recipient::new(target.address, target.route));
                }
            }
        }
        if let Some(reason) = &changes.quarantine {
            info!(queue_id = %envelope.id, reason, "quarantined by milter");
            envelope.quarantine = true;
        }
    }

    /// What the checking stage knows of the message besides `content`.
    fn facts<'a>(
        &'a self,
        auth: Option<&'a verify::AuthResults>,
        content: &[u8],
    ) -> checks::Facts<'a> {
        let transaction = self.session.transaction();
        let recipients = transaction.map_or(&[][..], |t| t.recipients.as_slice());
        let accounts = recipients
            .iter()
            .flat_map(|r| &r.resolved)
            .filter_map(|target| match &target.route {
                Route::Local { account } => Some(account.clone()),
                Route::Remote => None,
            })
            .collect();
        checks::Facts {
            ip: self.client.ip(),
            helo: self.session.hello().map_or("", |h| h.name.as_str()),
            sender: transaction.and_then(|t| match &t.mail.from {
                ReversePath::Mailbox(sender) => Some(sender),
                ReversePath::Null => None,
            }),
            authors: checks::authors_of(header_section(content)),
            recipients: recipients.iter().map(|r| r.rcpt.to.to_string()).collect(),
            accounts,
            auth,
            smtputf8: transaction.is_some_and(|t| t.mail.smtputf8),
            milters: None,
            directory: self.inbound.directory.current(),
        }
    }

    /// Counts an accepted message against its user's sending quota.
    fn count_sent(&self, envelope: &Envelope) {
        let directory = self.inbound.directory.current();
        let Some((user, _)) = self.party().counted(&directory, self.inbound.local_sending) else {
            return;
        };
        let rcpts = self
            .session
            .transaction()
            .map_or(envelope.recipients.len(), |t| t.recipients.len()) as u64;
        let inbound = Arc::clone(&self.inbound);
        tokio::task::spawn_blocking(move || inbound.sending.record(&user, rcpts, unix_now()));
    }

    /// Records whom a logged-in user wrote to: their mail coming back is vouched for
    /// (mox's rule; see `checks::learned`).
    fn record_correspondents(&self, envelope: &Envelope) {
        let (Some(learning), Some(user)) = (&self.inbound.learning, self.session.authenticated())
        else {
            return;
        };
        let (learning, user) = (Arc::clone(learning), user.to_string());
        let written: Vec<String> = envelope.recipients.iter().map(|r| r.rcpt.clone()).collect();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = learning.wrote(&user, written) {
                warn!(user, error = %e, "cannot record the recipients as correspondents");
            }
        });
    }

    /// The envelope of the message being committed (see `envelope`).
    fn envelope(&self, incoming: &Incoming, missing: Missing) -> Option<Envelope> {
        let transaction = self.session.transaction()?;
        Some(envelope::build(&Arrival {
            id: incoming.id,
            time: incoming.arrival,
            mail: &transaction.mail,
            recipients: &transaction.recipients,
            hello: self.session.hello()?,
            client: &self.client,
            tls: self.tls.as_deref(),
            user: self.session.authenticated(),
            hostname: &self.endpoint.session_config.hostname,
            missing,
        }))
    }
}

/// Runs `work` on the message's spool writer on a blocking thread; `None` when the thread
/// died, which leaves the writer dropped and its file discarded.
async fn on_writer<T: Send + 'static>(
    mut incoming: Incoming,
    work: impl FnOnce(&mut dyn MessageWriter) -> T + Send + 'static,
) -> Option<(Incoming, T)> {
    let done = tokio::task::spawn_blocking(move || {
        let result = work(incoming.writer.as_mut());
        (incoming, result)
    })
    .await;
    match done {
        Ok(done) => Some(done),
        Err(e) => {
            warn!(error = %e, "spool task failed");
            None
        }
    }
}

/// The addresses of the From and Sender fields of a header section (RFC 5322 §3.6.2), as
/// written; an entry without an address is an empty string, which owns nothing.
fn authors(section: &[u8]) -> Vec<String> {
    let Some(parsed) = mail_parser::MessageParser::new().parse_headers(section) else {
        return Vec::new();
    };
    [parsed.from(), parsed.sender()]
        .into_iter()
        .flatten()
        .flat_map(|address| address.iter())
        .map(|addr| addr.address().unwrap_or_default().to_string())
        .collect()
}

/// True when every target is a local mailbox already at or over its quota (by the figure
/// its `maildirsize` caches).
async fn all_mailboxes_full(directory: &Directory, targets: &[Target]) -> bool {
    let mut checks = Vec::new();
    for target in targets {
        let Route::Local { account } = &target.route else {
            return false;
        };
        let Some(quota) = directory.account(account).and_then(|a| a.quota) else {
            return false;
        };
        checks.push((directory.maildir(account), quota));
    }
    let full = tokio::task::spawn_blocking(move || {
        checks.iter().all(|(path, quota)| {
            Quota::new(*quota)
                .usage(path)
                .is_ok_and(|used| used >= *quota)
        })
    })
    .await;
    full.unwrap_or(false)
}
