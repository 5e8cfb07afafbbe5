//! How many password checks run at once. An argon2 check holds 19 MiB for tens of
//! milliseconds, so unbounded, a hundred parallel logins cost gigabytes; more checks than
//! cores would not finish any sooner. A check first waits for one of a few places kept
//! for its client address (so one client cannot fill the shared queue ahead of everyone
//! else), then for one of the global places. Both queues are first come, first served
//! (tokio semaphores), and a waiting check whose session goes away leaves its queue at
//! once, having cost nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::inbound::limits::client_key::ClientKey;

/// The queues password checks wait in.
#[derive(Debug)]
pub struct CheckGate {
    global: Arc<Semaphore>,
    per_client: usize,
    lanes: Arc<Mutex<Lanes>>,
}

/// Each client address with checks running or waiting: its places, and how many checks
/// use them (the entry goes with the last one, so the map is bounded by the sessions).
type Lanes = HashMap<ClientKey, (Arc<Semaphore>, usize)>;

/// The right to run one check, until dropped.
#[derive(Debug)]
pub struct Pass {
    _lane: Option<Lane>,
    _global: OwnedSemaphorePermit,
}

/// A check's use of its client's places.
#[derive(Debug)]
struct Lane {
    lanes: Arc<Mutex<Lanes>>,
    key: ClientKey,
    permit: Option<OwnedSemaphorePermit>,
}

impl CheckGate {
    /// At most `global` checks at once, `per_client` of them for one client.
    pub fn new(global: usize, per_client: usize) -> CheckGate {
        CheckGate {
            global: Arc::new(Semaphore::new(global.max(1))),
            per_client: per_client.max(1),
            lanes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Waits for the places of one check from `client` (`None`: a local program, which
    /// only waits for a global place).
    pub async fn enter(&self, client: Option<ClientKey>) -> Pass {
        let lane = match client {
            Some(key) => Some(self.lane(key).await),
            None => None,
        };
        Pass {
            _lane: lane,
            _global: acquire(&self.global).await,
        }
    }

    async fn lane(&self, key: ClientKey) -> Lane {
        let semaphore = {
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            let (semaphore, users) = lanes
                .entry(key)
                .or_insert_with(|| (Arc::new(Semaphore::new(self.per_client)), 0));
            *users += 1;
            Arc::clone(semaphore)
        };
        // Made before waiting, so a check dropped while it waits still leaves the map.
        let mut lane = Lane {
            lanes: Arc::clone(&self.lanes),
            key,
            permit: None,
        };
        lane.permit = Some(acquire(&semaphore).await);
        lane
    }
}

/// A place in `semaphore`; the gate never closes its semaphores, so one always comes.
#[allow(
    clippy::expect_used,
    reason = "the semaphores are ours and never closed: no input can reach the panic"
)]
async fn acquire(semaphore: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    Arc::clone(semaphore)
        .acquire_owned()
        .await
        .expect("the check gate's semaphores are never closed")
}

impl Drop for Lane {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, users)) = lanes.get_mut(&self.key) {
            *users -= 1;
            if *users == 0 {
                lanes.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Waker};

    fn key(ip: &str) -> Option<ClientKey> {
        Some(ClientKey::of(ip.parse().unwrap(), 64))
    }

    /// True when `future` cannot finish now (polled once, then dropped: a check that
    /// gave up waiting).
    fn waits<F: Future>(future: F) -> bool {
        let mut context = Context::from_waker(Waker::noop());
        std::pin::pin!(future).poll(&mut context).is_pending()
    }

    #[tokio::test]
    async fn one_client_waits_for_its_own_places_only() {
        let gate = CheckGate::new(2, 1);
        let first = gate.enter(key("192.0.2.1")).await;
        assert!(waits(gate.enter(key("192.0.2.1"))));
        let other = gate.enter(key("192.0.2.2")).await;
        assert!(waits(gate.enter(None)), "both global places taken");
        drop(first);
        let _again = gate.enter(key("192.0.2.1")).await;
        drop(other);
        let _local = gate.enter(None).await;
    }

    #[tokio::test]
    async fn lanes_go_with_their_last_check() {
        let gate = CheckGate::new(1, 1);
        let pass = gate.enter(key("192.0.2.1")).await;
        assert!(waits(gate.enter(key("192.0.2.1"))));
        assert!(waits(gate.enter(key("192.0.2.2"))));
        drop(pass);
        assert!(gate.lanes.lock().unwrap().is_empty());
    }
}
