//! Connections kept open between runs, as Postfix's connection cache keeps them
//! (`smtp_connection_cache_time_limit`, `smtp_connection_reuse_time_limit`). A run ends
//! whenever its destination's queue is empty for a moment, which mail arriving one message
//! at a time makes the common case; without the cache each message then pays a connect, a
//! greeting, EHLO (and a TLS handshake) and QUIT, on both ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::connection::Connection;
use crate::queue::Destination;

/// How long a connection is reused at all (Postfix's `smtp_connection_reuse_time_limit`):
/// a server's view of us (its rate counters, our DNS answers) should not outlive it.
const REUSE_LIMIT: Duration = Duration::from_secs(300);

/// Idle connections kept per destination; more are closed.
const PER_DESTINATION: usize = 16;

/// Idle connections kept in all.
const TOTAL: usize = 256;

/// Open connections no run is using, by destination.
pub(super) struct IdleConnections {
    /// How long a connection waits for its next run (`[delivery] connection_cache_time`).
    limit: Duration,
    parked: Mutex<Parked>,
    /// Whether the task that closes expired connections is running.
    reaping: AtomicBool,
}

#[derive(Default)]
struct Parked {
    by_destination: HashMap<Destination, Vec<(Connection, Instant)>>,
    count: usize,
}

impl IdleConnections {
    pub fn new(limit: Duration) -> Self {
        IdleConnections {
            limit,
            parked: Mutex::default(),
            reaping: AtomicBool::new(false),
        }
    }

    /// An idle connection to `destination` that still looks usable: the newest that has
    /// not waited past the limit, and that the server has not spoken on or closed while
    /// it waited (a `421` or a FIN would be there to read).
    pub async fn take(&self, destination: &Destination) -> Option<Connection> {
        loop {
            let (mut connection, since) = {
                let mut parked = self.lock();
                let idle = parked.by_destination.get_mut(destination)?;
                let taken = idle.pop()?;
                if idle.is_empty() {
                    // Destinations come and go (every MX domain): none is kept empty.
                    parked.by_destination.remove(destination);
                }
                parked.count -= 1;
                taken
            };
            if since.elapsed() < self.limit && connection.is_quiet().await {
                return Some(connection);
            }
            drop(connection);
        }
    }

    /// Keeps `connection` for the next run to `destination`, or gives it back (to be
    /// closed) when it has been used long enough or the cache is full.
    pub fn park(
        self: &Arc<Self>,
        destination: Destination,
        connection: Connection,
    ) -> Option<Connection> {
        if self.limit.is_zero() || connection.age() >= REUSE_LIMIT {
            return Some(connection);
        }
        {
            let mut parked = self.lock();
            if parked.count >= TOTAL {
                return Some(connection);
            }
            let idle = parked.by_destination.entry(destination).or_default();
            if idle.len() >= PER_DESTINATION {
                return Some(connection);
            }
            idle.push((connection, Instant::now()));
            parked.count += 1;
        }
        if !self.reaping.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).reap());
        }
        None
    }

    /// Closes connections that waited past the limit, until none is left.
    async fn reap(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.limit / 2).await;
            let expired = self.expired();
            for connection in expired {
                tokio::spawn(connection.quit());
            }
            if self.lock().count == 0 {
                self.reaping.store(false, Ordering::Release);
                // A connection parked since the count was read finds the flag set and
                // would not have started a reaper: take over again.
                if self.lock().count == 0 || self.reaping.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        }
    }

    fn expired(&self) -> Vec<Connection> {
        let mut parked = self.lock();
        let mut expired = Vec::new();
        for idle in parked.by_destination.values_mut() {
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(idle)
                .into_iter()
                .partition(|(_, since)| since.elapsed() >= self.limit);
            *idle = fresh;
            expired.extend(old.into_iter().map(|(connection, _)| connection));
        }
        parked.by_destination.retain(|_, idle| !idle.is_empty());
        parked.count -= expired.len();
        expired
    }

    fn lock(&self) -> MutexGuard<'_, Parked> {
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
