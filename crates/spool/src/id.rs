//! Queue ids: short, sortable by arrival, unique across restarts.
//!
//! An id is 11 base-32 digits of a microsecond timestamp that never goes backwards within a
//! process (and is seeded from the newest id found in the spool at start-up, so it does not
//! go backwards across restarts either), followed by 5 random base-32 digits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base-32 digits (no i, l, o, u); ASCII order is value order.
const DIGITS: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const TIME_DIGITS: usize = 11;
const RANDOM_DIGITS: usize = 5;

/// The identifier of one queued message; it names the spool file and appears in logs,
/// Received headers and 250 replies.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct QueueId(String);

impl QueueId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The microsecond timestamp encoded in the id.
    pub fn micros(&self) -> u64 {
        self.0.as_bytes()[..TIME_DIGITS]
            .iter()
            .fold(0u64, |acc, b| {
                acc << 5 | digit_value(*b).unwrap_or(0) as u64
            })
    }
}

impl TryFrom<String> for QueueId {
    type Error = String;

    /// Accepts only well-formed ids, so a spool file name can never smuggle a path.
    fn try_from(text: String) -> Result<Self, String> {
        if text.len() == TIME_DIGITS + RANDOM_DIGITS
            && text.bytes().all(|b| digit_value(b).is_some())
        {
            Ok(QueueId(text))
        } else {
            Err(format!("not a queue id: {text:?}"))
        }
    }
}

impl From<QueueId> for String {
    fn from(id: QueueId) -> String {
        id.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn digit_value(b: u8) -> Option<u8> {
    DIGITS.iter().position(|d| *d == b).map(|p| p as u8)
}

/// Makes ids; one per store.
#[derive(Debug, Default)]
pub struct IdGenerator {
    last_micros: AtomicU64,
}

impl IdGenerator {
    /// Makes sure every later id sorts after `id` (called for each id found at recovery).
    pub fn observe(&self, id: &QueueId) {
        self.last_micros.fetch_max(id.micros(), Ordering::SeqCst);
    }

    /// A new id.
    pub fn generate(&self) -> QueueId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut last = self.last_micros.load(Ordering::SeqCst);
        let micros = loop {
            let candidate = now.max(last + 1);
            match self.last_micros.compare_exchange(
                last,
                candidate,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break candidate,
                Err(seen) => last = seen,
            }
        };
        let mut random = [0u8; 4];
        // Without randomness the time part alone still makes ids unique in this process.
        let _ = getrandom::fill(&mut random);
        let random = u32::from_le_bytes(random) as u64;
        let mut text = String::with_capacity(TIME_DIGITS + RANDOM_DIGITS);
        push_digits(&mut text, micros, TIME_DIGITS);
        push_digits(&mut text, random, RANDOM_DIGITS);
        QueueId(text)
    }
}

fn push_digits(text: &mut String, value: u64, count: usize) {
    for i in (0..count).rev() {
        text.push(DIGITS[((value >> (5 * i)) & 31) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sorted() {
        let generator = IdGenerator::default();
        let ids: Vec<QueueId> = (0..10_000).map(|_| generator.generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn observe_moves_the_clock_forward() {
        let generator = IdGenerator::default();
        let future = QueueId("1zzzzzzzzzz00000".into());
        generator.observe(&future);
        assert!(generator.generate() > future);
    }

    #[test]
    fn parsing_refuses_paths() {
        assert!(QueueId::try_from("../../etc/passwd".to_string()).is_err());
        assert!(QueueId::try_from("0123456789b0000".to_string()).is_err());
        let id = IdGenerator::default().generate();
        assert_eq!(QueueId::try_from(id.to_string()), Ok(id));
    }
}
