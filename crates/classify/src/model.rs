//! The model: per-token counts of the spam and ham messages that contained the token,
//! the number of messages of each class, and a ledger of the messages trained.
//!
//! Counts (not weights) make untraining exact and let a new account's model start from
//! nothing; the ledger (digest -> class, oldest first out) makes learning idempotent and
//! a retrain (ham -> spam) a reversal of the earlier training.

use std::collections::{BTreeMap, HashMap};

use crate::hash::Prehashed;
use crate::{Class, Features};

/// A token's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenCounts {
    /// Spam messages trained that contain the token.
    pub(crate) spam: u32,
    /// Ham messages trained that contain the token.
    pub(crate) ham: u32,
    /// Day (since the Unix epoch) the token was last trained: pruning drops old tokens.
    pub(crate) day: u32,
}

/// One trained message in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) class: Class,
    /// Position in training order: the smallest leaves the ledger first.
    pub(crate) sequence: u64,
}

/// A classifier model: a global one, or one per account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub(crate) tokens: HashMap<u64, TokenCounts, Prehashed>,
    pub(crate) spam: u32,
    pub(crate) ham: u32,
    pub(crate) ledger: HashMap<u64, Entry, Prehashed>,
    /// The ledger in training order (sequence -> digest).
    pub(crate) order: BTreeMap<u64, u64>,
}

/// What [`Model::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// The message was new to the ledger and is now trained.
    Trained,
    /// The message was trained as the other class: that training was reversed first.
    Retrained,
    /// The message is already trained as this class: nothing changed.
    Unchanged,
}

/// Size bounds [`Model::prune`] enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tokens kept (20 bytes each encoded).
    pub max_tokens: usize,
    /// Most ledger entries kept (17 bytes each encoded); older messages can no longer be
    /// untrained or retrained, only trained again.
    pub max_ledger: usize,
}

impl Default for Limits {
    /// One million tokens (about 20 MB encoded, a few years of a busy account's
    /// vocabulary) and 100 000 messages in the ledger.
    fn default() -> Self {
        Limits {
            max_tokens: 1_000_000,
            max_ledger: 100_000,
        }
    }
}

/// Tokens seen in only one message and not trained for this many days are dropped by
/// every prune: most hapaxes never recur, and they are most of a vocabulary.
pub const RARE_TOKEN_DAYS: u32 = 60;

impl Model {
    /// Trains `features` (of the message whose [`digest`](crate::digest) is `digest`) as
    /// `class` on `day` (days since the Unix epoch). A message already trained as the
    /// other class is untrained from it first; one already trained as `class` is left.
    pub fn learn(&mut self, digest: u64, features: &Features, class: Class, day: u32) -> Learned {
        let learned = match self.ledger.get(&digest) {
            Some(entry) if entry.class == class => return Learned::Unchanged,
            Some(_) => {
                self.forget(digest, features);
                Learned::Retrained
            }
            None => Learned::Trained,
        };
        for &token in features.hashes() {
            let counts = self.tokens.entry(token).or_default();
            match class {
                Class::Spam => counts.spam = counts.spam.saturating_add(1),
                Class::Ham => counts.ham = counts.ham.saturating_add(1),
            }
            counts.day = counts.day.max(day);
        }
        *self.class_count(class) = self.class_count(class).saturating_add(1);
        let sequence = self.order.last_key_value().map_or(0, |(&last, _)| last + 1);
        self.ledger.insert(digest, Entry { class, sequence });
        self.order.insert(sequence, digest);
        learned
    }

    /// Untrains the message `digest` if the ledger holds it (`features` must be the
    /// message's, as when it was trained); returns whether it did. Counts never go
    /// below zero, even for tokens a prune dropped meanwhile; a token whose counts reach
    /// zero is removed. Token days are not restored: they only guide pruning.
    pub fn forget(&mut self, digest: u64, features: &Features) -> bool {
        let Some(entry) = self.ledger.remove(&digest) else {
            return false;
        };
        self.order.remove(&entry.sequence);
        for token in features.hashes() {
            if let Some(counts) = self.tokens.get_mut(token) {
                match entry.class {
                    Class::Spam => counts.spam = counts.spam.saturating_sub(1),
                    Class::Ham => counts.ham = counts.ham.saturating_sub(1),
                }
                if counts.spam == 0 && counts.ham == 0 {
                    self.tokens.remove(token);
                }
            }
        }
        *self.class_count(entry.class) = self.class_count(entry.class).saturating_sub(1);
        true
    }

    /// Messages trained and not forgotten: (spam, ham).
    pub fn messages(&self) -> (u32, u32) {
        (self.spam, self.ham)
    }

    /// Number of distinct tokens held.
    pub fn tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Bounds the model: drops the oldest ledger entries beyond `limits.max_ledger`, the
    /// tokens seen once and not trained for [`RARE_TOKEN_DAYS`], then, while more than
    /// `limits.max_tokens` remain, the least useful: rarest first, oldest among equals.
    pub fn prune(&mut self, limits: &Limits, day: u32) {
        while self.order.len() > limits.max_ledger {
            if let Some((_, digest)) = self.order.pop_first() {
                self.ledger.remove(&digest);
            }
        }
        let stale = day.saturating_sub(RARE_TOKEN_DAYS);
        self.tokens
            .retain(|_, counts| counts.spam.saturating_add(counts.ham) > 1 || counts.day >= stale);
        let excess = self.tokens.len().saturating_sub(limits.max_tokens);
        if excess > 0 {
            let mut ranked: Vec<(u64, u32, u64)> = self
                .tokens
                .iter()
                .map(|(&token, counts)| {
                    (
                        u64::from(counts.spam) + u64::from(counts.ham),
                        counts.day,
                        token,
                    )
                })
                .collect();
            ranked.select_nth_unstable(excess - 1);
            for &(_, _, token) in &ranked[..excess] {
                self.tokens.remove(&token);
            }
        }
    }

    /// Looks a token up.
    pub(crate) fn counts(&self, token: u64) -> Option<&TokenCounts> {
        self.tokens.get(&token)
    }

    fn class_count(&mut self, class: Class) -> &mut u32 {
        match class {
            Class::Spam => &mut self.spam,
            Class::Ham => &mut self.ham,
        }
    }
}
