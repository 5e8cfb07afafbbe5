//! Right passwords remembered for a while, as Dovecot's auth cache does: IMAP clients
//! open several connections and log in again on each, and every check of the argon2
//! hash costs tens of milliseconds of CPU on purpose. A success is kept as a keyed
//! BLAKE2b digest of the password (the key is random per process, the digest never
//! leaves memory), tied to the account's stored hash: a changed password misses at once.
//! Only successes are kept, so a guess always pays the full check.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};

/// Accounts remembered at most; beyond, a success is simply not remembered.
const MAX_ENTRIES: usize = 10_000;

/// One remembered success.
struct Entry {
    /// The account's stored hash when the password was checked.
    stored_hash: String,
    /// The keyed digest of the password that matched it.
    tag: Vec<u8>,
    /// When it stops counting.
    until: Instant,
}

/// The cache shared by every protocol's logins.
pub struct CheckCache {
    ttl: Duration,
    key: [u8; 32],
    entries: Mutex<HashMap<String, Entry>>,
}

impl CheckCache {
    /// A cache keeping successes for `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> CheckCache {
        let mut key = [0u8; 32];
        // Without randomness the cache stays empty rather than keyed predictably.
        let keyed = getrandom::fill(&mut key).is_ok();
        CheckCache {
            ttl: if keyed { ttl } else { Duration::ZERO },
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, password: &str) -> Option<Blake2bMac512> {
        let mut mac = Blake2bMac512::new_from_slice(&self.key).ok()?;
        mac.update(password.as_bytes());
        Some(mac)
    }

    /// True when `password` was found right for `account` (whose stored hash is
    /// `stored_hash`) within the last `ttl`.
    pub fn knows(&self, account: &str, stored_hash: &str, password: &str) -> bool {
        self.knows_at(Instant::now(), account, stored_hash, password)
    }

    fn knows_at(&self, now: Instant, account: &str, stored_hash: &str, password: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries.get(account) else {
            return false;
        };
        entry.until > now
            && entry.stored_hash == stored_hash
            && self
                .mac(password)
                .is_some_and(|mac| mac.verify_slice(&entry.tag).is_ok())
    }

    /// Remembers that `password` is right for `account` with `stored_hash`.
    pub fn remember(&self, account: &str, stored_hash: &str, password: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let Some(mac) = self.mac(password) else {
            return;
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(account) {
            entries.retain(|_, entry| entry.until > now);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            account.to_string(),
            Entry {
                stored_hash: stored_hash.to_string(),
                tag: mac.finalize().into_bytes().to_vec(),
                until: now + self.ttl,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_right_password_is_known_until_the_hash_changes() {
        let cache = CheckCache::new(Duration::from_secs(60));
        assert!(!cache.knows("alice", "$h1", "secret"));
        cache.remember("alice", "$h1", "secret");
        assert!(cache.knows("alice", "$h1", "secret"));
        assert!(!cache.knows("alice", "$h1", "Secret"));
        assert!(!cache.knows("alice", "$h2", "secret"));
        assert!(!cache.knows("bob", "$h1", "secret"));
    }

    #[test]
    fn nothing_is_kept_without_a_ttl_and_entries_expire() {
        let off = CheckCache::new(Duration::ZERO);
        off.remember("alice", "$h1", "secret");
        assert!(!off.knows("alice", "$h1", "secret"));
        let minute = CheckCache::new(Duration::from_secs(60));
        minute.remember("alice", "$h1", "secret");
        let later = Instant::now() + Duration::from_secs(61);
        assert!(!minute.knows_at(later, "alice", "$h1", "secret"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = CheckCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES + 10 {
            cache.remember(&format!("user{i}"), "$h", "pw");
        }
        assert_eq!(cache.entries.lock().unwrap().len(), MAX_ENTRIES);
        assert!(!cache.knows(&format!("user{}", MAX_ENTRIES + 5), "$h", "pw"));
    }
}
