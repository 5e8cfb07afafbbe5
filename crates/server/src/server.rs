//! Putting the server together: spool, directory, queue manager, listeners; and taking it
//! apart again on shutdown without losing a session's message.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use posthorn_maildir::create_dir_durable;
use posthorn_spool::{FsQueueStore, QueueStore};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::accounts::login::Logins;
use crate::accounts::users::LiveDirectory;
use crate::admin;
use crate::certs::{CertSource, Certificates};
use crate::clock::SystemClock;
use crate::config::{Config, Listener};
use crate::delivery::dsn::Notifier;
use crate::delivery::local::LocalTransport;
use crate::delivery::remote::connection::Settings;
use crate::delivery::remote::tls::TlsClient;
use crate::delivery::remote::{NextHopPlan, Outbound, OutboundParts};
use crate::delivery::sieve::Sieve;
use crate::dns::Dns;
use crate::inbound::checks::Stage;
use crate::inbound::checks::milters::Milters;
use crate::inbound::limits::limiter::ConnectionLimiter;
use crate::inbound::limits::sending::SendingQuota;
use crate::inbound::limits::throttle::{AuthThrottle, ConnectionRate};
use crate::inbound::listeners::{
    Guard, Handler, Service, accept_loop, bind_local, listen, local_accept_loop, service,
};
use crate::inbound::sendmail;
use crate::inbound::session::{Endpoint, Inbound};
use crate::inbound::sieve_reject::SieveAtData;
use crate::learning::Learning;
use crate::learning::teacher::Teacher;
use crate::mailauth::sign::{Keyring, Signer};
use crate::mailauth::verify::Verifier;
use crate::queue;
use crate::queue::flow::Flow;
use crate::queue::policy::Policy;
use posthorn_mailbox::access::Learner;
use posthorn_mailbox::budget::MemoryBudget;
use tokio::net::{TcpListener, UnixListener};

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
    let certificates = certificates(&config)?;
    let sockets = bind(&config)?;
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
    let sieve = Arc::new(
        Sieve::new(&config)
            .map_err(|invalid| anyhow::anyhow!("{}: {}", invalid.key, invalid.message))?,
    );
    let (shutdown_tx, shutdown) = watch::channel(false);
    let queue_parts = queue_parts(
        &config,
        &store,
        &directory,
        own_listeners,
        dns.clone(),
        signer.clone(),
        config.sieve.enabled.then(|| Arc::clone(&sieve)),
    )?;
    let (queue, queue_task) = queue::start(queue_parts, recovered, shutdown.clone());
    let admin_task = start_admin(data_dir, &store, &queue, &shutdown);
    tokio::spawn(Arc::clone(&directory).watch(shutdown.clone()));
    tokio::spawn(crate::allocator::trim_while_running(shutdown.clone()));
    tokio::spawn(reload_on_hangup(
        Arc::clone(&certificates),
        Arc::clone(&directory),
        shutdown.clone(),
    )?);
    let inbound = inbound(
        &config,
        directory,
        store,
        queue,
        &certificates,
        &dns,
        signer,
        sieve,
    )?;
    let guard = Arc::new(Guard {
        limiter: ConnectionLimiter::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        rate: ConnectionRate::new(config.limits.max_connection_rate_per_ip),
        ipv6_prefix: config.limits.ipv6_prefix_length,
    });
    let sessions = TaskTracker::new();
    let listeners = start_listeners(
        &config,
        sockets,
        local_socket,
        &inbound,
        &guard,
        &sessions,
        &shutdown,
    )?;
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
    if let Some(checks) = inbound.checks.clone() {
        let _ = tokio::task::spawn_blocking(move || checks.save()).await;
    }
    if let Some(learning) = inbound.learning.clone()
        && let Ok(Err(e)) = tokio::task::spawn_blocking(move || learning.save()).await
    {
        warn!(error = %e, "cannot save what users taught the classifier");
    }
    info!("stopped");
    drop(lock);
    Ok(())
}

/// Our certificate: the configured one, or a self-signed one made for the host name and
/// the listeners' addresses (clients that connect by address find it there; a wildcard
/// address names nothing).
fn certificates(config: &Config) -> anyhow::Result<Arc<Certificates>> {
    let configured = config
        .tls
        .certificate
        .as_ref()
        .zip(config.tls.key.as_ref())
        .map(|(c, k)| (c.get_ref().clone(), k.get_ref().clone()));
    let addresses: Vec<IpAddr> = config
        .listeners
        .iter()
        .map(|l| l.address.get_ref().ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    Certificates::load(CertSource::resolve(
        configured,
        &config.server.data_dir,
        config.server.hostname.get_ref(),
        &addresses,
    )?)
}

/// Every configured listener's socket, bound before anything else starts: a port in use
/// stops the start-up with its address and role.
fn bind(config: &Config) -> anyhow::Result<Vec<(Listener, TcpListener)>> {
    config
        .listeners
        .iter()
        .map(|listener| {
            let socket = listen(*listener.address.get_ref()).with_context(|| {
                format!(
                    "cannot listen on {} ({})",
                    listener.address.get_ref(),
                    listener.role
                )
            })?;
            Ok((listener.clone(), socket))
        })
        .collect()
}

/// The operator's socket, bound here rather than in its task: "posthorn started" promises
/// that `posthorn queue` works.
fn start_admin(
    data_dir: &std::path::Path,
    store: &Arc<dyn QueueStore>,
    queue: &queue::QueueHandle,
    shutdown: &watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let admin_path = data_dir.join(admin::SOCKET);
    match admin::bind(&admin_path) {
        Ok(socket) => {
            info!(path = %admin_path.display(), "admin socket ready");
            Some(tokio::spawn(admin::serve(
                socket,
                admin_path,
                Arc::clone(store),
                queue.clone(),
                shutdown.clone(),
            )))
        }
        Err(e) => {
            warn!(path = %admin_path.display(), error = %e, "admin socket unavailable; `posthorn queue` will not work");
            None
        }
    }
}

/// What every inbound session shares.
#[allow(clippy::too_many_arguments)]
fn inbound(
    config: &Config,
    directory: Arc<LiveDirectory>,
    store: Arc<dyn QueueStore>,
    queue: queue::QueueHandle,
    certificates: &Arc<Certificates>,
    dns: &Dns,
    signer: Option<Arc<Signer>>,
    sieve: Arc<Sieve>,
) -> anyhow::Result<Arc<Inbound>> {
    let learning = learning(config)?;
    let checks = if config.checks.enabled {
        let stage = Stage::new(
            config,
            dns.clone(),
            &config.server.data_dir,
            Arc::new(SystemClock),
            learning.clone(),
        )
        .map_err(|invalid| anyhow::anyhow!("{}: {}", invalid.key, invalid.message))?;
        stage.start();
        Some(Arc::new(stage))
    } else {
        None
    };
    let auth = &config.auth;
    let logins = Arc::new(Logins::new(
        Arc::clone(&directory),
        AuthThrottle::new(auth.max_failures, auth.failure_window.0, auth.block_time.0),
        auth.failure_delay.0,
        auth.cache_ttl.0,
        config.server.hostname.get_ref().clone(),
        config.limits.ipv6_prefix_length,
    ));
    Ok(Arc::new(Inbound {
        command_timeout: config.limits.command_timeout.0,
        data_timeout: config.limits.data_timeout.0,
        directory,
        store,
        queue,
        trusted_networks: config.policy.trusted_networks.clone(),
        tls: certificates.acceptor(),
        logins: logins.clone(),
        sending: SendingQuota::load(config.server.data_dir.join("sending.json")),
        tarpit: (config.limits.tarpit_after, config.limits.tarpit_delay.0),
        verifier: Verifier::new(dns.authenticator(), config),
        signer,
        arc_seal: config.dkim.arc_seal,
        whole_messages: MemoryBudget::new(config.limits.check_memory.0),
        local_sending: config.sending,
        checks,
        flow: Flow::new(config.queue.inflow_window, config.queue.inflow_delay.0),
        learning,
        sieve_at_data: config
            .sieve
            .enabled
            .then(|| Arc::new(SieveAtData::new(Arc::clone(&sieve)))),
        sieve,
    }))
}

/// What users taught the classifier and about their correspondents, saved every few
/// seconds; `None` when both are off.
fn learning(config: &Config) -> anyhow::Result<Option<Arc<Learning>>> {
    let checks = &config.checks;
    if !checks.classifier.enabled && !checks.reputation.enabled {
        return Ok(None);
    }
    let learning = Arc::new(Learning::open(config).with_context(|| {
        format!(
            "cannot read what the classifier learnt in {}",
            config.server.data_dir.join("learning").display()
        )
    })?);
    learning.keep_saved();
    Ok(Some(learning))
}

/// An accept loop for every listener and one for the local socket of `sendmail`.
fn start_listeners(
    config: &Config,
    sockets: Vec<(Listener, TcpListener)>,
    local_socket: UnixListener,
    inbound: &Arc<Inbound>,
    guard: &Arc<Guard>,
    sessions: &TaskTracker,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut listeners = Vec::new();
    // One teacher for every IMAP listener: lessons are learnt one at a time.
    let learner = inbound
        .learning
        .clone()
        .map(|learning| Arc::new(Teacher::start(learning)) as Arc<dyn Learner>);
    for (listener, socket) in sockets {
        let address = socket.local_addr()?;
        info!(role = %listener.role, %address, "listening");
        listeners.push(tokio::spawn(accept_loop(
            socket,
            Handler {
                inbound: Arc::clone(inbound),
                service: service(config, &listener, &inbound.whole_messages, learner.clone()),
                implicit_tls: listener.role.implicit_tls(),
                guard: Arc::clone(guard),
                sessions: sessions.clone(),
                shutdown: shutdown.clone(),
            },
        )));
    }
    let local_endpoint = Arc::new(Endpoint {
        session_config: config.session_config(),
        submission: true,
        checks: config.checks.submissions,
        milters: Milters::default(),
    });
    listeners.push(tokio::spawn(local_accept_loop(
        local_socket,
        config.policy.local_any_sender_group.clone(),
        Handler {
            inbound: Arc::clone(inbound),
            service: Service::Smtp(local_endpoint),
            implicit_tls: false,
            guard: Arc::clone(guard),
            sessions: sessions.clone(),
            shutdown: shutdown.clone(),
        },
    )));
    Ok(listeners)
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
    sieve: Option<Arc<Sieve>>,
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
            idle_limit: delivery.connection_cache_time.0,
            tls,
        },
        mx_port: delivery.port,
        mx_tls: delivery.tls,
        relay: config.relay.as_ref().and_then(NextHopPlan::from_config),
        routes,
        own_listeners,
        hostname: hostname.clone(),
        max_hops: queue.max_hops,
        directory: Arc::clone(directory),
    });
    let local = LocalTransport::new(
        Arc::clone(store),
        Arc::clone(directory),
        hostname.clone(),
        queue.max_hops,
        sieve,
        signer.clone(),
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
