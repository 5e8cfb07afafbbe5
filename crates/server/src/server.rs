//! Putting the server together: spool, directory, queue manager, listeners; and taking it
//! apart again on shutdown without losing a session's message.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use posthorn_mailbox::access::Accounts;
use posthorn_maildir::create_dir_durable;
use posthorn_proto::reply::table;
use posthorn_proto::{AuthPolicy, Reply, SessionConfig};
use posthorn_spool::{FsQueueStore, QueueStore};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::certs::{CertSource, Certificates};
use crate::client_key::ClientKey;
use crate::config::{Config, Listener, Role};
use crate::limiter::ConnectionLimiter;
use crate::local::LocalTransport;
use crate::login::{Logins, MailboxLogins, Protocol};
use crate::mailauth::sign::{Keyring, Signer};
use crate::mailauth::verify::Verifier;
use crate::outbound::connection::Settings;
use crate::outbound::dns::Dns;
use crate::outbound::tls::TlsClient;
use crate::outbound::{NextHopPlan, Outbound, OutboundParts};
use crate::queue::policy::Policy;
use crate::queue::{self, Notifier, SystemClock};
use crate::sending::SendingQuota;
use crate::sendmail;
use crate::smtp::{self, Client, Endpoint, Inbound, LocalUser};
use crate::stream::{Connection, ServerConnection, Upgradable};
use crate::throttle::{AuthThrottle, ConnectionRate};
use crate::users::LiveDirectory;
use posthorn_mailbox::budget::MemoryBudget;

/// POP3's autologout timer (RFC 1939 §3: at least 10 minutes).
const POP3_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// IMAP's autologout timer (RFC 9051 §5.4: at least 30 minutes).
const IMAP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Longest wait for a client's TLS handshake on an implicit-TLS listener.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the server until `stop` completes, then shuts down gracefully: listeners close at
/// once, sessions get `shutdown_grace` to finish, deliveries in progress complete.
pub async fn run(config: Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let data_dir = &config.server.data_dir;
    create_dir_durable(data_dir, 0o755)
        .with_context(|| format!("cannot create data folder {}", data_dir.display()))?;
    // Two servers on one spool would deliver everything twice and corrupt its state.
    let lock = std::fs::File::create(data_dir.join("posthorn.lock"))
        .with_context(|| format!("cannot create the lock file in {}", data_dir.display()))?;
    lock.try_lock()
        .map_err(|_| anyhow::anyhow!("another posthorn is running on {}", data_dir.display()))?;
    let store: Arc<dyn QueueStore> = Arc::new(
        FsQueueStore::open(data_dir.join("queue"))
            .with_context(|| format!("cannot open the queue in {}", data_dir.display()))?,
    );
    let directory = LiveDirectory::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mail_root = directory.current().mail_root().to_path_buf();
    create_dir_durable(&mail_root, 0o755)
        .with_context(|| format!("cannot create {}", mail_root.display()))?;
    let configured = config
        .tls
        .certificate
        .as_ref()
        .zip(config.tls.key.as_ref())
        .map(|(c, k)| (c.get_ref().clone(), k.get_ref().clone()));
    // Clients that connect by address find it in a self-signed certificate; a wildcard
    // address names nothing.
    let addresses: Vec<IpAddr> = config
        .listeners
        .iter()
        .map(|l| l.address.get_ref().ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    let certificates = Certificates::load(CertSource::resolve(
        configured,
        data_dir,
        config.server.hostname.get_ref(),
        &addresses,
    )?)?;

    let mut sockets = Vec::new();
    for listener in &config.listeners {
        let socket = listen(*listener.address.get_ref()).with_context(|| {
            format!(
                "cannot listen on {} ({})",
                listener.address.get_ref(),
                listener.role
            )
        })?;
        sockets.push((listener.clone(), socket));
    }
    let local_path = data_dir.join(sendmail::SOCKET);
    let local_socket = bind_local(&local_path)?;
    info!(path = %local_path.display(), "sendmail socket ready");
    let own_listeners = sockets
        .iter()
        .filter_map(|(_, socket)| socket.local_addr().ok())
        .collect();

    // Recovery wipes half-written files: it must be over before any session writes.
    let recovering = Arc::clone(&store);
    let recovered = tokio::task::spawn_blocking(move || recovering.recover())
        .await?
        .context("cannot recover the queue")?;
    info!(messages = recovered.len(), "queue recovered");

    let dns = Dns::new(
        config.delivery.nameserver,
        config
            .delivery
            .command_timeout
            .0
            .min(Duration::from_secs(30)),
    )
    .context("cannot set up the DNS resolver")?;
    let signer = signer(&config)?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let queue_parts = queue_parts(
        &config,
        &store,
        &directory,
        own_listeners,
        dns.clone(),
        signer.clone(),
    )?;
    let (queue, queue_task) = queue::start(queue_parts, recovered, shutdown.clone());
    // Bound here, not in its task: "posthorn started" promises that `posthorn queue` works.
    let admin_path = data_dir.join(admin::SOCKET);
    let admin_task = match admin::bind(&admin_path) {
        Ok(socket) => {
            info!(path = %admin_path.display(), "admin socket ready");
            Some(tokio::spawn(admin::serve(
                socket,
                admin_path,
                Arc::clone(&store),
                queue.clone(),
                shutdown.clone(),
            )))
        }
        Err(e) => {
            warn!(path = %admin_path.display(), error = %e, "admin socket unavailable; `posthorn queue` will not work");
            None
        }
    };
    tokio::spawn(Arc::clone(&directory).watch(shutdown.clone()));
    tokio::spawn(reload_on_hangup(
        Arc::clone(&certificates),
        Arc::clone(&directory),
        shutdown.clone(),
    )?);
    let auth = &config.auth;
    let logins = Arc::new(Logins::new(
        Arc::clone(&directory),
        AuthThrottle::new(auth.max_failures, auth.failure_window.0, auth.block_time.0),
        auth.failure_delay.0,
        config.server.hostname.get_ref().clone(),
        config.limits.ipv6_prefix_length,
    ));
    let inbound = Arc::new(Inbound {
        command_timeout: config.limits.command_timeout.0,
        data_timeout: config.limits.data_timeout.0,
        directory,
        store,
        queue,
        trusted_networks: config.policy.trusted_networks.clone(),
        tls: certificates.acceptor(),
        logins: logins.clone(),
        sending: SendingQuota::load(data_dir.join("sending.json")),
        tarpit: (config.limits.tarpit_after, config.limits.tarpit_delay.0),
        verifier: Verifier::new(dns.authenticator(), &config),
        signer,
        arc_seal: config.dkim.arc_seal,
        whole_messages: MemoryBudget::new(config.limits.check_memory.0),
        local_sending: config.sending,
    });
    let guard = Arc::new(Guard {
        limiter: ConnectionLimiter::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        rate: ConnectionRate::new(config.limits.max_connection_rate_per_ip),
        ipv6_prefix: config.limits.ipv6_prefix_length,
    });
    let sessions = TaskTracker::new();
    let mut listeners = Vec::new();
    for (listener, socket) in sockets {
        let address = socket.local_addr()?;
        info!(role = %listener.role, %address, "listening");
        listeners.push(tokio::spawn(accept_loop(
            socket,
            Handler {
                inbound: Arc::clone(&inbound),
                service: service(&config, &listener, &inbound.whole_messages),
                implicit_tls: listener.role.implicit_tls(),
                guard: Arc::clone(&guard),
                sessions: sessions.clone(),
                shutdown: shutdown.clone(),
            },
        )));
    }
    let local_endpoint = Arc::new(Endpoint {
        session_config: config.session_config(),
        submission: true,
    });
    listeners.push(tokio::spawn(local_accept_loop(
        local_socket,
        config.policy.local_any_sender_group.clone(),
        Handler {
            inbound: Arc::clone(&inbound),
            service: Service::Smtp(local_endpoint),
            implicit_tls: false,
            guard: Arc::clone(&guard),
            sessions: sessions.clone(),
            shutdown: shutdown.clone(),
        },
    )));
    // Every socket is bound by now (connections wait in their backlogs until the accept
    // loops run): scripts may wait for this line, then use the server.
    info!(hostname = %config.server.hostname.get_ref(), "posthorn started");

    stop.await;
    info!("shutting down");
    let _ = shutdown_tx.send(true);
    for listener in listeners {
        let _ = listener.await;
    }
    sessions.close();
    let grace = config.server.shutdown_grace.0;
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        warn!(
            open = guard.limiter.open(),
            "grace period over, closing remaining sessions"
        );
    }
    if tokio::time::timeout(Duration::from_secs(30), queue_task)
        .await
        .is_err()
    {
        warn!("deliveries still running at exit; they will be retried");
    }
    if let Some(admin_task) = admin_task {
        let _ = admin_task.await;
    }
    info!("stopped");
    drop(lock);
    Ok(())
}

/// What a listener serves, and how.
fn service(config: &Config, listener: &Listener, whole_messages: &MemoryBudget) -> Service {
    let settings = |idle_timeout| {
        Arc::new(posthorn_mailbox::access::Settings {
            hostname: config.server.hostname.get_ref().clone(),
            starttls: !listener.role.implicit_tls(),
            plaintext_auth: listener.allow_plaintext_auth,
            idle_timeout,
            max_message_size: usize::try_from(config.limits.max_message_size.0)
                .unwrap_or(usize::MAX),
            whole_messages: whole_messages.clone(),
        })
    };
    match listener.role {
        Role::Pop3 | Role::Pop3s => Service::Pop3(settings(POP3_TIMEOUT)),
        Role::Imap | Role::Imaps => Service::Imap(settings(IMAP_TIMEOUT)),
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
    }
}

/// Connections the kernel may hold for a listener before we accept them. Tokio's default
/// (1024, cut to 128 by some kernels) made 500 clients opening connections at once lose
/// SYNs and wait a second for each retry; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `address` with [`LISTEN_BACKLOG`] (and SO_REUSEADDR, as tokio sets it,
/// so a restart does not wait for old connections in TIME_WAIT).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
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
fn bind_local(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::remove_file(path);
    let socket =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(socket)
}

/// SIGHUP: reload the certificate and the users file.
fn reload_on_hangup(
    certificates: Arc<Certificates>,
    directory: Arc<LiveDirectory>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    Ok(async move {
        loop {
            tokio::select! {
                Some(()) = hangup.recv() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            info!("SIGHUP: reloading certificate and users");
            let certificates = Arc::clone(&certificates);
            let directory = Arc::clone(&directory);
            let _ = tokio::task::spawn_blocking(move || {
                certificates.reload();
                directory.refresh(true);
            })
            .await;
        }
    })
}

/// The queue manager's parts: policy, notifier, and the local and remote transports.
fn queue_parts(
    config: &Config,
    store: &Arc<dyn QueueStore>,
    directory: &Arc<LiveDirectory>,
    own_listeners: Vec<SocketAddr>,
    dns: Dns,
    signer: Option<Arc<Signer>>,
) -> anyhow::Result<queue::Parts> {
    let hostname = config.server.hostname.get_ref().clone();
    let delivery = &config.delivery;
    let queue = &config.queue;
    let tls =
        TlsClient::new(delivery.ca_file.as_deref()).context("cannot set up TLS for delivery")?;
    let routes = config
        .routes
        .iter()
        .filter_map(|route| {
            let domain = route.domain.as_ref()?.get_ref().to_lowercase();
            Some((domain, NextHopPlan::from_config(route)?))
        })
        .collect();
    let outbound = Outbound::new(OutboundParts {
        store: Arc::clone(store),
        dns,
        settings: Settings {
            helo_name: delivery
                .helo_name
                .as_ref()
                .map_or_else(|| hostname.clone(), |n| n.get_ref().clone()),
            connect_timeout: delivery.connect_timeout.0,
            command_timeout: delivery.command_timeout.0,
            final_timeout: delivery.final_timeout.0,
            tls,
        },
        mx_port: delivery.port,
        mx_tls: delivery.tls,
        relay: config.relay.as_ref().and_then(NextHopPlan::from_config),
        routes,
        own_listeners,
        hostname: hostname.clone(),
        max_hops: queue.max_hops,
    });
    let local = LocalTransport::new(
        Arc::clone(store),
        Arc::clone(directory),
        hostname.clone(),
        queue.max_hops,
    );
    Ok(queue::Parts {
        store: Arc::clone(store),
        notifier: Notifier::new(
            Arc::clone(store),
            Arc::clone(directory),
            hostname,
            queue.notify_postmaster,
            signer,
        ),
        policy: Policy {
            retry_schedule: queue.retry_schedule.iter().map(|s| s.0).collect(),
            max_lifetime: queue.max_lifetime.0.as_secs(),
            delay_warning: queue.delay_warning.0.as_secs(),
        },
        clock: Arc::new(SystemClock),
        local: Arc::new(local),
        remote: Arc::new(outbound),
        limits: queue::Limits {
            local: queue.local_concurrency,
            remote: delivery.max_connections,
            per_destination: delivery.max_connections_per_destination,
            recipients_per_transaction: delivery.max_recipients_per_transaction,
            active: queue.active_limit,
        },
    })
}

/// The DKIM signer of our domains' mail, when signing is on: configured keys, and keys made
/// (or found) in the data folder for the other local domains.
fn signer(config: &Config) -> anyhow::Result<Option<Arc<Signer>>> {
    if !config.dkim.sign {
        return Ok(None);
    }
    let domains: Vec<String> = config
        .domains
        .iter()
        .map(|d| d.name.get_ref().clone())
        .collect();
    let keyring = Keyring::load(config, &domains).map_err(|e| anyhow::anyhow!("DKIM keys: {e}"))?;
    Ok(Some(Arc::new(Signer::new(keyring))))
}

/// Connection limits shared by all listeners.
struct Guard {
    limiter: Arc<ConnectionLimiter>,
    rate: ConnectionRate,
    /// Clients are counted by [`ClientKey`] with this IPv6 prefix length.
    ipv6_prefix: u8,
}

/// The protocol a listener speaks.
#[derive(Clone)]
enum Service {
    /// SMTP, as the endpoint says.
    Smtp(Arc<Endpoint>),
    /// POP3 (`posthorn-mailbox`).
    Pop3(Arc<posthorn_mailbox::access::Settings>),
    /// IMAP (`posthorn-mailbox`).
    Imap(Arc<posthorn_mailbox::access::Settings>),
}

impl Service {
    /// Whether clients log in here, so a blocked address is turned away at once.
    fn takes_logins(&self) -> bool {
        match self {
            Service::Smtp(endpoint) => endpoint.session_config.auth.enabled,
            Service::Pop3(_) | Service::Imap(_) => true,
        }
    }

    /// A refusal before the session starts, in the protocol's own words.
    fn refusal(&self, reply: Reply) -> Vec<u8> {
        let text = reply.text.replace('\n', " ");
        match self {
            Service::Smtp(_) => reply.to_bytes(),
            Service::Pop3(_) => format!("-ERR [SYS/TEMP] {text}\r\n").into_bytes(),
            Service::Imap(_) => format!("* BYE [UNAVAILABLE] {text}\r\n").into_bytes(),
        }
    }
}

/// What an accept loop needs to start sessions.
struct Handler {
    inbound: Arc<Inbound>,
    service: Service,
    implicit_tls: bool,
    guard: Arc<Guard>,
    sessions: TaskTracker,
    shutdown: watch::Receiver<bool>,
}

async fn accept_loop(listener: TcpListener, mut handler: Handler) {
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
    let refusal = if !inbound.is_trusted(ip) && !handler.guard.rate.admit(key) {
        Some(("connection rate", table::connection_rate_exceeded()))
    } else if handler.service.takes_logins() && inbound.logins.is_blocked(ip) {
        Some((
            "blocked after failed logins",
            table::blocked_for_auth_failures(),
        ))
    } else {
        None
    };
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
        match service {
            Service::Smtp(endpoint) => {
                smtp::run(
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
                let accounts: Arc<dyn Accounts> = Arc::new(MailboxLogins {
                    logins: Arc::clone(&inbound.logins),
                    protocol: if pop3 { Protocol::Pop3 } else { Protocol::Imap },
                });
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
async fn local_accept_loop(listener: UnixListener, any_sender_group: String, mut handler: Handler) {
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
                    smtp::run(inbound, endpoint, connection, Client::Local(user), shutdown).await;
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
