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

mod notices;
pub mod policy;
mod schedule;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use posthorn_proto::Status;
use posthorn_spool::{Diagnostic, Envelope, QueueId, QueueStore, RecipientStatus};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

pub use notices::Notifier;
use policy::{Outcome, Policy};
use schedule::Schedule;

/// Spool reads of due messages in flight at once.
const MAX_LOADING: usize = 32;
/// Octets of message content kept in memory for deliveries in progress; beyond it, they
/// read the spool.
const CONTENT_BUDGET: usize = 64 << 20;

/// Seconds since the Unix epoch, from a clock tests can replace.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::smtp::unix_now()
    }
}

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
}

/// A transport's line back to the manager.
#[derive(Debug, Clone)]
pub struct Feed {
    destination: Destination,
    tx: mpsc::UnboundedSender<Input>,
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

/// The word for a recipient whose attempt failed for now and that waits for the next one,
/// in the log (`result="deferred"`) and in `posthorn queue list`.
pub const DEFERRED: &str = "deferred";
/// `posthorn queue list`'s word for a recipient not attempted yet.
pub const QUEUED: &str = "queued";

/// An operator's command that changes the queue (`posthorn queue ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Attempt now: one message, or every waiting message and backed-off destination.
    Flush(Option<QueueId>),
    /// Keep a message out of delivery until released.
    Hold(QueueId),
    /// Put a held message back into delivery, due now.
    Release(QueueId),
    /// Remove a message; its sender is told unless `silent`.
    Delete {
        /// The message.
        id: QueueId,
        /// No bounce.
        silent: bool,
    },
    /// Return a message to its sender now.
    Bounce(QueueId),
}

impl std::fmt::Display for AdminCommand {
    /// As the operator typed it (`flush`, `hold ID`, `delete ID --silent`), for the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminCommand::Flush(None) => f.write_str("flush"),
            AdminCommand::Flush(Some(id)) => write!(f, "flush {id}"),
            AdminCommand::Hold(id) => write!(f, "hold {id}"),
            AdminCommand::Release(id) => write!(f, "release {id}"),
            AdminCommand::Delete { id, silent: false } => write!(f, "delete {id}"),
            AdminCommand::Delete { id, silent: true } => write!(f, "delete {id} --silent"),
            AdminCommand::Bounce(id) => write!(f, "bounce {id}"),
        }
    }
}

/// The reply to an admin command: what was done, or why not.
pub type AdminReply = Result<String, String>;

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
    let manager = Manager {
        parts,
        tx: tx.clone(),
        schedule: Schedule::default(),
        active: HashMap::new(),
        destinations: HashMap::new(),
        ready: HashSet::new(),
        forced: HashSet::new(),
        remote_workers: 0,
        workers: JoinSet::new(),
        worker_destinations: HashMap::new(),
        loads: JoinSet::new(),
        finishing: JoinSet::new(),
        to_write_back: Vec::new(),
        cached: 0,
    };
    let task = tokio::spawn(manager.run(recovered, rx, shutdown));
    (QueueHandle { tx }, task)
}

/// A message out for delivery.
struct Active {
    envelope: Envelope,
    outstanding: usize,
    /// Octets of content held for its jobs (counted against `CONTENT_BUDGET`).
    cached: usize,
    /// Resolves once the latest early record of its state (see `record_early`) is on disk:
    /// the write-back waits for it, so an older state never replaces a newer one.
    recorded: Option<Recorded>,
}

/// Resolves when an early state record is written (or has failed).
type Recorded = oneshot::Receiver<()>;

/// Jobs waiting for one destination and its connections.
#[derive(Default)]
struct DestinationState {
    queue: VecDeque<Job>,
    workers: usize,
    dead_until: u64,
    failures: u32,
    last_error: Option<Diagnostic>,
}

struct Manager {
    parts: Parts,
    tx: mpsc::UnboundedSender<Input>,
    schedule: Schedule,
    active: HashMap<QueueId, Active>,
    destinations: HashMap<Destination, DestinationState>,
    ready: HashSet<Destination>,
    /// Messages flushed by the operator: every pending recipient is due at activation.
    forced: HashSet<QueueId>,
    remote_workers: usize,
    workers: JoinSet<Destination>,
    worker_destinations: HashMap<tokio::task::Id, Destination>,
    loads: JoinSet<(QueueId, std::io::Result<Envelope>)>,
    finishing: JoinSet<Vec<WriteBack>>,
    /// Messages whose attempt is over, written back together at the end of the pass, each
    /// after its early state record, if one is still being written.
    to_write_back: Vec<(Envelope, Option<Recorded>)>,
    /// Octets of content held in memory for deliveries.
    cached: usize,
}

/// A message written back: when it is next due (none when it left the queue) and the
/// notices it produced.
type WriteBack = (QueueId, Option<u64>, Vec<Envelope>);

impl Manager {
    async fn run(
        mut self,
        recovered: Vec<QueueId>,
        mut rx: mpsc::UnboundedReceiver<Input>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        for id in recovered {
            self.schedule.set(id, 0);
        }
        loop {
            let now = self.parts.clock.now();
            self.dispatch(now);
            let wait = self
                .schedule
                .next_due()
                .filter(|_| self.schedule.busy_count() < self.parts.limits.active)
                .map_or(Duration::from_secs(3600), |due| {
                    Duration::from_secs(due.saturating_sub(now).max(1))
                });
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.input(input),
                    None => break,
                },
                Some(loaded) = self.loads.join_next() => match loaded {
                    Ok((_, Ok(envelope))) => self.activate(envelope, None),
                    Ok((id, Err(e))) => self.load_failed(id, e),
                    Err(e) => error!(error = %e, "queue load task failed"),
                },
                Some(finished) = self.finishing.join_next() => match finished {
                    Ok(written) => {
                        for (id, next, notices) in written {
                            // A flush asked for while the message was busy (its attempt
                            // being written back, say) applies now that it is back.
                            let next = match next {
                                Some(_) if self.forced.contains(&id) => Some(now),
                                Some(time) => Some(time),
                                None => {
                                    self.forced.remove(&id);
                                    None
                                }
                            };
                            self.schedule.release(id, next);
                            for notice in notices {
                                if self.schedule.claim(&notice.id) {
                                    self.activate(notice, None);
                                }
                            }
                        }
                    }
                    Err(e) => error!(error = %e, "queue write-back task failed"),
                },
                Some(ended) = self.workers.join_next_with_id() => self.worker_ended(ended),
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        self.stop(rx).await;
    }

    /// Shutdown: no new work; deliveries in progress get a short while to report, then are
    /// abandoned (their messages are retried at the next start); write-backs complete.
    async fn stop(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        for state in self.destinations.values_mut() {
            state.queue.clear();
        }
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        while !self.workers.is_empty() {
            tokio::select! {
                Some(input) = rx.recv() => self.input(input),
                Some(ended) = self.workers.join_next_with_id() => self.worker_ended(ended),
                _ = &mut deadline => {
                    warn!(connections = self.workers.len(), "stopping deliveries still in progress");
                    self.workers.abort_all();
                    break;
                }
            }
        }
        while self.finishing.join_next().await.is_some() {}
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Submit(envelope, content) => {
                if self.schedule.busy_count() >= self.parts.limits.active {
                    // Memory is bounded: beyond the limit, new mail waits on disk.
                    self.schedule.set(envelope.id, 0);
                } else if self.schedule.claim(&envelope.id) {
                    self.activate(envelope, content);
                }
            }
            Input::Admin(command, reply) => self.admin(command, reply),
            Input::Wake => {}
            Input::Finished {
                destination,
                result,
                unreachable,
                next,
            } => {
                let now = self.parts.clock.now();
                let record_early = destination == Destination::Local;
                self.apply(result, now, record_early);
                let state = self.destinations.entry(destination.clone()).or_default();
                let job = match unreachable {
                    Some(diagnostic) => {
                        state.failures += 1;
                        state.dead_until = now + self.parts.policy.retry_delay(state.failures);
                        warn!(%destination, failures = state.failures, error = %diagnostic, "destination unreachable, backing off");
                        state.last_error = Some(diagnostic);
                        None
                    }
                    None => {
                        state.failures = 0;
                        state.queue.pop_front()
                    }
                };
                if let Err(Some(job)) = next.send(job) {
                    // The worker is gone: the job goes back to wait for another.
                    state.queue.push_front(job);
                }
                if !state.queue.is_empty() {
                    self.ready.insert(destination);
                }
            }
        }
    }

    /// A worker task ended (normally or not): its place is free again.
    fn worker_ended(
        &mut self,
        ended: Result<(tokio::task::Id, Destination), tokio::task::JoinError>,
    ) {
        let destination = match ended {
            Ok((id, destination)) => {
                self.worker_destinations.remove(&id);
                destination
            }
            Err(e) => {
                error!(error = %e, "delivery worker failed");
                match self.worker_destinations.remove(&e.id()) {
                    Some(destination) => destination,
                    None => return,
                }
            }
        };
        if destination != Destination::Local {
            self.remote_workers = self.remote_workers.saturating_sub(1);
        }
        if let Some(state) = self.destinations.get_mut(&destination) {
            state.workers = state.workers.saturating_sub(1);
            if !state.queue.is_empty() {
                self.ready.insert(destination);
            }
        }
    }

    fn admin(&mut self, command: AdminCommand, reply: oneshot::Sender<AdminReply>) {
        let now = self.parts.clock.now();
        let id = match &command {
            AdminCommand::Flush(None) => {
                let waiting = self.schedule.waiting();
                for id in &waiting {
                    self.schedule.set(*id, now);
                    self.forced.insert(*id);
                }
                // Busy ones are tried again as soon as they are back, if still due.
                let busy = self.schedule.busy();
                self.forced.extend(busy.iter().copied());
                for state in self.destinations.values_mut() {
                    state.dead_until = 0;
                }
                let _ = reply.send(Ok(format!(
                    "{} message(s) scheduled for delivery now, {} more once their current attempt is over",
                    waiting.len(),
                    busy.len()
                )));
                return;
            }
            AdminCommand::Flush(Some(id)) => {
                let answer = if self.schedule.is_waiting(id) {
                    self.schedule.set(*id, now);
                    self.forced.insert(*id);
                    for state in self.destinations.values_mut() {
                        state.dead_until = 0;
                    }
                    Ok(format!("{id} scheduled for delivery now"))
                } else if self.schedule.is_busy(id) {
                    self.forced.insert(*id);
                    Ok(format!(
                        "{id} is being delivered now; if it is still due after that, it is tried again at once"
                    ))
                } else {
                    Err(format!(
                        "{id} is not waiting for delivery (held, or not in the queue)"
                    ))
                };
                let _ = reply.send(answer);
                return;
            }
            AdminCommand::Hold(id)
            | AdminCommand::Release(id)
            | AdminCommand::Delete { id, .. }
            | AdminCommand::Bounce(id) => *id,
        };
        if !self.schedule.claim(&id) {
            let _ = reply.send(Err(format!(
                "{id} is being delivered; try again in a moment"
            )));
            return;
        }
        self.forced.remove(&id);
        let store = Arc::clone(&self.parts.store);
        let notifier = self.parts.notifier.clone();
        let policy = self.parts.policy.clone();
        self.finishing.spawn_blocking(move || {
            let (answer, next, notices) =
                admin_apply(store.as_ref(), &notifier, &policy, &command, now);
            let _ = reply.send(answer);
            vec![(id, next, notices)]
        });
    }

    /// Loads due messages and starts workers for destinations with waiting jobs.
    fn dispatch(&mut self, now: u64) {
        // Loads run just ahead of delivery: thousands at once would fill the blocking pool
        // and hold up the reads and write-backs of the deliveries themselves.
        while self.schedule.busy_count() < self.parts.limits.active
            && self.loads.len() < MAX_LOADING
        {
            let Some(id) = self.schedule.take_due(now) else {
                break;
            };
            let store = Arc::clone(&self.parts.store);
            self.loads.spawn_blocking(move || {
                let loaded = store.load(&id);
                (id, loaded)
            });
        }
        for destination in std::mem::take(&mut self.ready) {
            self.start_workers(destination, now);
        }
        self.write_back(now);
    }

    fn start_workers(&mut self, destination: Destination, now: u64) {
        let limits = &self.parts.limits;
        let local = destination == Destination::Local;
        let limit = if local {
            limits.local
        } else {
            limits.per_destination
        };
        let Some(state) = self.destinations.get_mut(&destination) else {
            return;
        };
        if !local && state.dead_until > now {
            let reason = state.last_error.clone();
            let jobs: Vec<Job> = state.queue.drain(..).collect();
            for job in jobs {
                self.defer_unattempted(job, &destination, reason.clone(), now);
            }
            return;
        }
        while state.workers < limit && (local || self.remote_workers < limits.remote) {
            let Some(job) = state.queue.pop_front() else {
                break;
            };
            state.workers += 1;
            if !local {
                self.remote_workers += 1;
            }
            let transport = if local {
                Arc::clone(&self.parts.local)
            } else {
                Arc::clone(&self.parts.remote)
            };
            let feed = Feed {
                destination: destination.clone(),
                tx: self.tx.clone(),
            };
            let run = transport.run(destination.clone(), job, feed);
            let owner = destination.clone();
            let handle = self.workers.spawn(async move {
                run.await;
                owner
            });
            self.worker_destinations
                .insert(handle.id(), destination.clone());
        }
        if !state.queue.is_empty() {
            self.ready.insert(destination);
        }
    }

    /// A job for a destination in back-off: every recipient is deferred without an attempt.
    fn defer_unattempted(
        &mut self,
        job: Job,
        destination: &Destination,
        reason: Option<Diagnostic>,
        now: u64,
    ) {
        let diagnostic = Diagnostic {
            status: reason.as_ref().map_or(Status::new(4, 4, 1), |r| r.status),
            text: format!(
                "{destination} is unreachable, not attempted{}",
                reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(" (last error: {})", r.text))
            ),
            remote_mta: reason.as_ref().and_then(|r| r.remote_mta.clone()),
            smtp_reply: reason.and_then(|r| r.smtp_reply),
        };
        let outcomes = job
            .recipients
            .iter()
            .map(|&index| (index, Outcome::Deferred(diagnostic.clone())))
            .collect();
        self.apply(
            JobResult {
                id: job.envelope.id,
                outcomes,
            },
            now,
            false,
        );
    }

    /// A loaded (or newly submitted) message: split its due recipients into jobs.
    fn activate(&mut self, envelope: Envelope, content: Option<Arc<[u8]>>) {
        let now = self.parts.clock.now();
        if envelope.hold {
            self.schedule.release(envelope.id, None);
            return;
        }
        let forced = self.forced.remove(&envelope.id);
        let mut groups: HashMap<Destination, Vec<usize>> = HashMap::new();
        for (index, recipient) in envelope.recipients.iter().enumerate() {
            let state = &recipient.state;
            if state.status == RecipientStatus::Pending && (forced || state.next_attempt <= now) {
                let destination = match recipient.route {
                    posthorn_spool::Route::Local { .. } => Destination::Local,
                    posthorn_spool::Route::Remote => {
                        self.parts.remote.destination(&envelope, index)
                    }
                };
                groups.entry(destination).or_default().push(index);
            }
        }
        if groups.is_empty() {
            let next = Policy::next_due(&envelope);
            if next.is_none() {
                // Nothing pending: a message whose removal was interrupted.
                self.finish(envelope, None);
            } else {
                self.schedule.release(envelope.id, next);
            }
            return;
        }
        let shared = Arc::new(envelope.clone());
        let content = content.filter(|c| self.cached + c.len() <= CONTENT_BUDGET);
        let cached = content.as_ref().map_or(0, |c| c.len());
        self.cached += cached;
        let mut outstanding = 0;
        for (destination, indexes) in groups {
            let size = if destination == Destination::Local {
                indexes.len()
            } else {
                self.parts.limits.recipients_per_transaction
            };
            let state = self.destinations.entry(destination.clone()).or_default();
            for chunk in indexes.chunks(size) {
                state.queue.push_back(Job {
                    envelope: Arc::clone(&shared),
                    recipients: chunk.to_vec(),
                    content: content.clone(),
                });
                outstanding += 1;
            }
            self.ready.insert(destination);
        }
        self.active.insert(
            envelope.id,
            Active {
                envelope,
                outstanding,
                cached,
                recorded: None,
            },
        );
    }

    fn load_failed(&mut self, id: QueueId, e: std::io::Error) {
        match e.kind() {
            std::io::ErrorKind::NotFound => self.schedule.release(id, None),
            std::io::ErrorKind::InvalidData => {
                error!(queue_id = %id, error = %e, "damaged queue file set aside");
                if let Err(e) = self.parts.store.quarantine(&id) {
                    error!(queue_id = %id, error = %e, "cannot set a damaged queue file aside");
                }
                self.schedule.release(id, None);
            }
            _ => {
                error!(queue_id = %id, error = %e, "cannot read a queued message");
                let retry = self.parts.clock.now() + self.parts.policy.retry_delay(1);
                self.schedule.release(id, Some(retry));
            }
        }
    }

    /// Records a job's outcomes; the last job of a message sends it to write-back. With
    /// `early`, outcomes that leave other jobs of the message still out are also written to
    /// the spool now (see `record_early`).
    fn apply(&mut self, result: JobResult, now: u64, early: bool) {
        let Some(active) = self.active.get_mut(&result.id) else {
            warn!(queue_id = %result.id, "result for a message not out for delivery");
            return;
        };
        let arrival = active.envelope.arrival;
        for (index, outcome) in result.outcomes {
            let Some(recipient) = active.envelope.recipients.get_mut(index) else {
                continue;
            };
            let (verdict, detail) = match &outcome {
                Outcome::Delivered { diagnostic, .. } => ("delivered", diagnostic.to_string()),
                Outcome::Deferred(diagnostic) => (DEFERRED, diagnostic.to_string()),
                Outcome::Failed(diagnostic) => ("failed", diagnostic.to_string()),
            };
            self.parts.policy.record(recipient, arrival, outcome, now);
            let verdict = match recipient.state.status {
                RecipientStatus::Expired => "expired",
                _ => verdict,
            };
            info!(
                queue_id = %result.id,
                recipient = %recipient.address,
                result = verdict,
                attempt = recipient.state.attempts,
                detail,
                "delivery"
            );
        }
        active.outstanding = active.outstanding.saturating_sub(1);
        if active.outstanding > 0 {
            if early {
                record_early(active, &self.parts.store);
            }
        } else if let Some(active) = self.active.remove(&result.id) {
            self.cached -= active.cached;
            self.finish(active.envelope, active.recorded);
        }
    }

    /// A message's attempt is over: it is written back with the others of this pass.
    fn finish(&mut self, envelope: Envelope, recorded: Option<Recorded>) {
        self.to_write_back.push((envelope, recorded));
    }

    /// Writes back every message whose attempt ended in this pass, on one blocking thread:
    /// for each, the notices it owes first, then its state (or its removal).
    fn write_back(&mut self, now: u64) {
        if self.to_write_back.is_empty() {
            return;
        }
        let batch: Vec<(Envelope, Option<Recorded>, Vec<usize>)> =
            std::mem::take(&mut self.to_write_back)
                .into_iter()
                .map(|(envelope, recorded)| {
                    let delayed = self.parts.policy.delay_notice(&envelope, now);
                    (envelope, recorded, delayed)
                })
                .collect();
        let store = Arc::clone(&self.parts.store);
        let notifier = self.parts.notifier.clone();
        let lifetime = self.parts.policy.max_lifetime;
        self.finishing.spawn_blocking(move || {
            batch
                .into_iter()
                .map(|(mut envelope, recorded, delayed)| {
                    if let Some(recorded) = recorded {
                        // Already written or failed either way; only the order matters.
                        let _ = recorded.blocking_recv();
                    }
                    let retry_until = envelope.arrival + lifetime;
                    let notices = notifier.write_owed(&mut envelope, &delayed, retry_until, now);
                    let id = envelope.id;
                    if envelope.is_complete() {
                        if let Err(e) = store.remove(&id) {
                            error!(queue_id = %id, error = %e, "cannot remove a finished message");
                        }
                        return (id, None, notices);
                    }
                    if let Err(e) = store.save_state(&envelope) {
                        // The attempt stands; a restart may repeat it, never lose a message.
                        error!(queue_id = %id, error = %e, "cannot record delivery state");
                    }
                    (id, Policy::next_due(&envelope), notices)
                })
                .collect()
        });
    }
}

/// Writes the state of a message that still has jobs out, on a blocking thread: the local
/// deliveries just reported are then not repeated after a crash, however long a remote
/// recipient of the same message keeps it waiting (DNS, a slow server). Only local results
/// are recorded this way: they come back in milliseconds, and a message with local and
/// remote recipients costs one extra state write, while messages with one destination keep
/// the single write-back of the common case. The spool's `save_state` is atomic and
/// durable, and group-committed with other writes. Chained after the message's previous
/// early record, as both write the same file.
fn record_early(active: &mut Active, store: &Arc<dyn QueueStore>) {
    let envelope = active.envelope.clone();
    let previous = active.recorded.take();
    let (done, recorded) = oneshot::channel();
    active.recorded = Some(recorded);
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        if let Some(previous) = previous {
            let _ = previous.blocking_recv();
        }
        if let Err(e) = store.save_state(&envelope) {
            // The outcome is written again at the write-back; a crash before it may repeat
            // these deliveries, as before.
            error!(queue_id = %envelope.id, error = %e, "cannot record local delivery state");
        }
        let _ = done.send(());
    });
}

/// Carries out a hold, release, delete or bounce on a message the manager has claimed.
/// Returns the answer, when the message is next due, and the notices written. Blocking.
fn admin_apply(
    store: &dyn QueueStore,
    notifier: &Notifier,
    policy: &Policy,
    command: &AdminCommand,
    now: u64,
) -> (AdminReply, Option<u64>, Vec<Envelope>) {
    let id = match command {
        AdminCommand::Hold(id)
        | AdminCommand::Release(id)
        | AdminCommand::Delete { id, .. }
        | AdminCommand::Bounce(id) => id,
        AdminCommand::Flush(_) => {
            return (Err("flush is not a stored change".into()), None, Vec::new());
        }
    };
    let mut envelope = match store.load(id) {
        Ok(envelope) => envelope,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Err(format!("{id} is not in the queue")), None, Vec::new());
        }
        Err(e) => return (Err(format!("cannot read {id}: {e}")), None, Vec::new()),
    };
    let due = |envelope: &Envelope| {
        if envelope.hold {
            None
        } else {
            Policy::next_due(envelope)
        }
    };
    let saved = |envelope: &Envelope, text: String| match store.save_state(envelope) {
        Ok(()) => Ok(text),
        Err(e) => Err(format!("cannot record the change: {e}")),
    };
    match command {
        AdminCommand::Hold(_) if envelope.hold => {
            (Ok(format!("{id} was already held")), None, Vec::new())
        }
        AdminCommand::Hold(_) => {
            envelope.hold = true;
            (saved(&envelope, format!("{id} held")), None, Vec::new())
        }
        AdminCommand::Release(_) if !envelope.hold => {
            (Err(format!("{id} is not held")), due(&envelope), Vec::new())
        }
        AdminCommand::Release(_) => {
            envelope.hold = false;
            for recipient in &mut envelope.recipients {
                recipient.state.next_attempt = recipient.state.next_attempt.min(now);
            }
            let answer = saved(&envelope, format!("{id} released"));
            (answer, due(&envelope), Vec::new())
        }
        AdminCommand::Delete { .. } | AdminCommand::Bounce(..) => {
            let silent = matches!(command, AdminCommand::Delete { silent: true, .. });
            let diagnostic = Diagnostic {
                status: Status::new(5, 0, 0),
                text: if matches!(command, AdminCommand::Bounce(_)) {
                    "returned to the sender by the mail administrator".into()
                } else {
                    "deleted by the mail administrator".into()
                },
                remote_mta: None,
                smtp_reply: None,
            };
            let failed = policy.fail_pending(&mut envelope, &diagnostic, now);
            let notices = if silent {
                Vec::new()
            } else {
                notifier.write_owed(&mut envelope, &[], now, now)
            };
            match store.remove(id) {
                Ok(()) => {
                    let told = if notices.is_empty() {
                        "no notice sent"
                    } else {
                        "sender notified"
                    };
                    (
                        Ok(format!(
                            "{id} removed ({failed} recipient(s) failed, {told})"
                        )),
                        None,
                        notices,
                    )
                }
                Err(e) => (
                    Err(format!("cannot remove {id}: {e}")),
                    due(&envelope),
                    notices,
                ),
            }
        }
        AdminCommand::Flush(_) => (Err("flush is not a stored change".into()), None, Vec::new()),
    }
}
