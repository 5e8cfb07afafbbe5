//! What a transport is to the queue manager: it is lent jobs (some recipients of one
//! message for one destination), keeps its connection, and asks through its [`Feed`] for
//! the next job of the same destination.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use posthorn_spool::{Diagnostic, Envelope, QueueId};
use tokio::sync::{mpsc, oneshot};

use super::Input;
use super::policy::Outcome;

/// Where a recipient's mail goes; recipients with the same destination share connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A local Maildir.
    Local,
    /// The configured smarthost.
    Relay,
    /// The next hop configured for this domain.
    Route(String),
    /// The MX hosts of this domain.
    Mx(String),
    /// An address literal's host.
    Literal(IpAddr),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local => f.write_str("local"),
            Destination::Relay => f.write_str("relay"),
            Destination::Route(domain) => write!(f, "route:{domain}"),
            Destination::Mx(domain) => write!(f, "mx:{domain}"),
            Destination::Literal(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// Some recipients of one message for one destination: one transaction.
#[derive(Debug, Clone)]
pub struct Job {
    /// The message.
    pub envelope: Arc<Envelope>,
    /// Indexes of the recipients to deliver.
    pub recipients: Vec<usize>,
    /// The whole content, when it is in memory (new mail); otherwise it is in the spool.
    pub content: Option<Arc<[u8]>>,
}

/// What became of a job's recipients.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// The message.
    pub id: QueueId,
    /// One outcome per recipient of the job.
    pub outcomes: Vec<(usize, Outcome)>,
    /// New messages the delivery wrote into the spool (a Sieve redirect, a vacation
    /// reply), already durable, for the manager to take on.
    pub spawned: Vec<Envelope>,
}

/// A transport's line back to the manager.
#[derive(Debug, Clone)]
pub struct Feed {
    pub(super) destination: Destination,
    pub(super) tx: mpsc::UnboundedSender<Input>,
}

impl Feed {
    /// Reports a finished job and takes the next job for the same destination, if any.
    /// `unreachable` says the destination could not be reached at all: the manager then
    /// backs it off and defers everything queued for it.
    pub async fn next(&self, result: JobResult, unreachable: Option<Diagnostic>) -> Option<Job> {
        let (next, reply) = oneshot::channel();
        let input = Input::Finished {
            destination: self.destination.clone(),
            result,
            unreachable,
            next,
        };
        self.tx.send(input).ok()?;
        reply.await.ok().flatten()
    }
}

/// Delivers jobs for one destination.
pub trait Transport: Send + Sync + 'static {
    /// Delivers `job` and then every job `feed` hands out, until it hands out none.
    fn run(
        self: Arc<Self>,
        destination: Destination,
        job: Job,
        feed: Feed,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// The destination of a recipient.
    fn destination(&self, envelope: &Envelope, index: usize) -> Destination;
}

/// Concurrency limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Local deliveries at once.
    pub local: usize,
    /// Remote connections at once.
    pub remote: usize,
    /// Remote connections to one destination.
    pub per_destination: usize,
    /// Recipients per remote transaction.
    pub recipients_per_transaction: usize,
    /// Messages in memory at once.
    pub active: usize,
}
