//! The queue manager: the one owner of queue state.
//!
//! It knows when each message is due, loads due messages, splits their due recipients into
//! jobs by destination (local mailboxes, a relay, a per-domain route, a domain's MX hosts),
//! and lends jobs to transports. A transport keeps its connection and asks for the next
//! job of the same destination, so messages to one place share a connection. Outcomes come
//! back here; once every job of a message is back, its new state and any notices it owes
//! are written in one step, and it is scheduled again or removed. Local outcomes that come
//! back while other jobs of the message are still out are recorded at once, so a crash
//! during a slow remote delivery does not repeat them. A destination that cannot be
//! reached is backed off as a whole. Concurrency is bounded per destination and overall.

mod backoff;
mod commands;
mod manager;
pub mod policy;
mod schedule;
mod transport;

use std::sync::Arc;

use posthorn_spool::{Diagnostic, Envelope, QueueId, QueueStore};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::delivery::dsn::Notifier;
use manager::Manager;
use policy::Policy;

pub use commands::{AdminCommand, AdminReply, DEFERRED, QUEUED};
pub use transport::{Destination, Feed, Job, JobResult, Limits, Transport};

/// Tells the queue manager about new mail.
#[derive(Debug, Clone)]
pub struct QueueHandle {
    tx: mpsc::UnboundedSender<Input>,
}

impl QueueHandle {
    /// Hands a freshly committed message over for an immediate attempt, with its whole
    /// content if the caller still holds it (which spares the delivery a read of the spool).
    pub fn submit(&self, envelope: Envelope, content: Option<Arc<[u8]>>) {
        // Only fails at shutdown; the message is then picked up at the next start.
        let _ = self.tx.send(Input::Submit(envelope, content));
    }
}

impl QueueHandle {
    /// Makes the manager look at its schedule now, as after a change of the clock.
    pub fn wake(&self) {
        let _ = self.tx.send(Input::Wake);
    }

    /// Runs an admin command in the manager, the one writer of queue state.
    pub async fn admin(&self, command: AdminCommand) -> AdminReply {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Input::Admin(command, reply))
            .map_err(|_| "the queue manager is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the queue manager stopped".to_string())?
    }
}

/// What the manager reacts to.
#[derive(Debug)]
enum Input {
    Submit(Envelope, Option<Arc<[u8]>>),
    Admin(AdminCommand, oneshot::Sender<AdminReply>),
    Wake,
    Finished {
        destination: Destination,
        result: JobResult,
        unreachable: Option<Diagnostic>,
        next: oneshot::Sender<Option<Job>>,
    },
}

/// Everything the manager is built from.
pub struct Parts {
    /// The spool.
    pub store: Arc<dyn QueueStore>,
    /// Local mailboxes and routing of notices.
    pub notifier: Notifier,
    /// Retry, expiry and notice rules.
    pub policy: Policy,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Local deliveries.
    pub local: Arc<dyn Transport>,
    /// Remote deliveries.
    pub remote: Arc<dyn Transport>,
    /// Concurrency limits.
    pub limits: Limits,
}

/// Starts the manager with the messages found by the spool's recovery (which must be
/// complete before anything writes to the spool); it runs until `shutdown`.
pub fn start(
    parts: Parts,
    recovered: Vec<QueueId>,
    shutdown: watch::Receiver<bool>,
) -> (QueueHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let manager = Manager::new(parts, tx.clone());
    let task = tokio::spawn(manager.run(recovered, rx, shutdown));
    (QueueHandle { tx }, task)
}
