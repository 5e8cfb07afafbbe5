//! A message's features: the set of its token hashes, bounded in input read and in size.

use crate::hash;
use crate::tokenize;

/// Only the first 256 KiB of a message are read: spam shows itself early, and the cost
/// of a hostile 50 MiB message must stay that of a large ordinary one.
pub const MAX_INPUT: usize = 256 * 1024;

/// At most this many distinct features are kept per message: enough for a long
/// newsletter's words and pairs, few enough that scoring stays a few thousand lookups.
pub const MAX_FEATURES: usize = 6000;

/// Token emissions stop after this many (duplicates included), bounding tokenizer time.
const MAX_EMITTED: usize = 4 * MAX_FEATURES;

/// A message's features: sorted, deduplicated 64-bit token hashes. Presence only (a word
/// said ten times counts once): repetition is cheap for spammers and says little.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    hashes: Vec<u64>,
}

impl Features {
    /// Number of distinct features.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True if the message gave no feature at all.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hashes, ascending.
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// Builds features from arbitrary hashes (sorts, deduplicates, bounds to
    /// [`MAX_FEATURES`]); for tests and for callers with their own tokens.
    pub fn from_hashes(mut hashes: Vec<u64>) -> Features {
        hashes.sort_unstable();
        hashes.dedup();
        // Sorted hashes are a uniform sample order: truncation keeps a random-like,
        // deterministic subset rather than favouring the message's start.
        hashes.truncate(MAX_FEATURES);
        Features { hashes }
    }
}

/// Collects token hashes while the tokenizer walks a message, dropping emissions past
/// [`MAX_EMITTED`].
pub(crate) struct Sink {
    hashes: Vec<u64>,
}

impl Sink {
    fn new() -> Self {
        Sink {
            hashes: Vec::with_capacity(1024),
        }
    }

    /// Adds one token hash.
    pub(crate) fn push(&mut self, hash: u64) {
        if self.hashes.len() < MAX_EMITTED {
            self.hashes.push(hash);
        }
    }

    /// True once no more tokens are taken: callers may stop walking.
    pub(crate) fn full(&self) -> bool {
        self.hashes.len() >= MAX_EMITTED
    }
}

/// Tokenizes a message (headers, decoded text and HTML bodies, URLs, MIME structure) into
/// its features. Reads at most [`MAX_INPUT`] bytes, keeps at most [`MAX_FEATURES`];
/// any byte string is accepted.
pub fn features(message: &[u8]) -> Features {
    let message = &message[..message.len().min(MAX_INPUT)];
    let mut sink = Sink::new();
    tokenize::message(message, &mut sink);
    Features::from_hashes(sink.hashes)
}

/// Identity of a message's bytes (the whole message, not only the part tokenized): the
/// ledger's key, so one message is never counted twice for the same class.
pub fn digest(message: &[u8]) -> u64 {
    hash::of_bytes(0x006d_6573_7361_6765, message) // "message"
}
