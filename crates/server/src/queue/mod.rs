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
pub mod flow;
mod manager;
pub mod policy;
mod schedule;
mod transport;

use std::sync::Arc;

use posthorn_spool::{Diagnostic, Envelope, QueueId, QueueStore};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::delivery::dsn::Notifier;
use flow::Ticket;
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
    /// content if the caller still holds it (which spares the delivery a read of the spool)
    /// and the inflow ticket it was taken in with, given back after that attempt.
    pub fn submit(&self, envelope: Envelope, content: Option<Arc<[u8]>>, ticket: Option<Ticket>) {
        // Only fails at shutdown; the message is then picked up at the next start.
        let _ = self.tx.send(Input::Submit(envelope, content, ticket));
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
    Submit(Envelope, Option<Arc<[u8]>>, Option<Ticket>),
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

#[cfg(test)]
mod tests {
    //! The manager driven as the server drives it, through `start` and its handle: a real
    //! spool in a temporary folder, a clock the test sets, and a transport that lends every
    //! job to the test and reports the outcome the test chooses.

    use std::collections::HashMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use posthorn_proto::{Mailbox, ReversePath, Status};
    use posthorn_spool::{FsQueueStore, Recipient, RecipientStatus, Route};
    use tempfile::TempDir;

    use super::*;
    use crate::accounts::users::LiveDirectory;
    use crate::config::parse;
    use crate::queue::policy::Outcome;

    const START: u64 = 1_800_000_000;
    /// How long any awaited event may take before the test fails.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// A clock the test sets.
    struct ManualClock(AtomicU64);

    impl Clock for ManualClock {
        fn now(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// What the test answers for a job: one outcome for all its recipients, and whether the
    /// destination could not be reached at all.
    type Answer = (Outcome, Option<Diagnostic>);

    /// A job the test transport was lent, waiting for the test's answer.
    struct Attempt {
        destination: Destination,
        id: QueueId,
        recipients: Vec<usize>,
        answer: oneshot::Sender<Answer>,
    }

    impl Attempt {
        fn delivered(self) {
            let outcome = Outcome::Delivered {
                diagnostic: diagnostic(Status::new(2, 0, 0), "250 ok"),
                dsn: None,
            };
            let _ = self.answer.send((outcome, None));
        }

        fn deferred(self) {
            let why = diagnostic(Status::new(4, 2, 0), "451 try later");
            let _ = self.answer.send((Outcome::Deferred(why), None));
        }

        /// The destination could not be reached: every recipient deferred, and the feed told.
        fn unreachable(self) {
            let why = diagnostic(Status::new(4, 4, 1), "connection refused");
            let _ = self
                .answer
                .send((Outcome::Deferred(why.clone()), Some(why)));
        }
    }

    fn diagnostic(status: Status, text: &str) -> Diagnostic {
        Diagnostic {
            status,
            text: text.into(),
            remote_mta: None,
            smtp_reply: None,
        }
    }

    /// Lends every job to the test through a channel and reports the test's answer; the
    /// destination of a remote recipient is its domain's MX. Counts the connections
    /// (workers) open per destination: now, and the most at once.
    struct TestTransport {
        attempts: mpsc::UnboundedSender<Attempt>,
        open: Mutex<HashMap<Destination, (usize, usize)>>,
    }

    impl TestTransport {
        /// Hands `job` to the test; the receiver gets the test's answer.
        fn lend(&self, destination: &Destination, job: &Job) -> oneshot::Receiver<Answer> {
            let (answer, answered) = oneshot::channel();
            let _ = self.attempts.send(Attempt {
                destination: destination.clone(),
                id: job.envelope.id,
                recipients: job.recipients.clone(),
                answer,
            });
            answered
        }

        /// Connections open to `destination` now, and the most ever open at once.
        fn open(&self, destination: &Destination) -> (usize, usize) {
            let open = self.open.lock().unwrap();
            open.get(destination).copied().unwrap_or_default()
        }
    }

    impl Transport for TestTransport {
        fn run(
            self: Arc<Self>,
            destination: Destination,
            job: Job,
            feed: Feed,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            // Counted and lent while the manager is still dispatching: once the test has seen
            // the manager handle an input, it sees every connection opened before it.
            {
                let mut open = self.open.lock().unwrap();
                let (now, most) = open.entry(destination.clone()).or_default();
                *now += 1;
                *most = (*most).max(*now);
            }
            let mut answered = self.lend(&destination, &job);
            Box::pin(async move {
                let (mut id, mut recipients) = (job.envelope.id, job.recipients);
                while let Ok((outcome, unreachable)) = answered.await {
                    let outcomes = recipients.iter().map(|&i| (i, outcome.clone())).collect();
                    let Some(next) = feed
                        .next(
                            JobResult {
                                id,
                                outcomes,
                                spawned: Vec::new(),
                            },
                            unreachable,
                        )
                        .await
                    else {
                        break;
                    };
                    answered = self.lend(&destination, &next);
                    (id, recipients) = (next.envelope.id, next.recipients);
                }
                self.open.lock().unwrap().get_mut(&destination).unwrap().0 -= 1;
            })
        }

        fn destination(&self, envelope: &Envelope, index: usize) -> Destination {
            Destination::Mx(envelope.recipients[index].address.domain.clone())
        }
    }

    /// A running manager over a spool in a temporary folder, with the test transport for
    /// local and remote recipients alike.
    struct Harness {
        _dir: TempDir,
        store: Arc<dyn QueueStore>,
        clock: Arc<ManualClock>,
        transport: Arc<TestTransport>,
        attempts: mpsc::UnboundedReceiver<Attempt>,
        handle: QueueHandle,
        stop: watch::Sender<bool>,
        /// The manager's task, which ends once it has stopped.
        task: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        /// Retries after 60 s, 300 s, then 900 s; no delay notices.
        fn start(per_destination: usize) -> Harness {
            let dir = tempfile::tempdir().unwrap();
            let config = parse(
                &format!(
                    "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n",
                    dir.path().display()
                ),
                None,
            )
            .unwrap();
            let directory = LiveDirectory::load(&config).unwrap();
            let store: Arc<dyn QueueStore> =
                Arc::new(FsQueueStore::open(dir.path().join("queue")).unwrap());
            let clock = Arc::new(ManualClock(AtomicU64::new(START)));
            let (tx, attempts) = mpsc::unbounded_channel();
            let transport = Arc::new(TestTransport {
                attempts: tx,
                open: Mutex::new(HashMap::new()),
            });
            let parts = Parts {
                store: Arc::clone(&store),
                notifier: Notifier::new(
                    Arc::clone(&store),
                    directory,
                    "mx.test".into(),
                    true,
                    None,
                ),
                policy: Policy {
                    retry_schedule: [60, 300, 900].map(Duration::from_secs).to_vec(),
                    max_lifetime: 5 * 86_400,
                    delay_warning: 0,
                },
                clock: clock.clone(),
                local: transport.clone(),
                remote: transport.clone(),
                limits: Limits {
                    local: 2,
                    remote: 10,
                    per_destination,
                    recipients_per_transaction: 50,
                    active: 100,
                },
            };
            let (stop, shutdown) = watch::channel(false);
            let recovered = store.recover().unwrap();
            let (handle, task) = start(parts, recovered, shutdown);
            Harness {
                _dir: dir,
                store,
                clock,
                transport,
                attempts,
                handle,
                stop,
                task,
            }
        }

        /// Commits a message from postmaster@localhost to the remote `recipients` and
        /// hands it to the manager, as a session does.
        async fn submit(&self, recipients: &[&str]) -> QueueId {
            let id = self.store.new_id();
            let sender = Mailbox {
                local: "postmaster".into(),
                domain: "localhost".into(),
            };
            let recipients = recipients
                .iter()
                .map(|address| {
                    let (local, domain) = address.split_once('@').unwrap();
                    let address = Mailbox {
                        local: local.into(),
                        domain: domain.into(),
                    };
                    Recipient::new(address, Route::Remote)
                })
                .collect();
            let envelope = Envelope::new(id, ReversePath::Mailbox(sender), recipients, START);
            let content = b"Subject: test\r\n\r\nbody\r\n".to_vec();
            let writer = self.store.writer(id).unwrap();
            writer
                .commit(content.clone(), &envelope)
                .durable()
                .await
                .unwrap();
            self.handle.submit(envelope, Some(content.into()), None);
            id
        }

        /// The next job lent to the transport.
        async fn attempt(&mut self) -> Attempt {
            tokio::time::timeout(PATIENCE, self.attempts.recv())
                .await
                .expect("timed out waiting for an attempt")
                .unwrap()
        }

        /// True when a job was lent that the test has not taken.
        fn attempted(&mut self) -> bool {
            self.attempts.try_recv().is_ok()
        }

        /// Returns once the manager has handled every input sent before: its answer to a
        /// question that changes nothing (flushing a message that is not in the queue).
        async fn settled(&self) {
            let stranger = self.store.new_id();
            let answer = self.handle.admin(AdminCommand::Flush(Some(stranger))).await;
            assert!(answer.is_err(), "{answer:?}");
        }

        /// Sets the clock and tells the manager.
        fn set_clock(&self, time: u64) {
            self.clock.0.store(time, Ordering::SeqCst);
            self.handle.wake();
        }

        /// Runs an admin command, again while the message is busy (as an operator would).
        async fn admin(&self, command: AdminCommand) -> AdminReply {
            let started = Instant::now();
            loop {
                match self.handle.admin(command.clone()).await {
                    Err(e) if e.ends_with("try again in a moment") => {}
                    answer => return answer,
                }
                assert!(started.elapsed() < PATIENCE, "{command} stayed busy");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        /// The spooled envelope of `id` once `ready` holds for it.
        async fn spooled(&self, id: QueueId, ready: impl Fn(&Envelope) -> bool) -> Envelope {
            eventually(&format!("the spooled state of {id}"), || {
                self.store.load(&id).ok().filter(|e| ready(e))
            })
            .await
        }

        /// Returns once `id` has left the spool.
        async fn gone(&self, id: QueueId) {
            eventually(&format!("{id} to leave the spool"), || {
                match self.store.load(&id) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(()),
                    _ => None,
                }
            })
            .await;
        }
    }

    /// Polls `probe` until it gives a value; the manager writes the spool meanwhile.
    async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = probe() {
                return value;
            }
            assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn mx(domain: &str) -> Destination {
        Destination::Mx(domain.into())
    }

    #[tokio::test]
    async fn a_submitted_message_is_lent_to_its_transport_and_leaves_the_spool_once_delivered() {
        let mut h = Harness::start(1);
        let id = h.submit(&["user@remote.test"]).await;
        let attempt = h.attempt().await;
        assert_eq!(
            (
                &attempt.destination,
                attempt.id,
                attempt.recipients.as_slice()
            ),
            (&mx("remote.test"), id, [0].as_slice())
        );
        assert!(h.store.load(&id).is_ok(), "still spooled while out");
        attempt.delivered();
        h.gone(id).await;
        h.settled().await;
        assert!(!h.attempted(), "delivered once");
    }

    #[tokio::test]
    async fn an_attempt_that_ends_while_the_queue_stops_is_written_back() {
        let mut h = Harness::start(1);
        let id = h.submit(&["user@remote.test"]).await;
        let attempt = h.attempt().await;
        h.stop.send(true).unwrap();
        attempt.delivered();
        tokio::time::timeout(PATIENCE, h.task)
            .await
            .expect("the manager stops")
            .unwrap();
        let left = h.store.load(&id).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(
            left,
            Err(std::io::ErrorKind::NotFound),
            "delivered, so removed"
        );
    }

    #[tokio::test]
    async fn a_deferred_recipient_is_written_back_and_tried_again_when_the_clock_reaches_it() {
        let mut h = Harness::start(1);
        let id = h.submit(&["user@remote.test"]).await;
        h.attempt().await.deferred();
        let first = h.spooled(id, |e| e.recipients[0].state.attempts == 1).await;
        let state = &first.recipients[0].state;
        assert_eq!(state.status, RecipientStatus::Pending);
        assert_eq!(
            state.next_attempt,
            START + 60,
            "the first step of the schedule"
        );
        assert_eq!(state.last_attempt, Some(START));
        assert_eq!(state.diagnostic.as_ref().unwrap().text, "451 try later");

        h.set_clock(START + 59);
        h.settled().await;
        assert!(!h.attempted(), "not due yet");

        h.set_clock(START + 60);
        let again = h.attempt().await;
        assert_eq!(
            (again.id, again.recipients.as_slice()),
            (id, [0].as_slice())
        );
        again.deferred();
        let second = h.spooled(id, |e| e.recipients[0].state.attempts == 2).await;
        assert_eq!(
            second.recipients[0].state.next_attempt,
            START + 60 + 300,
            "the second step of the schedule"
        );
    }

    #[tokio::test]
    async fn recipients_for_two_destinations_are_two_jobs_written_back_together() {
        let mut h = Harness::start(1);
        let id = h.submit(&["x@a.test", "y@b.test"]).await;
        let mut jobs = vec![h.attempt().await, h.attempt().await];
        jobs.sort_by_key(|a| a.recipients.clone());
        let lent: Vec<_> = jobs
            .iter()
            .map(|a| (a.destination.clone(), a.id, a.recipients.clone()))
            .collect();
        assert_eq!(
            lent,
            [(mx("a.test"), id, vec![0]), (mx("b.test"), id, vec![1])]
        );
        let b = jobs.pop().unwrap();
        jobs.pop().unwrap().delivered();
        h.settled().await;
        b.deferred();

        // One write-back holds both outcomes.
        let state = h.spooled(id, |e| e.recipients[1].state.attempts == 1).await;
        assert_eq!(state.recipients[0].state.status, RecipientStatus::Delivered);
        assert_eq!(state.recipients[1].state.status, RecipientStatus::Pending);

        // Only the pending recipient is tried again; its delivery finishes the message.
        h.set_clock(START + 60);
        let retry = h.attempt().await;
        assert_eq!(
            (&retry.destination, retry.recipients.as_slice()),
            (&mx("b.test"), [1].as_slice())
        );
        retry.delivered();
        h.gone(id).await;
        h.settled().await;
        assert!(!h.attempted());
    }

    #[tokio::test]
    async fn an_unreachable_destination_is_backed_off_and_its_next_job_deferred_unattempted() {
        let mut h = Harness::start(1);
        let first = h.submit(&["a@dead.test"]).await;
        let second = h.submit(&["b@dead.test"]).await;
        let attempt = h.attempt().await;
        assert_eq!(attempt.id, first);
        h.settled().await;
        attempt.unreachable();

        let waited = h
            .spooled(second, |e| e.recipients[0].state.attempts == 1)
            .await;
        let state = &waited.recipients[0].state;
        assert_eq!(state.status, RecipientStatus::Pending);
        assert_eq!(state.next_attempt, START + 60);
        let why = state.diagnostic.as_ref().unwrap();
        assert_eq!(why.status, Status::new(4, 4, 1));
        assert_eq!(
            why.text,
            "mx:dead.test is unreachable, not attempted (last error: connection refused)"
        );
        h.spooled(first, |e| e.recipients[0].state.attempts == 1)
            .await;
        h.settled().await;
        assert!(
            !h.attempted(),
            "the second job was not lent to a connection"
        );

        // The back-off ends with its step of the schedule: both are attempted again.
        h.set_clock(START + 60);
        let mut tried = Vec::new();
        for _ in 0..2 {
            let attempt = h.attempt().await;
            tried.push(attempt.id);
            attempt.delivered();
        }
        tried.sort();
        assert_eq!(tried, [first, second]);
        h.gone(first).await;
        h.gone(second).await;
    }

    #[tokio::test]
    async fn hold_release_and_delete_act_on_a_waiting_message() {
        let mut h = Harness::start(1);
        let id = h.submit(&["user@remote.test"]).await;
        h.attempt().await.deferred();
        h.spooled(id, |e| e.recipients[0].state.attempts == 1).await;

        assert_eq!(
            h.admin(AdminCommand::Hold(id)).await,
            Ok(format!("{id} held"))
        );
        assert!(h.store.load(&id).unwrap().hold);
        // Due now, but held: once the hold is written back, the manager no longer has it
        // scheduled (a flush asked for before that finds it busy, and changes nothing).
        h.set_clock(START + 60);
        let started = Instant::now();
        let flush = loop {
            match h.handle.admin(AdminCommand::Flush(Some(id))).await {
                Ok(busy) if busy.contains("being delivered") && started.elapsed() < PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                answer => break answer,
            }
        };
        assert_eq!(
            flush,
            Err(format!(
                "{id} is not waiting for delivery (held, or not in the queue)"
            ))
        );
        assert!(!h.attempted(), "a held message is not attempted");

        assert_eq!(
            h.admin(AdminCommand::Release(id)).await,
            Ok(format!("{id} released"))
        );
        assert!(!h.store.load(&id).unwrap().hold);
        let released = h.attempt().await;
        assert_eq!(released.id, id, "released, it is due at once");
        released.deferred();
        h.spooled(id, |e| e.recipients[0].state.attempts == 2).await;

        assert_eq!(
            h.admin(AdminCommand::Delete { id, silent: false }).await,
            Ok(format!(
                "{id} removed (1 recipient(s) failed, sender notified)"
            ))
        );
        h.gone(id).await;
        // The sender is told, by a bounce into its local mailbox.
        let bounce = h.attempt().await;
        assert_eq!(bounce.destination, Destination::Local);
        let notice = h.store.load(&bounce.id).unwrap();
        assert_eq!(notice.sender, ReversePath::Null);
        assert_eq!(
            notice.recipients[0].address.to_string(),
            "postmaster@localhost"
        );
        let mut content = String::new();
        std::io::Read::read_to_string(
            &mut h.store.content(&bounce.id).unwrap().reader,
            &mut content,
        )
        .unwrap();
        assert!(
            content.contains("deleted by the mail administrator"),
            "{content}"
        );
    }

    #[tokio::test]
    async fn no_destination_gets_more_connections_than_per_destination() {
        let mut h = Harness::start(2);
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(h.submit(&["user@busy.test"]).await);
        }
        ids.push(h.submit(&["user@other.test"]).await);
        h.settled().await;
        assert_eq!(h.transport.open(&mx("busy.test")).0, 2, "two at once");
        assert_eq!(
            h.transport.open(&mx("other.test")).0,
            1,
            "the limit is per destination"
        );

        let mut delivered = Vec::new();
        while delivered.len() < ids.len() {
            let attempt = h.attempt().await;
            delivered.push(attempt.id);
            attempt.delivered();
            h.settled().await;
            assert!(h.transport.open(&mx("busy.test")).0 <= 2);
        }
        delivered.sort();
        ids.sort();
        assert_eq!(delivered, ids, "each message lent once");
        assert_eq!(
            h.transport.open(&mx("busy.test")).1,
            2,
            "never more than two"
        );
        for id in ids {
            h.gone(id).await;
        }
    }
}
