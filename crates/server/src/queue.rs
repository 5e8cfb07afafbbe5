//! The queue manager: it knows when each queued message is due and hands due messages to
//! delivery workers, at most one worker per message, so each message's state has a single
//! writer at any time. New mail is attempted at once; after a restart every message in
//! the spool is picked up again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use posthorn_spool::{QueueId, QueueStore};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::delivery::Deliverer;
use crate::smtp::unix_now;

/// Tells the queue manager about newly accepted messages.
#[derive(Debug, Clone)]
pub struct QueueHandle {
    tx: mpsc::UnboundedSender<QueueId>,
}

impl QueueHandle {
    /// Schedules `id` for an immediate attempt.
    pub fn submit(&self, id: QueueId) {
        // The manager only stops at shutdown; mail accepted then is picked up at restart.
        let _ = self.tx.send(id);
    }
}

/// The manager's view of the queue: due times and messages out with a worker.
#[derive(Debug, Default)]
struct Schedule {
    due: BTreeSet<(u64, QueueId)>,
    at: HashMap<QueueId, u64>,
    in_flight: HashSet<QueueId>,
}

impl Schedule {
    /// Sets (or moves) the due time of `id`; a message out with a worker is rescheduled by
    /// the worker's result instead.
    fn set(&mut self, id: QueueId, time: u64) {
        if self.in_flight.contains(&id) {
            return;
        }
        if let Some(old) = self.at.insert(id.clone(), time) {
            self.due.remove(&(old, id.clone()));
        }
        self.due.insert((time, id));
    }

    /// Takes the earliest message due at `now`, marking it in flight.
    fn take_due(&mut self, now: u64) -> Option<QueueId> {
        let (time, _) = self.due.first()?;
        if *time > now {
            return None;
        }
        let (_, id) = self.due.pop_first()?;
        self.at.remove(&id);
        self.in_flight.insert(id.clone());
        Some(id)
    }

    fn next_due(&self) -> Option<u64> {
        self.due.first().map(|(time, _)| *time)
    }
}

/// Starts the queue manager; it recovers the spool first, then runs until `shutdown`.
pub fn start(
    store: Arc<dyn QueueStore>,
    deliverer: Arc<Deliverer>,
    concurrency: usize,
    shutdown: watch::Receiver<bool>,
) -> (QueueHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(store, deliverer, concurrency, rx, shutdown));
    (QueueHandle { tx }, task)
}

async fn run(
    store: Arc<dyn QueueStore>,
    deliverer: Arc<Deliverer>,
    concurrency: usize,
    mut rx: mpsc::UnboundedReceiver<QueueId>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut schedule = Schedule::default();
    let recovered = tokio::task::spawn_blocking(move || store.recover()).await;
    match recovered {
        Ok(Ok(ids)) => {
            info!(messages = ids.len(), "queue recovered");
            for id in ids {
                schedule.set(id, 0);
            }
        }
        Ok(Err(e)) => error!(error = %e, "queue recovery failed"),
        Err(e) => error!(error = %e, "queue recovery task failed"),
    }
    let mut workers: JoinSet<(QueueId, Option<u64>)> = JoinSet::new();
    loop {
        let now = unix_now();
        while workers.len() < concurrency {
            let Some(id) = schedule.take_due(now) else {
                break;
            };
            let deliverer = Arc::clone(&deliverer);
            workers.spawn_blocking(move || {
                let next = deliverer.attempt(&id, unix_now());
                (id, next)
            });
        }
        let wait = match schedule.next_due() {
            Some(time) if workers.len() < concurrency => {
                Duration::from_secs(time.saturating_sub(now).max(1))
            }
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            submitted = rx.recv() => match submitted {
                Some(id) => schedule.set(id, 0),
                None => break,
            },
            Some(done) = workers.join_next() => match done {
                Ok((id, next)) => {
                    schedule.in_flight.remove(&id);
                    if let Some(time) = next {
                        schedule.set(id, time);
                    }
                }
                Err(e) => error!(error = %e, "delivery worker failed"),
            },
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    // Deliveries in progress finish and record their outcome; nothing new starts.
    while workers.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use posthorn_spool::IdGenerator;

    #[test]
    fn schedule_orders_by_time_and_skips_in_flight() {
        let ids = IdGenerator::default();
        let (a, b) = (ids.generate(), ids.generate());
        let mut schedule = Schedule::default();
        schedule.set(b.clone(), 5);
        schedule.set(a.clone(), 10);
        assert_eq!(schedule.take_due(4), None);
        assert_eq!(schedule.take_due(5), Some(b.clone()));
        schedule.set(b.clone(), 0);
        assert_eq!(schedule.next_due(), Some(10), "in flight: not rescheduled");
        schedule.set(a.clone(), 1);
        assert_eq!(schedule.take_due(1), Some(a));
        assert_eq!(schedule.take_due(100), None);
    }
}
