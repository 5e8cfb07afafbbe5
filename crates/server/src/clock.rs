//! Time as the server counts it: whole seconds since the Unix epoch, which is what the
//! spool records (arrival, next attempt) and what sending quotas are kept in. The queue
//! manager reads it through [`Clock`] so that tests can move time forward instead of
//! waiting for it.

use std::time::{SystemTime, UNIX_EPOCH};

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
        unix_now()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
