//! The queue manager over a message's whole life, on an injected clock: a remote
//! destination that always answers "try later", and the manager's real schedule, delay
//! notice, expiry and bounce, five days played in well under a second of real time. The
//! binary has no clock but the system's, so message lifetimes are tested here, where
//! nothing waits on real time and the end of a life is an event (the message leaving the
//! spool), not a pause.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use posthorn::accounts::users::LiveDirectory;
use posthorn::clock::Clock;
use posthorn::config::parse;
use posthorn::delivery::dsn::Notifier;
use posthorn::delivery::local::LocalTransport;
use posthorn::queue::policy::{Outcome, Policy};
use posthorn::queue::{
    self, Destination, Feed, Job, JobResult, Limits, Parts, QueueHandle, Transport,
};
use posthorn_proto::{Mailbox, Notify, ReversePath, Status};
use posthorn_spool::{Diagnostic, Envelope, FsQueueStore, QueueId, QueueStore, Recipient, Route};

const START: u64 = 1_800_000_000;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// A clock the test sets.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A remote destination that never takes anything; records when it was asked.
struct AlwaysLater {
    clock: Arc<ManualClock>,
    attempts: Mutex<Vec<u64>>,
}

impl Transport for AlwaysLater {
    fn run(
        self: Arc<Self>,
        _destination: Destination,
        job: Job,
        feed: Feed,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut next = Some(job);
            while let Some(job) = next {
                self.attempts.lock().unwrap().push(self.clock.now() - START);
                let why = Diagnostic {
                    status: Status::new(4, 2, 0),
                    text: "try later".into(),
                    remote_mta: Some("mx.remote.test".into()),
                    smtp_reply: Some("451 4.2.0 try later".into()),
                };
                let outcomes = job
                    .recipients
                    .iter()
                    .map(|&i| (i, Outcome::Deferred(why.clone())))
                    .collect();
                let result = JobResult {
                    id: job.envelope.id,
                    outcomes,
                    spawned: Vec::new(),
                };
                next = feed.next(result, None).await;
            }
        })
    }

    fn destination(&self, _envelope: &Envelope, _index: usize) -> Destination {
        Destination::Mx("remote.test".into())
    }
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The real queue manager, spool, notifier and local delivery in a temporary folder, with
/// the remote destination always saying "try later" and a clock the test moves.
struct Life {
    dir: tempfile::TempDir,
    store: Arc<dyn QueueStore>,
    clock: Arc<ManualClock>,
    remote: Arc<AlwaysLater>,
    handle: QueueHandle,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Life {
    /// Retries after 1, 5, 15, 30, 60 minutes, then every 2 hours; a delay notice after 4
    /// hours; given up after 5 days.
    fn start() -> Life {
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
        let remote = Arc::new(AlwaysLater {
            clock: Arc::clone(&clock),
            attempts: Mutex::new(Vec::new()),
        });
        let parts = Parts {
            store: Arc::clone(&store),
            notifier: Notifier::new(
                Arc::clone(&store),
                Arc::clone(&directory),
                "mx.test".into(),
                true,
                None,
            ),
            policy: Policy {
                retry_schedule: [60, 300, 900, 1800, 3600, 7200]
                    .map(Duration::from_secs)
                    .to_vec(),
                max_lifetime: 5 * DAY,
                delay_warning: 4 * HOUR,
            },
            clock: clock.clone(),
            local: Arc::new(LocalTransport::new(
                Arc::clone(&store),
                Arc::clone(&directory),
                "mx.test".into(),
                50,
                None,
                None,
            )),
            remote: remote.clone(),
            limits: Limits {
                local: 2,
                remote: 2,
                per_destination: 1,
                recipients_per_transaction: 50,
                active: 100,
            },
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let recovered = store.recover().unwrap();
        let (handle, _task) = queue::start(parts, recovered, shutdown);
        Life {
            dir,
            store,
            clock,
            remote,
            handle,
            _stop: stop,
        }
    }

    /// Queues a message from the local postmaster to `user@remote.test` with `notify` as
    /// its NOTIFY parameter (none given: the default, failures and delays).
    async fn submit(&self, notify: Option<Notify>) -> QueueId {
        let id = self.store.new_id();
        let sender = Mailbox {
            local: "postmaster".into(),
            domain: "localhost".into(),
        };
        let user = Mailbox {
            local: "user".into(),
            domain: "remote.test".into(),
        };
        let recipient = Recipient {
            notify,
            ..Recipient::new(user, Route::Remote)
        };
        let envelope = Envelope::new(id, ReversePath::Mailbox(sender), vec![recipient], START);
        let content = b"Subject: doomed\r\n\r\nbody\r\n".to_vec();
        let writer = self.store.writer(id).unwrap();
        writer.commit(content, &envelope).durable().await.unwrap();
        self.handle.submit(envelope, None, None);
        id
    }

    /// Jumps the clock to each next attempt the manager records for message `id`, until the
    /// message has left the spool; returns the times of the attempts, from arrival.
    fn live_out(&self, id: QueueId) -> Vec<u64> {
        let mut seen = 0;
        loop {
            seen = wait_for("an attempt", || {
                let n = self.remote.attempts.lock().unwrap().len();
                (n > seen).then_some(n)
            });
            let next = wait_for("the state of the attempt", || match self.store.load(&id) {
                Ok(e) if e.recipients[0].state.attempts as usize == seen => {
                    Some(Some(e.recipients[0].state.next_attempt))
                }
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
                Err(e) => panic!("{e}"),
            });
            let Some(next) = next else { break };
            self.clock.0.store(next, Ordering::SeqCst);
            self.handle.wake();
        }
        self.remote.attempts.lock().unwrap().clone()
    }

    /// The notices in the postmaster's Maildir once the spool is empty. A notice is written
    /// to the spool before the message that owes it leaves, and leaves the spool only once
    /// delivered: with the spool empty, every notice there will ever be is in the Maildir.
    fn final_notices(&self) -> Vec<String> {
        wait_for("an empty spool", || {
            self.store.ids().unwrap().is_empty().then_some(())
        });
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail/postmaster/new")) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_message_follows_the_schedule_then_bounces() {
    let life = Life::start();
    let id = life.submit(None).await;
    let attempts = life.live_out(id);
    assert_eq!(
        &attempts[..7],
        &[0, 60, 360, 1260, 3060, 6660, 13860],
        "{attempts:?}"
    );
    assert!(
        attempts.windows(2).skip(6).all(|w| w[1] - w[0] == 7200),
        "{attempts:?}"
    );
    let last = *attempts.last().unwrap();
    assert!(
        (5 * DAY..5 * DAY + 7200).contains(&last),
        "gave up at {last}"
    );

    let notices = life.final_notices();
    assert_eq!(
        notices.len(),
        2,
        "exactly one delay notice and one bounce: {notices:#?}"
    );
    let delayed: Vec<_> = notices
        .iter()
        .filter(|n| n.contains("Action: delayed"))
        .collect();
    let failed: Vec<_> = notices
        .iter()
        .filter(|n| n.contains("Action: failed"))
        .collect();
    assert_eq!((delayed.len(), failed.len()), (1, 1));
    let (delayed, failed) = (delayed[0], failed[0]);
    assert!(delayed.contains("Will-Retry-Until:"), "{delayed}");
    assert!(delayed.contains("\r\nStatus: 4."), "{delayed}");
    assert!(
        delayed.contains("Final-Recipient: rfc822; user@remote.test\r\n"),
        "{delayed}"
    );
    let subject = delayed
        .lines()
        .find(|l| l.starts_with("Subject: "))
        .unwrap_or_default();
    assert!(subject.contains("Delayed"), "{delayed}");
    assert!(failed.contains("Status: 4.4.7"), "{failed}");
    assert!(!failed.contains("Will-Retry-Until:"), "{failed}");
    assert!(
        failed.contains("Final-Recipient: rfc822; user@remote.test\r\n"),
        "{failed}"
    );
    assert!(
        failed.contains("Diagnostic-Code: smtp; 451 4.2.0 try later"),
        "{failed}"
    );
    assert!(failed.contains("Return-Path: <>"), "{failed}");
}

/// NOTIFY=NEVER: the message lives the same life, expires and leaves the spool, and the
/// sender hears nothing at all, neither the delay notice nor the bounce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_never_gets_neither_delay_notice_nor_bounce() {
    let life = Life::start();
    let id = life.submit(Some(Notify::default())).await;
    let attempts = life.live_out(id);
    let last = *attempts.last().unwrap();
    assert!(
        (5 * DAY..5 * DAY + 7200).contains(&last),
        "gave up at {last}: {attempts:?}"
    );
    let notices = life.final_notices();
    assert!(notices.is_empty(), "{notices:#?}");
}
