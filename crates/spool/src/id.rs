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

/// Octets in an id.
const ID_LEN: usize = TIME_DIGITS + RANDOM_DIGITS;

/// The identifier of one queued message; it names the spool file and appears in logs,
/// Received headers and 250 replies. Sixteen octets held inline: the queue manager keeps
/// one per queued message in memory, so it must stay small and cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId([u8; ID_LEN]);

impl QueueId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only base-32 digits are ever stored (see `try_from` and `generate`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The microsecond timestamp encoded in the id.
    pub fn micros(&self) -> u64 {
        self.0[..TIME_DIGITS].iter().fold(0u64, |acc, b| {
            acc << 5 | digit_value(*b).unwrap_or(0) as u64
        })
    }
}

impl TryFrom<String> for QueueId {
    type Error = String;

    /// Accepts only well-formed ids, so a spool file name can never smuggle a path.
    fn try_from(text: String) -> Result<Self, String> {
        let bytes: [u8; ID_LEN] = text
            .as_bytes()
            .try_into()
            .map_err(|_| format!("not a queue id: {text:?}"))?;
        if bytes.iter().all(|b| digit_value(*b).is_some()) {
            Ok(QueueId(bytes))
        } else {
            Err(format!("not a queue id: {text:?}"))
        }
    }
}

impl From<QueueId> for String {
    fn from(id: QueueId) -> String {
        id.as_str().to_string()
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({})", self.as_str())
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
        let mut id = [0u8; ID_LEN];
        put_digits(&mut id[..TIME_DIGITS], micros);
        put_digits(&mut id[TIME_DIGITS..], random);
        QueueId(id)
    }
}

/// Writes `value` as base-32 digits filling `out`, most significant first.
fn put_digits(out: &mut [u8], value: u64) {
    let count = out.len();
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = DIGITS[((value >> (5 * (count - 1 - i))) & 31) as usize];
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
        let future = QueueId::try_from("1zzzzzzzzzz00000".to_string()).unwrap();
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
