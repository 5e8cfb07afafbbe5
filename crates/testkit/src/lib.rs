//! Equipment shared by Posthorn's integration tests and its benchmark: a private Postfix
//! instance on loopback, a private clamd, a private rspamd with its milter, a scripted
//! milter, and a bounded wait.

pub mod clamd;
pub mod postfix;
pub mod rspamd;
pub mod scripted_milter;

use std::time::{Duration, Instant};

/// How long a test or benchmark step waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `probe` until it yields, for at most `PATIENCE`.
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
