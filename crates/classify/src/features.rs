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
    /// The family of the tokens pushed now (see [`Family`]).
    family: Family,
}

/// Where in the message a token comes from, kept in its hash's lowest bit: scoring
/// weighs the header section's evidence apart from the content's (see `score`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// Header fields: names, values, shapes (Received hops, addresses, mailers).
    Header = 0,
    /// What the sender wrote: Subject, body words and pairs, links, HTML and MIME.
    Content = 1,
}

impl Family {
    /// The family of a feature hash.
    pub(crate) fn of(hash: u64) -> Family {
        if hash & 1 == 0 {
            Family::Header
        } else {
            Family::Content
        }
    }
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

impl Sink {
    fn new() -> Self {
        Sink {
            hashes: Vec::with_capacity(1024),
            family: Family::Content,
        }
    }

    /// Adds one token hash.
    pub(crate) fn push(&mut self, hash: u64) {
        if self.hashes.len() < MAX_EMITTED {
            self.hashes.push(hash & !1 | self.family as u64);
        }
    }

    /// Tokens pushed from now on are of `family`; returns the family before.
    pub(crate) fn family(&mut self, family: Family) -> Family {
        std::mem::replace(&mut self.family, family)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The features `more` adds to `base`, by family.
    fn added(base: &[u8], more: &[u8]) -> (usize, usize) {
        let before = features(base);
        let after = features(more);
        let new: Vec<u64> = after
            .hashes()
            .iter()
            .filter(|h| before.hashes().binary_search(h).is_err())
            .copied()
            .collect();
        let headers = new
            .iter()
            .filter(|h| Family::of(**h) == Family::Header)
            .count();
        (headers, new.len() - headers)
    }

    #[test]
    fn header_and_content_tokens_are_told_apart() {
        let base = b"X-Mailer: Foo 1.0\r\n\r\nhello there world\r\n";
        let hop = b"Received: from relay.example.org ([192.0.2.1])\r\nX-Mailer: Foo 1.0\r\n\r\nhello there world\r\n";
        let (headers, content) = added(base, hop);
        assert!(headers > 0 && content == 0, "{headers} {content}");
        let words = b"X-Mailer: Foo 1.0\r\n\r\nhello there world, cheap pills\r\n";
        let (headers, content) = added(base, words);
        assert!(headers == 0 && content > 0, "{headers} {content}");
        // A Subject's words are what the sender wrote; its field is the header's.
        let subject = b"Subject: cheap pills\r\nX-Mailer: Foo 1.0\r\n\r\nhello there world\r\n";
        let (headers, content) = added(base, subject);
        assert!(headers > 0 && content > 0, "{headers} {content}");
    }
}
