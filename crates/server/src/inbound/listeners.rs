//! The listening sockets and who gets past them: every TCP listener (SMTP, POP3, IMAP,
//! with or without implicit TLS) and the local socket of `posthorn sendmail`. A client
//! over a limit is refused here, in its protocol's words, before it costs a session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use posthorn_mailbox::access::{Accounts, Learner};
use posthorn_mailbox::managesieve::SieveCheck;
use posthorn_proto::reply::table;
use posthorn_proto::{AuthPolicy, Reply, SessionConfig};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::accounts::login::{MailboxLogins, Protocol};
use crate::config::{Config, Listener, Role};
use crate::inbound::checks::milters::Milters;
use crate::inbound::limits::client_key::ClientKey;
use crate::inbound::limits::limiter::ConnectionLimiter;
use crate::inbound::limits::throttle::ConnectionRate;
use crate::inbound::policy;
use crate::inbound::sendmail;
use crate::inbound::session::{self, Client, Endpoint, Inbound, LocalUser};
use crate::stream::{Connection, ServerConnection, Upgradable};
use posthorn_mailbox::budget::MemoryBudget;

/// POP3's autologout timer (RFC 1939 §3: at least 10 minutes).
const POP3_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// IMAP's autologout timer (RFC 9051 §5.4: at least 30 minutes).
const IMAP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Longest wait for a client's TLS handshake on an implicit-TLS listener.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a listener serves, and how.
pub(crate) fn service(
    config: &Config,
    listener: &Listener,
    whole_messages: &MemoryBudget,
    learner: Option<Arc<dyn Learner>>,
) -> Service {
    let settings = |idle_timeout| {
        Arc::new(posthorn_mailbox::access::Settings {
            hostname: config.server.hostname.get_ref().clone(),
            starttls: !listener.role.implicit_tls(),
            plaintext_auth: listener.allow_plaintext_auth,
            idle_timeout,
            max_message_size: usize::try_from(config.limits.max_message_size.0)
                .unwrap_or(usize::MAX),
            whole_messages: whole_messages.clone(),
            learner: learner.clone(),
        })
    };
    match listener.role {
        Role::Pop3 | Role::Pop3s => Service::Pop3(settings(POP3_TIMEOUT)),
        Role::Imap | Role::Imaps => Service::Imap(settings(IMAP_TIMEOUT)),
        Role::Sieve => Service::ManageSieve(settings(IMAP_TIMEOUT)),
        Role::Mx | Role::Submission | Role::Submissions => {
            Service::Smtp(Arc::new(endpoint(config, listener)))
        }
    }
}

/// How SMTP sessions on `listener` run: STARTTLS everywhere but on implicit TLS, AUTH as
/// the role and the listener's keys say, required on submission.
fn endpoint(config: &Config, listener: &Listener) -> Endpoint {
    let submission = listener.role != Role::Mx;
    let auth = listener.offers_auth();
    Endpoint {
        session_config: SessionConfig {
            starttls: listener.role != Role::Submissions,
            auth: AuthPolicy {
                enabled: auth,
                without_tls: listener.allow_plaintext_auth,
                required: submission && auth,
            },
            ..config.session_config()
        },
        submission,
        checks: listener
            .checks
            .unwrap_or(listener.role == Role::Mx || config.checks.submissions),
        milters: Milters::new(config, &listener.milters),
    }
}

/// Connections the kernel may hold for a listener before we accept them. Tokio's default
/// (1024, cut to 128 by some kernels) made 500 clients opening connections at once lose
/// SYNs and wait a second for each retry; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `address` with [`LISTEN_BACKLOG`] (and SO_REUSEADDR, as tokio sets it,
/// so a restart does not wait for old connections in TIME_WAIT).
pub(crate) fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The local submission socket of `posthorn sendmail`: any local user may write to it
/// (as with Postfix's maildrop), and the server learns who from the socket itself.
pub(crate) fn bind_local(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::remove_file(path);
    let socket =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(socket)
}

/// Connection limits shared by all listeners.
pub(crate) struct Guard {
    pub(crate) limiter: Arc<ConnectionLimiter>,
    pub(crate) rate: ConnectionRate,
    /// Clients are counted by [`ClientKey`] with this IPv6 prefix length.
    pub(crate) ipv6_prefix: u8,
}

/// The protocol a listener speaks.
#[derive(Clone)]
pub(crate) enum Service {
    /// SMTP, as the endpoint says.
    Smtp(Arc<Endpoint>),
    /// POP3 (`posthorn-mailbox`).
    Pop3(Arc<posthorn_mailbox::access::Settings>),
    /// IMAP (`posthorn-mailbox`).
    Imap(Arc<posthorn_mailbox::access::Settings>),
    /// ManageSieve (`posthorn-mailbox`).
    ManageSieve(Arc<posthorn_mailbox::access::Settings>),
}

impl Service {
    /// Whether clients log in here, so a blocked address is turned away at once.
    fn takes_logins(&self) -> bool {
        match self {
            Service::Smtp(endpoint) => endpoint.session_config.auth.enabled,
            Service::Pop3(_) | Service::Imap(_) | Service::ManageSieve(_) => true,
        }
    }

    /// A refusal before the session starts, in the protocol's own words.
    fn refusal(&self, reply: Reply) -> Vec<u8> {
        let text = reply.text.replace('\n', " ");
        match self {
            Service::Smtp(_) => reply.to_bytes(),
            Service::Pop3(_) => format!("-ERR [SYS/TEMP] {text}\r\n").into_bytes(),
            Service::Imap(_) => format!("* BYE [UNAVAILABLE] {text}\r\n").into_bytes(),
            Service::ManageSieve(_) => {
                format!("BYE (TRYLATER) \"{}\"\r\n", text.replace(['"', '\\'], "")).into_bytes()
            }
        }
    }
}

/// What an accept loop needs to start sessions.
pub(crate) struct Handler {
    pub(crate) inbound: Arc<Inbound>,
    pub(crate) service: Service,
    pub(crate) implicit_tls: bool,
    pub(crate) guard: Arc<Guard>,
    pub(crate) sessions: TaskTracker,
    pub(crate) shutdown: watch::Receiver<bool>,
}

pub(crate) async fn accept_loop(listener: TcpListener, mut handler: Handler) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = handler.shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, &handler),
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Refuses a client over a limit with a 421 written without waiting (the socket buffer
/// of a new connection is empty), or starts its session.
fn admit(stream: TcpStream, peer: SocketAddr, handler: &Handler) {
    let ip = peer.ip();
    let key = ClientKey::of(ip, handler.guard.ipv6_prefix);
    let inbound = &handler.inbound;
    let refusal = policy::refusal(
        key,
        inbound.is_trusted(ip),
        &handler.guard.rate,
        handler.service.takes_logins(),
        || inbound.logins.is_blocked(ip),
    );
    if let Some((why, reply)) = refusal {
        info!(client = %ip, "refused: {why}");
        if !handler.implicit_tls {
            let _ = stream.try_write(&handler.service.refusal(reply));
        }
        return;
    }
    let Some(permit) = handler.guard.limiter.admit(key) else {
        info!(client = %ip, "refused: too many connections");
        if !handler.implicit_tls {
            let _ = stream.try_write(&handler.service.refusal(table::too_many_connections()));
        }
        return;
    };
    let _ = stream.set_nodelay(true);
    let inbound = Arc::clone(inbound);
    let service = handler.service.clone();
    let mut shutdown = handler.shutdown.clone();
    let implicit_tls = handler.implicit_tls;
    handler.sessions.spawn(async move {
        let connection = if implicit_tls {
            match handshake(&inbound.tls, stream).await {
                Ok(connection) => connection,
                Err(why) => {
                    info!(client = %ip, error = why.as_str(), "TLS handshake failed");
                    return;
                }
            }
        } else {
            Connection::Plain(stream)
        };
        let pop3 = matches!(service, Service::Pop3(_));
        let mailbox_logins = |protocol| -> Arc<dyn Accounts> {
            Arc::new(MailboxLogins {
                logins: Arc::clone(&inbound.logins),
                protocol,
            })
        };
        match service {
            Service::Smtp(endpoint) => {
                session::run(
                    inbound,
                    endpoint,
                    connection,
                    Client::Network(peer),
                    shutdown,
                )
                .await;
            }
            Service::Pop3(settings) | Service::Imap(settings) => {
                let connection = Upgradable::new(connection, inbound.tls.clone());
                let accounts = mailbox_logins(if pop3 { Protocol::Pop3 } else { Protocol::Imap });
                // Mailbox sessions hold no queue state: at shutdown they just end.
                // Boxed: inline, an IMAP session's state would be part of every SMTP
                // session's task too, idle ones included.
                let session = async {
                    if pop3 {
                        Box::pin(posthorn_mailbox::pop3::serve(
                            connection, ip, settings, accounts,
                        ))
                        .await;
                    } else {
                        Box::pin(posthorn_mailbox::imap::serve(
                            connection, ip, settings, accounts,
                        ))
                        .await;
                    }
                };
                tokio::select! {
                    () = session => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
            }
            Service::ManageSieve(settings) => {
                let connection = Upgradable::new(connection, inbound.tls.clone());
                let sieve: Arc<dyn SieveCheck> = inbound.sieve.clone();
                let session = Box::pin(posthorn_mailbox::managesieve::serve(
                    connection,
                    ip,
                    settings,
                    mailbox_logins(Protocol::Sieve),
                    sieve,
                ));
                tokio::select! {
                    () = session => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
            }
        }
        drop(permit);
    });
}

/// The handshake of an implicit-TLS connection (RFC 8314), before any SMTP.
/// Fails with the reason, for the log.
async fn handshake(acceptor: &TlsAcceptor, stream: TcpStream) -> Result<ServerConnection, String> {
    let mut connection = Connection::Plain(stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.start_tls(acceptor)).await {
        Ok(Ok(())) => Ok(connection),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Sessions of local programs (`posthorn sendmail`): the peer's user id names the
/// client, and counts against the connection limits.
pub(crate) async fn local_accept_loop(
    listener: UnixListener,
    any_sender_group: String,
    mut handler: Handler,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = handler.shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let Some(user) = local_user(&stream, &any_sender_group) else {
                    warn!("local connection without credentials refused");
                    continue;
                };
                // Local users count against the connection limits like network clients,
                // each user as one client: none can hold every session.
                let Some(permit) = handler.guard.limiter.admit(ClientKey::LocalUser(user.uid))
                else {
                    info!(user = %user.name, "refused: too many connections");
                    let _ =
                        stream.try_write(&handler.service.refusal(table::too_many_connections()));
                    continue;
                };
                let inbound = Arc::clone(&handler.inbound);
                let Service::Smtp(endpoint) = handler.service.clone() else {
                    continue;
                };
                let shutdown = handler.shutdown.clone();
                handler.sessions.spawn(async move {
                    let connection = Connection::Local(stream);
                    session::run(inbound, endpoint, connection, Client::Local(user), shutdown)
                        .await;
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(error = %e, "accept failed on the local socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The Unix user at the other end of a local connection (SO_PEERCRED), and whether it may
/// use any sender: root, or a member of `group` by its primary group or the group's list.
fn local_user(stream: &tokio::net::UnixStream, group: &str) -> Option<LocalUser> {
    let credentials = stream.peer_cred().ok()?;
    let uid = credentials.uid();
    let name = sendmail::user_name(uid).unwrap_or_else(|| "unknown".into());
    let any_sender = uid == 0
        || (!group.is_empty()
            && sendmail::group_members(group)
                .is_some_and(|(gid, members)| gid == credentials.gid() || members.contains(&name)));
    Some(LocalUser {
        uid,
        name,
        any_sender,
    })
}
