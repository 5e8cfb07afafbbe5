//! What sessions build from a folder's files and can share, kept by the path it was built
//! from: a folder's listing, the offset table of its header cache. Each value is kept with
//! a key telling what it was built from (an index file's identity, a cache file's inode
//! and length), so a reader takes it only if the files are still as they were then.
//!
//! A value lives while some session holds it (the shelf keeps a weak reference). A large
//! one is also held by the shelf for a while after its last use: a client that logs in
//! anew for each check (phones, webmail) would otherwise rebuild it each time, 22 ms for
//! the listing of a 100 000-message folder where Dovecot reads its index in 0.4 ms. What
//! is held is bounded in time and in size, and let go by [`Shelf::release_idle`] or the
//! next value kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// Values of at least this size (messages, records) are held after their sessions let
/// go; a smaller one is rebuilt in less time than it is worth keeping.
pub(crate) const HOLD_FROM: usize = 10_000;

/// How long a held value may go unused.
const HOLD_FOR: Duration = Duration::from_secs(120);

/// Most held in one shelf altogether, in the values' sizes (a listing's message takes
/// about 130 octets, a cache record's place about 30); the least recently used go first.
const HOLD_AT_MOST: usize = 500_000;

/// Shared values by path, each with the key it was built from.
pub(crate) struct Shelf<K, T> {
    slots: Mutex<HashMap<PathBuf, Slot<K, T>>>,
}

struct Slot<K, T> {
    key: K,
    value: Weak<T>,
    /// The value itself, for a large one, while the shelf holds it.
    held: Option<Arc<T>>,
    size: usize,
    /// When it was last kept or handed out.
    used: Instant,
}

impl<K, T> Default for Shelf<K, T> {
    fn default() -> Self {
        Shelf {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone, T> Shelf<K, T> {
    /// The value kept for `path`, with its key, if `fits` its key and it is still alive.
    pub fn find(&self, path: &Path, fits: impl FnOnce(&K) -> bool) -> Option<(K, Arc<T>)> {
        // Not released here: a find comes with every sync of every session, and the
        // periodic `release_idle` and the next `keep` do it.
        let mut slots = self.lock();
        let slot = slots.get_mut(path).filter(|slot| fits(&slot.key))?;
        let value = slot.value.upgrade()?;
        slot.used = Instant::now();
        Some((slot.key.clone(), value))
    }

    /// Offers `value`, built as `key` says and of `size`, to the next readers of `path`,
    /// in place of what was kept for it.
    pub fn keep(&self, path: &Path, key: K, value: &Arc<T>, size: usize) {
        let mut slots = self.lock();
        slots.insert(
            path.to_path_buf(),
            Slot {
                key,
                value: Arc::downgrade(value),
                held: (size >= HOLD_FROM).then(|| Arc::clone(value)),
                size,
                used: Instant::now(),
            },
        );
        release(&mut slots);
    }

    /// Lets go of the values held unused for too long; called now and then so that
    /// memory returns once the clients have left, whether or not another reader comes.
    pub fn release_idle(&self) {
        release(&mut self.lock());
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Slot<K, T>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Lets go of values held unused for [`HOLD_FOR`], then of the least recently used until
/// at most [`HOLD_AT_MOST`] is held, and forgets the values nobody holds.
fn release<K, T>(slots: &mut HashMap<PathBuf, Slot<K, T>>) {
    let mut held: Vec<(Instant, usize, PathBuf)> = Vec::new();
    for (path, slot) in slots.iter_mut() {
        if slot.used.elapsed() >= HOLD_FOR {
            slot.held = None;
        }
        if slot.held.is_some() {
            held.push((slot.used, slot.size, path.clone()));
        }
    }
    let mut total: usize = held.iter().map(|(_, size, _)| size).sum();
    held.sort_unstable_by_key(|(used, _, _)| *used);
    for (_, size, path) in held {
        if total <= HOLD_AT_MOST {
            break;
        }
        if let Some(slot) = slots.get_mut(&path) {
            slot.held = None;
        }
        total -= size;
    }
    slots.retain(|_, slot| slot.value.strong_count() > 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_are_held_within_the_bound_and_small_ones_only_while_used() {
        let shelf: Shelf<u32, u32> = Shelf::default();
        let path = |n: u32| PathBuf::from(format!("/folder/{n}"));
        let mut kept = 0;
        for n in 0..60 {
            shelf.keep(&path(n), n, &Arc::new(n), HOLD_FROM);
            kept += HOLD_FROM;
        }
        assert!(kept > HOLD_AT_MOST);
        // Nobody else holds them: the newest that fit the bound are still there.
        let found: Vec<u32> = (0..60)
            .filter(|n| shelf.find(&path(*n), |key| key == n).is_some())
            .collect();
        let room = (HOLD_AT_MOST / HOLD_FROM) as u32;
        assert_eq!(found, (60 - room..60).collect::<Vec<_>>());
        // A small value lives only while a session holds it.
        let small = Arc::new(7);
        shelf.keep(&path(100), 100, &small, HOLD_FROM - 1);
        assert!(shelf.find(&path(100), |_| true).is_some());
        drop(small);
        assert!(shelf.find(&path(100), |_| true).is_none());
        // A key that does not fit (the files changed) finds nothing.
        assert!(shelf.find(&path(59), |key| *key == 58).is_none());
    }
}
