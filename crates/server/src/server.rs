//! Putting the server together: spool, directory, queue manager, listeners; and taking it
//! apart again on shutdown without losing a session's message.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use posthorn_proto::reply::table;
use posthorn_spool::{FsQueueStore, QueueStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::config::Config;
use crate::directory::Directory;
use crate::limiter::ConnectionLimiter;
use crate::local::LocalTransport;
use crate::outbound::connection::Settings;
use crate::outbound::dns::Dns;
use crate::outbound::tls::TlsClient;
use crate::outbound::{NextHopPlan, Outbound, OutboundParts};
use crate::queue::policy::Policy;
use crate::queue::{self, Notifier, SystemClock};
use crate::smtp::{self, Inbound};

/// Runs the server until `stop` completes, then shuts down gracefully: listeners close at
/// once, sessions get `shutdown_grace` to finish, deliveries in progress complete.
pub async fn run(config: Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
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
    let directory = Arc::new(
        Directory::build(&config).map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?,
    );
    std::fs::create_dir_all(directory.mail_root())
        .with_context(|| format!("cannot create {}", directory.mail_root().display()))?;

    let mut sockets = Vec::new();
    for listener in &config.listeners {
        let socket = TcpListener::bind(listener.address).await.with_context(|| {
            format!("cannot listen on {} ({})", listener.address, listener.role)
        })?;
        sockets.push((listener.role, socket));
    }
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

    let (shutdown_tx, shutdown) = watch::channel(false);
    let queue_parts = queue_parts(&config, &store, &directory, own_listeners)?;
    let (queue, queue_task) = queue::start(queue_parts, recovered, shutdown.clone());
    let admin_task = tokio::spawn(admin::serve(
        data_dir.join(admin::SOCKET),
        Arc::clone(&store),
        queue.clone(),
        shutdown.clone(),
    ));
    let inbound = Arc::new(Inbound {
        session_config: config.session_config(),
        command_timeout: config.limits.command_timeout.0,
        data_timeout: config.limits.data_timeout.0,
        directory,
        store,
        queue,
        trusted_networks: config.policy.trusted_networks.clone(),
    });
    let limiter = ConnectionLimiter::new(
        config.limits.max_connections,
        config.limits.max_connections_per_ip,
    );
    let sessions = TaskTracker::new();
    let mut listeners = Vec::new();
    for (role, socket) in sockets {
        let address = socket.local_addr()?;
        info!(%role, %address, "listening");
        listeners.push(tokio::spawn(accept_loop(
            socket,
            Arc::clone(&inbound),
            Arc::clone(&limiter),
            sessions.clone(),
            shutdown.clone(),
        )));
    }
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
            open = limiter.open(),
            "grace period over, closing remaining sessions"
        );
    }
    if tokio::time::timeout(Duration::from_secs(30), queue_task)
        .await
        .is_err()
    {
        warn!("deliveries still running at exit; they will be retried");
    }
    let _ = admin_task.await;
    info!("stopped");
    drop(lock);
    Ok(())
}

/// The queue manager's parts: policy, notifier, and the local and remote transports.
fn queue_parts(
    config: &Config,
    store: &Arc<dyn QueueStore>,
    directory: &Arc<Directory>,
    own_listeners: Vec<SocketAddr>,
) -> anyhow::Result<queue::Parts> {
    let hostname = config.server.hostname.get_ref().clone();
    let delivery = &config.delivery;
    let queue = &config.queue;
    let tls =
        TlsClient::new(delivery.ca_file.as_deref()).context("cannot set up TLS for delivery")?;
    let dns = Dns::new(
        delivery.nameserver,
        delivery.command_timeout.0.min(Duration::from_secs(30)),
    )
    .context("cannot set up the DNS resolver")?;
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

async fn accept_loop(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    limiter: Arc<ConnectionLimiter>,
    sessions: TaskTracker,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, &inbound, &limiter, &sessions, &shutdown),
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    inbound: &Arc<Inbound>,
    limiter: &Arc<ConnectionLimiter>,
    sessions: &TaskTracker,
    shutdown: &watch::Receiver<bool>,
) {
    let Some(permit) = limiter.admit(peer.ip()) else {
        info!(client = %peer.ip(), "refused: too many connections");
        // Best effort and never blocking: the socket buffer of a new connection is empty.
        let _ = stream.try_write(&table::too_many_connections().to_bytes());
        return;
    };
    let _ = stream.set_nodelay(true);
    let inbound = Arc::clone(inbound);
    let shutdown = shutdown.clone();
    sessions.spawn(async move {
        smtp::run(inbound, stream, peer, shutdown).await;
        drop(permit);
    });
}
