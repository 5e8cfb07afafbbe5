//! The queue manager over a message's whole life, on an injected clock: a remote
//! destination that always answers "try later", and the manager's real schedule, delay
//! notice, expiry and bounce, five days played in well under a second of real time.

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
use posthorn::queue::{self, Destination, Feed, Job, JobResult, Limits, Parts, Transport};
use posthorn_proto::{Mailbox, ReversePath, Status};
use posthorn_spool::{
    ClientInfo, DeliveryState, Diagnostic, Envelope, FsQueueStore, QueueStore, Recipient, Route,
};

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

fn notices(mail: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(mail.join("postmaster/new")) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_message_follows_the_schedule_then_bounces() {
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
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let recovered = store.recover().unwrap();
    let (handle, _task) = queue::start(parts, recovered, shutdown);

    let id = store.new_id();
    let envelope = Envelope {
        id,
        sender: ReversePath::Mailbox(Mailbox {
            local: "postmaster".into(),
            domain: "localhost".into(),
        }),
        recipients: vec![Recipient {
            address: Mailbox {
                local: "user".into(),
                domain: "remote.test".into(),
            },
            route: Route::Remote,
            rcpt: "user@remote.test".into(),
            notify: None,
            orcpt: None,
            state: DeliveryState::default(),
        }],
        body: Default::default(),
        smtputf8: false,
        ret: None,
        envid: None,
        arrival: START,
        client: ClientInfo::default(),
        prepend: String::new(),
        hold: false,
        delay_notified: false,
        postmaster_notice: false,
        quarantine: false,
    };
    let content = b"Subject: doomed\r\n\r\nbody\r\n".to_vec();
    let writer = store.writer(id).unwrap();
    writer.commit(content, &envelope).durable().await.unwrap();
    handle.submit(envelope, None);

    // Jump the clock to each next attempt the manager recorded, until the message is gone.
    let mut seen = 0;
    loop {
        seen = wait_for("an attempt", || {
            let n = remote.attempts.lock().unwrap().len();
            (n > seen).then_some(n)
        });
        let next = wait_for("the state of the attempt", || match store.load(&id) {
            Ok(e) if e.recipients[0].state.attempts as usize == seen => {
                Some(Some(e.recipients[0].state.next_attempt))
            }
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
            Err(e) => panic!("{e}"),
        });
        let Some(next) = next else { break };
        clock.0.store(next, Ordering::SeqCst);
        handle.wake();
    }

    let attempts = remote.attempts.lock().unwrap().clone();
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

    let mail = dir.path().join("mail");
    let notices = wait_for("the delay notice and the bounce", || {
        let notices = notices(&mail);
        (notices.len() >= 2).then_some(notices)
    });
    assert_eq!(notices.len(), 2, "exactly one delay notice and one bounce");
    let delayed: Vec<_> = notices
        .iter()
        .filter(|n| n.contains("Action: delayed"))
        .collect();
    let failed: Vec<_> = notices
        .iter()
        .filter(|n| n.contains("Action: failed"))
        .collect();
    assert_eq!((delayed.len(), failed.len()), (1, 1));
    assert!(delayed[0].contains("Will-Retry-Until:"), "{}", delayed[0]);
    assert!(failed[0].contains("Status: 4.4.7"), "{}", failed[0]);
    assert!(
        failed[0].contains("Diagnostic-Code: smtp; 451 4.2.0 try later"),
        "{}",
        failed[0]
    );
    assert!(failed[0].contains("Return-Path: <>"), "{}", failed[0]);
    wait_for("an empty queue", || {
        store.ids().unwrap().is_empty().then_some(())
    });
}
