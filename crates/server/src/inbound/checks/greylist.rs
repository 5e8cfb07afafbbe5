//! Greylisting: the first message of a new (client network, sender, recipient) triplet
//! is deferred; a real mail server retries after the delay and is let through, and its
//! network is then let through without delay for `allow_for`. Spam software that never
//! retries is stopped at no cost.
//!
//! State lives in memory, bounded by `max_entries`, and is saved to `greylist.json` in
//! the data folder every few seconds when it changed, by an atomic replace: a crash loses
//! at most the last seconds (those senders are greylisted once more), never the file.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::atomic_file;
use crate::clock::Clock;
use crate::config;

/// How often changed state is written out.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// What greylisting says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Pass,
    /// Defer it; the sender may retry after this many seconds.
    Defer(u64),
}

/// The remembered triplets and networks.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Triplet → when it was first seen.
    triplets: HashMap<String, u64>,
    /// Client network → until when it passes without delay.
    networks: HashMap<String, u64>,
    #[serde(skip)]
    changed: bool,
}

/// The greylist.
pub struct Greylist {
    settings: config::Greylist,
    prefixes: (u8, u8),
    clock: Arc<dyn Clock>,
    path: PathBuf,
    state: Mutex<State>,
}

impl Greylist {
    /// The greylist kept in `path`, loaded from it when it exists; IPv4 clients are
    /// grouped by /24 and IPv6 clients by `ipv6_prefix`.
    pub fn open(
        settings: config::Greylist,
        ipv6_prefix: u8,
        path: PathBuf,
        clock: Arc<dyn Clock>,
    ) -> Greylist {
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %path.display(), error = %e, "greylist state unreadable, starting empty");
                State::default()
            }),
            Err(_) => State::default(),
        };
        Greylist {
            settings,
            prefixes: (24, ipv6_prefix),
            clock,
            path,
            state: Mutex::new(state),
        }
    }

    /// Decides for a message from `ip` with `sender` (empty for the null sender) to
    /// `recipients`: it passes when the client's network is let through, or when every
    /// triplet was first seen at least `delay` and at most `retry_window` ago.
    pub fn check(&self, ip: IpAddr, sender: &str, recipients: &[String]) -> Decision {
        let now = self.clock.now();
        let network = self.network(ip);
        let Ok(mut state) = self.state.lock() else {
            return Decision::Pass;
        };
        if state
            .networks
            .get(&network)
            .is_some_and(|&until| until > now)
        {
            return Decision::Pass;
        }
        let delay = self.settings.delay.0.as_secs();
        let window = self.settings.retry_window.0.as_secs();
        let mut wait = 0;
        let mut retried = Vec::new();
        for recipient in recipients {
            let triplet = format!(
                "{network} {} {}",
                sender.to_lowercase(),
                recipient.to_lowercase()
            );
            match state.triplets.get(&triplet) {
                Some(&first) if now.saturating_sub(first) <= window => {
                    let due = first + delay;
                    if now < due {
                        wait = wait.max(due - now);
                    } else {
                        retried.push(triplet);
                    }
                }
                _ => {
                    state.triplets.insert(triplet, now);
                    state.changed = true;
                    wait = wait.max(delay);
                }
            }
        }
        if wait > 0 {
            self.bound(&mut state, now);
            return Decision::Defer(wait);
        }
        for triplet in retried {
            state.triplets.remove(&triplet);
        }
        state
            .networks
            .insert(network, now + self.settings.allow_for.0.as_secs());
        state.changed = true;
        self.bound(&mut state, now);
        Decision::Pass
    }

    /// The key of the client's network.
    fn network(&self, ip: IpAddr) -> String {
        let prefix = match ip.to_canonical() {
            IpAddr::V4(_) => self.prefixes.0,
            IpAddr::V6(_) => self.prefixes.1,
        };
        ipnet::IpNet::new(ip.to_canonical(), prefix)
            .map_or_else(|_| ip.to_string(), |net| net.trunc().to_string())
    }

    /// Keeps at most `max_entries` triplets and as many networks: expired ones go first,
    /// then the oldest.
    fn bound(&self, state: &mut State, now: u64) {
        let max = self.settings.max_entries;
        let window = self.settings.retry_window.0.as_secs();
        if state.triplets.len() > max {
            state
                .triplets
                .retain(|_, first| now.saturating_sub(*first) <= window);
            drop_oldest(&mut state.triplets, max, |first| *first);
        }
        if state.networks.len() > max {
            state.networks.retain(|_, until| *until > now);
            drop_oldest(&mut state.networks, max, |until| *until);
        }
    }

    /// Writes the state if it changed since the last save.
    pub fn save(&self) {
        let bytes = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if !state.changed {
                return;
            }
            state.changed = false;
            serde_json::to_vec(&*state)
        };
        let written = bytes
            .map_err(std::io::Error::other)
            .and_then(|bytes| atomic_file::replace(&self.path, &bytes, 0o600));
        if let Err(e) = written {
            warn!(path = %self.path.display(), error = %e, "cannot save greylist state");
            if let Ok(mut state) = self.state.lock() {
                state.changed = true;
            }
        }
    }

    /// Saves changed state every few seconds, on a blocking thread, for as long as the
    /// greylist is in use.
    pub fn keep_saved(self: &Arc<Self>) {
        let greylist = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAVE_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(greylist) = greylist.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || greylist.save()).await;
            }
        });
    }
}

/// Removes the entries with the smallest `age_key` until `max` remain (a tenth more, so
/// a full map is not sorted again for every new entry).
fn drop_oldest<V>(map: &mut HashMap<String, V>, max: usize, age_key: impl Fn(&V) -> u64) {
    if map.len() <= max {
        return;
    }
    let keep = max - max / 10;
    let mut ages: Vec<u64> = map.values().map(&age_key).collect();
    let cut = ages.len() - keep;
    let (_, &mut threshold, _) = ages.select_nth_unstable(cut.saturating_sub(1));
    let mut surplus = cut;
    map.retain(|_, v| {
        if surplus > 0 && age_key(v) <= threshold {
            surplus -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct ManualClock(AtomicU64);

    impl Clock for ManualClock {
        fn now(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const START: u64 = 1_800_000_000;

    fn greylist(dir: &std::path::Path, max_entries: usize) -> (Greylist, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(AtomicU64::new(START)));
        let settings = config::Greylist {
            enabled: true,
            max_entries,
            ..config::Greylist::default()
        };
        let list = Greylist::open(settings, 64, dir.join("greylist.json"), clock.clone());
        (list, clock)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn rcpts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_retry_after_the_delay_passes_and_allows_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let (list, clock) = greylist(dir.path(), 100);
        let to = rcpts(&["bob@ours.test"]);
        assert_eq!(
            list.check(ip("192.0.2.7"), "a@far.test", &to),
            Decision::Defer(300)
        );
        clock.0.fetch_add(100, Ordering::SeqCst);
        assert_eq!(
            list.check(ip("192.0.2.7"), "a@far.test", &to),
            Decision::Defer(200)
        );
        clock.0.fetch_add(200, Ordering::SeqCst);
        // The retry may come from another address of the same /24.
        assert_eq!(
            list.check(ip("192.0.2.99"), "a@far.test", &to),
            Decision::Pass
        );
        // The network now passes without delay, for any sender, for a month.
        let other = rcpts(&["carol@ours.test"]);
        assert_eq!(
            list.check(ip("192.0.2.1"), "z@else.test", &other),
            Decision::Pass
        );
        clock.0.fetch_add(31 * 86_400, Ordering::SeqCst);
        assert_eq!(
            list.check(ip("192.0.2.1"), "z@else.test", &other),
            Decision::Defer(300)
        );
    }

    #[test]
    fn a_retry_after_the_window_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let (list, clock) = greylist(dir.path(), 100);
        let to = rcpts(&["bob@ours.test"]);
        assert!(matches!(
            list.check(ip("198.51.100.1"), "", &to),
            Decision::Defer(_)
        ));
        clock.0.fetch_add(3 * 86_400, Ordering::SeqCst);
        assert_eq!(
            list.check(ip("198.51.100.1"), "", &to),
            Decision::Defer(300)
        );
    }

    #[test]
    fn every_recipient_must_have_waited() {
        let dir = tempfile::tempdir().unwrap();
        let (list, clock) = greylist(dir.path(), 100);
        assert!(matches!(
            list.check(ip("2001:db8::1"), "a@far.test", &rcpts(&["bob@ours.test"])),
            Decision::Defer(_)
        ));
        clock.0.fetch_add(400, Ordering::SeqCst);
        let both = rcpts(&["bob@ours.test", "carol@ours.test"]);
        assert_eq!(
            list.check(ip("2001:db8::2"), "a@far.test", &both),
            Decision::Defer(300)
        );
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let to = rcpts(&["bob@ours.test"]);
        {
            let (list, _) = greylist(dir.path(), 100);
            assert!(matches!(
                list.check(ip("192.0.2.7"), "a@far.test", &to),
                Decision::Defer(_)
            ));
            list.save();
        }
        let (list, clock) = greylist(dir.path(), 100);
        clock.0.fetch_add(301, Ordering::SeqCst);
        assert_eq!(
            list.check(ip("192.0.2.7"), "a@far.test", &to),
            Decision::Pass
        );
    }

    #[test]
    fn a_flood_of_new_triplets_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (list, clock) = greylist(dir.path(), 1_000);
        for i in 0..20_000u32 {
            clock.0.fetch_add(1, Ordering::SeqCst);
            let sender = format!("s{i}@spam.test");
            list.check(ip("203.0.113.5"), &sender, &rcpts(&["bob@ours.test"]));
        }
        let state = list.state.lock().unwrap();
        assert!(state.triplets.len() <= 1_000, "{}", state.triplets.len());
        // The newest are the ones kept.
        assert!(
            state
                .triplets
                .contains_key("203.0.113.0/24 s19999@spam.test bob@ours.test")
        );
    }

    #[test]
    fn an_unreadable_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greylist.json"), b"{not json").unwrap();
        let (list, _) = greylist(dir.path(), 100);
        assert!(matches!(
            list.check(ip("192.0.2.7"), "", &rcpts(&["bob@ours.test"])),
            Decision::Defer(_)
        ));
    }
}
