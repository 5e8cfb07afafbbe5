//! What each authenticated user has sent this hour and today, against its
//! [`SendingLimits`]: the quotas that keep one compromised password or runaway application
//! from turning the server into a spam cannon. The counters are written to a small file
//! after each message, so a restart does not hand out a fresh day.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::SendingLimits;

/// One user's counts in the current hour and day (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    hour: u64,
    hour_messages: u64,
    hour_recipients: u64,
    day: u64,
    day_messages: u64,
    day_recipients: u64,
}

impl Counts {
    /// The counts as they stand at `now`: a new hour or day starts from zero.
    fn at(mut self, now: u64) -> Counts {
        let (hour, day) = (now / 3600, now / 86_400);
        if self.hour != hour {
            self.hour = hour;
            self.hour_messages = 0;
            self.hour_recipients = 0;
        }
        if self.day != day {
            self.day = day;
            self.day_messages = 0;
            self.day_recipients = 0;
        }
        self
    }
}

/// Within `limit`, where 0 means no limit.
fn within(used: u64, limit: u64) -> bool {
    limit == 0 || used <= limit
}

/// The counters of every user, and their file.
#[derive(Debug)]
pub struct SendingQuota {
    path: PathBuf,
    counts: Mutex<HashMap<String, Counts>>,
    writing: Mutex<()>,
}

impl SendingQuota {
    /// Loads the counters saved at `path`; a missing or unreadable file starts afresh.
    pub fn load(path: PathBuf) -> SendingQuota {
        let counts = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(file = %path.display(), error = %e, "sending counters unreadable, starting afresh");
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        SendingQuota {
            path,
            counts: Mutex::new(counts),
            writing: Mutex::new(()),
        }
    }

    fn counts(&self, user: &str, now: u64) -> Counts {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(user).copied().unwrap_or_default().at(now)
    }

    /// True when `user` may send one more message now.
    pub fn may_send(&self, user: &str, limits: &SendingLimits, now: u64) -> bool {
        let c = self.counts(user, now);
        within(c.hour_messages + 1, limits.messages_per_hour)
            && within(c.day_messages + 1, limits.messages_per_day)
    }

    /// True when `user` may add a recipient to a message that has `pending` so far.
    pub fn may_add_recipient(
        &self,
        user: &str,
        limits: &SendingLimits,
        pending: u64,
        now: u64,
    ) -> bool {
        let c = self.counts(user, now);
        within(c.hour_recipients + pending + 1, limits.recipients_per_hour)
            && within(c.day_recipients + pending + 1, limits.recipients_per_day)
    }

    /// Counts a message accepted from `user` and saves the counters. Blocking: call it
    /// off the async threads.
    pub fn record(&self, user: &str, recipients: u64, now: u64) {
        // Taken first, so that files are written in the order of their snapshots and an
        // older snapshot never overwrites a newer one.
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let mut c = counts.get(user).copied().unwrap_or_default().at(now);
            c.hour_messages += 1;
            c.day_messages += 1;
            c.hour_recipients += recipients;
            c.day_recipients += recipients;
            counts.insert(user.to_string(), c);
            // Yesterday's counters are of no use.
            counts.retain(|_, c| c.day == now / 86_400);
            serde_json::to_vec(&*counts)
        };
        let saved = snapshot
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::atomic_file::replace(&self.path, &bytes, 0o600));
        if let Err(e) = saved {
            warn!(file = %self.path.display(), error = %e, "cannot save sending counters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SendingLimits = SendingLimits {
        messages_per_hour: 2,
        messages_per_day: 3,
        recipients_per_hour: 0,
        recipients_per_day: 4,
    };

    #[test]
    fn hourly_and_daily_limits() {
        let dir = tempfile::tempdir().unwrap();
        let quota = SendingQuota::load(dir.path().join("sending.json"));
        let t = 1_800_000_000 - 1_800_000_000 % 86_400;
        assert!(quota.may_send("a", &LIMITS, t));
        quota.record("a", 1, t);
        quota.record("a", 1, t);
        assert!(!quota.may_send("a", &LIMITS, t), "hourly limit");
        assert!(quota.may_send("b", &LIMITS, t));
        assert!(quota.may_send("a", &LIMITS, t + 3600), "a new hour");
        quota.record("a", 1, t + 3600);
        assert!(!quota.may_send("a", &LIMITS, t + 7200), "daily limit");
        assert!(quota.may_send("a", &LIMITS, t + 86_400), "a new day");
        assert!(quota.may_add_recipient("a", &LIMITS, 0, t + 7200));
        assert!(!quota.may_add_recipient("a", &LIMITS, 1, t + 7200));
    }

    #[test]
    fn counters_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sending.json");
        let t = 1_800_000_000;
        let quota = SendingQuota::load(path.clone());
        for _ in 0..3 {
            quota.record("a", 1, t);
        }
        let again = SendingQuota::load(path);
        assert!(!again.may_send("a", &LIMITS, t));
    }
}
