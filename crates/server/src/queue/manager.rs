//! The manager's loop: the one owner of queue state (see the module above for the whole
//! story).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use posthorn_proto::Status;
use posthorn_spool::{Diagnostic, Envelope, QueueId, QueueStore, RecipientStatus};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::backoff::DestinationState;
use super::commands::admin_apply;
use super::flow::Ticket;
use super::policy::{Outcome, Policy};
use super::schedule::Schedule;
use super::{AdminCommand, AdminReply, DEFERRED, Destination, Feed, Input, Job, JobResult, Parts};

/// Spool reads of due messages in flight at once.
const MAX_LOADING: usize = 32;
/// Octets of message content kept in memory for deliveries in progress; beyond it, they
/// read the spool.
const CONTENT_BUDGET: usize = 64 << 20;
/// A write-back starts only while fewer blocking tasks than this finish messages (write-
/// backs, and operator commands, which are never held back). While one runs, the attempts
/// that end gather for the next: under load one blocking task removes many messages, where
/// one task each cost a handoff to the blocking pool per message.
const MAX_FINISHING: usize = 1;

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

pub(super) struct Manager {
    parts: Parts,
    tx: mpsc::UnboundedSender<Input>,
    schedule: Schedule,
    active: HashMap<QueueId, Active>,
    /// Inflow tickets of new messages whose first attempt is not over yet.
    tickets: HashMap<QueueId, Ticket>,
    destinations: HashMap<Destination, DestinationState>,
    ready: HashSet<Destination>,
    /// Messages flushed by the operator: every pending recipient is due at activation.
    forced: HashSet<QueueId>,
    remote_workers: usize,
    workers: JoinSet<Destination>,
    worker_destinations: HashMap<tokio::task::Id, Destination>,
    loads: JoinSet<(QueueId, std::io::Result<Envelope>)>,
    finishing: JoinSet<Vec<WriteBack>>,
    /// Messages whose attempt is over, written back together once the write-back before
    /// is done, each after its early state record, if one is still being written.
    to_write_back: Vec<(Envelope, Option<Recorded>)>,
    /// Octets of content held in memory for deliveries.
    cached: usize,
}

/// A message written back: when it is next due (none when it left the queue) and the
/// notices it produced.
type WriteBack = (QueueId, Option<u64>, Vec<Envelope>);

impl Manager {
    pub(super) fn new(parts: Parts, tx: mpsc::UnboundedSender<Input>) -> Manager {
        Manager {
            parts,
            tx: tx.clone(),
            schedule: Schedule::default(),
            active: HashMap::new(),
            tickets: HashMap::new(),
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
        }
    }

    pub(super) async fn run(
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
        // Attempts that ended meanwhile are written back too: a delivery left unrecorded
        // would be repeated at the next start.
        let now = self.parts.clock.now();
        loop {
            self.write_back(now);
            if self.finishing.join_next().await.is_none() {
                break;
            }
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Submit(envelope, content, ticket) => {
                if let Some(ticket) = ticket {
                    self.tickets.insert(envelope.id, ticket);
                }
                self.admit(envelope, content);
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
                        let error = diagnostic.to_string();
                        let failures = state.unreachable(diagnostic, &self.parts.policy, now);
                        warn!(%destination, failures, error = %error, "destination unreachable, backing off");
                        None
                    }
                    None => {
                        state.reached();
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
                    state.revive();
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
                        state.revive();
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
        // An operator's hand on a new message ends its wait for a first attempt.
        self.tickets.remove(&id);
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
        if !local && let Some(reason) = state.backed_off(now) {
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
                spawned: Vec::new(),
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
        // Recipients an alias forwarded leave in transactions of their own: their MAIL FROM
        // may be rewritten for the forwarding domain (SRS).
        let mut groups: HashMap<(Destination, Option<String>), Vec<usize>> = HashMap::new();
        for (index, recipient) in envelope.recipients.iter().enumerate() {
            let state = &recipient.state;
            if state.status == RecipientStatus::Pending && (forced || state.next_attempt <= now) {
                let destination = match recipient.route {
                    posthorn_spool::Route::Local { .. } => Destination::Local,
                    posthorn_spool::Route::Remote => {
                        self.parts.remote.destination(&envelope, index)
                    }
                };
                groups
                    .entry((destination, recipient.forwarder_domain()))
                    .or_default()
                    .push(index);
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
        for ((destination, _), indexes) in groups {
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

    /// Takes on a new message (submitted, or written by a delivery): attempted now, or
    /// left waiting on disk while the active set is full.
    fn admit(&mut self, envelope: Envelope, content: Option<Arc<[u8]>>) {
        if self.schedule.busy_count() >= self.parts.limits.active {
            // Memory is bounded: beyond the limit, new mail waits on disk.
            self.schedule.set(envelope.id, 0);
        } else if self.schedule.claim(&envelope.id) {
            self.activate(envelope, content);
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
        let outstanding = active.outstanding;
        for spawned in result.spawned {
            info!(queue_id = %result.id, new_id = %spawned.id, "delivery wrote a new message");
            self.admit(spawned, None);
        }
        let Some(active) = self.active.get_mut(&result.id) else {
            return;
        };
        if outstanding > 0 {
            if early {
                record_early(active, &self.parts.store);
            }
        } else if let Some(active) = self.active.remove(&result.id) {
            self.cached -= active.cached;
            self.finish(active.envelope, active.recorded);
        }
    }

    /// A message's attempt is over: it is written back with the others of its batch, and
    /// the inflow ticket it came in with, if this was its first, goes back.
    fn finish(&mut self, envelope: Envelope, recorded: Option<Recorded>) {
        self.tickets.remove(&envelope.id);
        self.to_write_back.push((envelope, recorded));
    }

    /// Writes back every message whose attempt ended since the last write-back, on one
    /// blocking thread once the one before is done (see [`MAX_FINISHING`]): for each, the
    /// notices it owes first, then its state (or its removal).
    fn write_back(&mut self, now: u64) {
        if self.to_write_back.is_empty() || self.finishing.len() >= MAX_FINISHING {
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
