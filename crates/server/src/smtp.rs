//! The tokio driver of an inbound SMTP session: it moves bytes between the socket and the
//! protocol core, answers the core's questions (who exists, is the mailbox full, did the
//! spool take the message) and streams message content into the spool.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use posthorn_proto::reply::table;
use posthorn_proto::{Action, ForwardPath, RcptTo, Reply, Session, SessionConfig};
use posthorn_spool::{
    ClientInfo, DeliveryState, Envelope, MessageWriter, QueueId, QueueStore, Recipient, Route,
};
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::directory::{Directory, Resolution, Target, lookup_key};
use crate::maildir;
use crate::queue::QueueHandle;
use crate::received::{Trace, received_header};

/// Octets read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;
/// Content is handed to the spool file once this much is buffered.
const FLUSH_AT: usize = 256 * 1024;

/// What every inbound session shares.
pub struct Inbound {
    /// Protocol limits.
    pub session_config: SessionConfig,
    /// Wait for a command.
    pub command_timeout: Duration,
    /// Wait for message content.
    pub data_timeout: Duration,
    /// Who receives mail here.
    pub directory: Arc<Directory>,
    /// Where accepted mail goes.
    pub store: Arc<dyn QueueStore>,
    /// Tells the queue manager about new mail.
    pub queue: QueueHandle,
    /// Client networks allowed to relay.
    pub trusted_networks: Vec<ipnet::IpNet>,
}

/// The message being received.
struct Incoming {
    id: QueueId,
    writer: Box<dyn MessageWriter>,
    arrival: u64,
    /// Part of the content already went to the spool file: it is not all in memory.
    spilled: bool,
}

/// Runs one session on `stream` until the client leaves, the session ends, or shutdown.
pub async fn run<S>(
    inbound: Arc<Inbound>,
    stream: S,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session = Session::new(inbound.session_config.clone());
    let mut driver = Driver {
        inbound,
        stream,
        peer,
        session,
        incoming: None,
        content: Vec::new(),
        accepted: 0,
    };
    let started = Instant::now();
    let end = driver.drive(shutdown).await;
    info!(
        client = %peer.ip(),
        helo = driver.session.hello().map_or("", |h| h.name.as_str()),
        accepted = driver.accepted,
        duration_ms = started.elapsed().as_millis() as u64,
        end,
        "session"
    );
}

struct Driver<S> {
    inbound: Arc<Inbound>,
    stream: S,
    peer: SocketAddr,
    session: Session<Vec<Target>>,
    incoming: Option<Incoming>,
    content: Vec<u8>,
    accepted: u32,
}

/// What woke the driver while it waited for input.
enum Wake {
    Read(std::io::Result<usize>),
    TimedOut,
    Shutdown,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// The session loop; returns how it ended, for the log.
    async fn drive(&mut self, mut shutdown: watch::Receiver<bool>) -> &'static str {
        let mut shutting_down = false;
        self.session.greet();
        loop {
            match self.session.next_action() {
                Action::NeedInput => {
                    if self.flush().await.is_err() {
                        return "write error";
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
                        Wake::Read(Ok(0)) => return "client closed",
                        Wake::Read(Err(_)) => return "read error",
                        Wake::Read(Ok(_)) => {}
                        Wake::TimedOut => self.session.timeout(),
                        Wake::Shutdown => {
                            shutting_down = true;
                            self.session.shutdown();
                        }
                    }
                }
                Action::Hello(_) | Action::Mail(_) => self.session.accept(),
                Action::Rcpt(rcpt) => self.rcpt(rcpt).await,
                Action::DataStart => self.data_start(),
                Action::Data => {
                    self.session.take_content(&mut self.content);
                    if self.content.len() >= FLUSH_AT {
                        self.write_content().await;
                    }
                }
                Action::DataEnd => {
                    let reply = self.commit().await;
                    self.session.finish(reply);
                }
                Action::DataAbort => {
                    self.incoming = None;
                    self.content.clear();
                }
                Action::StartTls => return "starttls unsupported",
                Action::Close => {
                    let _ = self.flush().await;
                    return "closed";
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
        let (stream, session) = (&mut self.stream, &mut self.session);
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
            let write = self.stream.write_all(self.session.output());
            tokio::time::timeout(self.inbound.command_timeout, write)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            self.session.clear_output();
        }
        Ok(())
    }

    /// RCPT: resolve through the directory; unknown users and relaying are refused here,
    /// so we never accept mail we would have to bounce.
    async fn rcpt(&mut self, rcpt: RcptTo) {
        match self.inbound.directory.resolve(&rcpt.to) {
            Resolution::Deliver(targets) => {
                if all_mailboxes_full(&self.inbound.directory, &targets).await {
                    self.session.reject(table::mailbox_full());
                } else {
                    self.session.accept_rcpt(targets);
                }
            }
            Resolution::UnknownUser => self.session.reject(table::unknown_user()),
            Resolution::Remote => match (&rcpt.to, self.may_relay()) {
                (ForwardPath::Mailbox(address), true) => self.session.accept_rcpt(vec![Target {
                    address: address.clone(),
                    route: Route::Remote,
                }]),
                _ => self.session.reject(table::relay_denied()),
            },
        }
    }

    /// Relaying is for trusted networks; authenticated users join them with AUTH.
    fn may_relay(&self) -> bool {
        let ip = self.peer.ip().to_canonical();
        self.inbound
            .trusted_networks
            .iter()
            .any(|network| network.contains(&ip))
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

    /// Hands buffered content to the spool file on a blocking thread.
    async fn write_content(&mut self) {
        let Some(mut incoming) = self.incoming.take() else {
            self.content.clear();
            return;
        };
        let content = std::mem::take(&mut self.content);
        let result = tokio::task::spawn_blocking(move || {
            let written = incoming.writer.write_all(&content);
            (incoming, content, written)
        })
        .await;
        match result {
            Ok((mut incoming, mut content, Ok(()))) => {
                content.clear();
                self.content = content;
                incoming.spilled = true;
                self.incoming = Some(incoming);
            }
            Ok((incoming, _, Err(e))) => {
                // Dropping the writer discards the file; the end of content gets 451.
                warn!(queue_id = %incoming.id, error = %e, "spool write failed");
            }
            Err(e) => warn!(error = %e, "spool write task failed"),
        }
    }

    /// The end of content: store envelope and content durably, then answer.
    async fn commit(&mut self) -> Reply {
        let Some(incoming) = self.incoming.take() else {
            return table::local_error();
        };
        let Some(envelope) = self.envelope(&incoming) else {
            return table::local_error();
        };
        let content = std::mem::take(&mut self.content);
        let size = self.session.transaction().map_or(0, |t| t.content_size());
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
                    client = %self.peer.ip(),
                    "accepted"
                );
                self.inbound.queue.submit(envelope, whole);
                table::queued(id.as_str())
            }
            Err(e) => {
                warn!(queue_id = %id, error = %e, "spool commit failed");
                table::local_error()
            }
        }
    }

    /// The envelope of the transaction in progress: one recipient per distinct target.
    fn envelope(&self, incoming: &Incoming) -> Option<Envelope> {
        let transaction = self.session.transaction()?;
        let hello = self.session.hello()?;
        let mut recipients: Vec<Recipient> = Vec::new();
        for accepted in &transaction.recipients {
            for target in &accepted.resolved {
                let key = lookup_key(&target.address);
                if recipients.iter().any(|r| lookup_key(&r.address) == key) {
                    continue;
                }
                recipients.push(Recipient {
                    address: target.address.clone(),
                    route: target.route.clone(),
                    rcpt: accepted.rcpt.to.to_string(),
                    notify: accepted.rcpt.notify,
                    orcpt: accepted.rcpt.orcpt.clone(),
                    state: DeliveryState::default(),
                });
            }
        }
        let single_recipient = match transaction.recipients.as_slice() {
            [only] => Some(only.rcpt.to.to_string()),
            _ => None,
        };
        let mail = &transaction.mail;
        let prepend = received_header(&Trace {
            helo: &hello.name,
            ip: Some(self.peer.ip()),
            hostname: &self.inbound.session_config.hostname,
            esmtp: hello.esmtp,
            smtputf8: mail.smtputf8,
            queue_id: incoming.id.as_str(),
            single_recipient,
            time: incoming.arrival,
        });
        Some(Envelope {
            id: incoming.id,
            sender: mail.from.clone(),
            recipients,
            body: mail.body.unwrap_or_default(),
            smtputf8: mail.smtputf8,
            ret: mail.ret,
            envid: mail.envid.clone(),
            arrival: incoming.arrival,
            client: ClientInfo {
                ip: Some(self.peer.ip()),
                helo: Some(hello.name.clone()),
            },
            prepend,
            hold: false,
            delay_notified: false,
            postmaster_notice: false,
        })
    }
}

/// True when every target is a local mailbox already at or over its quota.
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
        checks
            .iter()
            .all(|(path, quota)| maildir::usage(path).is_ok_and(|used| used >= *quota))
    })
    .await;
    full.unwrap_or(false)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
