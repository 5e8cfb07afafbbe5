//! What a folder remembers of its expunged UIDs, for QRESYNC (RFC 7162 §3.2): which
//! UIDs went away after a given mod-sequence, so a client that last saw the folder at
//! that mod-sequence is told exactly what vanished.
//!
//! The memory is bounded: each expunge is kept as the runs of consecutive UIDs it removed,
//! all under the mod-sequence of the expunge, and when there are more than [`MAX_SPANS`]
//! runs the two oldest are merged into one covering both, under the newer mod-sequence.
//! A merged run may cover UIDs that still exist or went away earlier; that is harmless,
//! because the answer always leaves out UIDs still present, and UIDs are never reused, so
//! every other UID in it really was expunged. Merging only ever makes the answer larger,
//! never leaves out a UID the client must forget (the §3.2.5.2 allowance).

/// How many runs of expunged UIDs a folder keeps before merging the oldest.
pub const MAX_SPANS: usize = 256;

/// One run of expunged UIDs and the mod-sequence of its expunge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    modseq: u64,
    first: u32,
    last: u32,
}

/// The expunged UIDs of a folder with their mod-sequences, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expunged(Vec<Span>);

impl Expunged {
    /// Remembers that `uids` were expunged at `modseq` (not below any recorded before).
    pub fn record(&mut self, modseq: u64, uids: &[u32]) {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for (first, last) in runs(&sorted) {
            self.0.push(Span {
                modseq,
                first,
                last,
            });
        }
        while self.0.len() > MAX_SPANS {
            let older = self.0.remove(0);
            if let Some(next) = self.0.first_mut() {
                next.first = next.first.min(older.first);
                next.last = next.last.max(older.last);
                next.modseq = next.modseq.max(older.modseq);
            }
        }
    }

    /// The UIDs expunged after `modseq`, as sorted, disjoint, inclusive ranges; they may
    /// include UIDs still present (see the module's note), which callers leave out.
    pub fn since(&self, modseq: u64) -> Vec<(u32, u32)> {
        let mut spans: Vec<(u32, u32)> = self
            .0
            .iter()
            .filter(|span| span.modseq > modseq)
            .map(|span| (span.first, span.last))
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (first, last) in spans {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        merged
    }

    /// The index file's form: `modseq:first-last` words separated by spaces.
    pub(super) fn render(&self) -> String {
        self.0
            .iter()
            .map(|s| format!("{}:{}-{}", s.modseq, s.first, s.last))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads [`Expunged::render`]'s form; `None` when it is damaged.
    pub(super) fn parse(text: &str) -> Option<Expunged> {
        let mut spans = Vec::new();
        for word in text.split_whitespace() {
            let (modseq, range) = word.split_once(':')?;
            let (first, last) = range.split_once('-')?;
            let span = Span {
                modseq: modseq.parse().ok()?,
                first: first.parse().ok()?,
                last: last.parse().ok()?,
            };
            if span.first == 0 || span.first > span.last {
                return None;
            }
            spans.push(span);
        }
        Some(Expunged(spans))
    }
}

/// Sorted distinct UIDs as runs of consecutive ones.
fn runs(sorted: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &uid in sorted {
        match runs.last_mut() {
            Some(run) if run.1.checked_add(1) == Some(uid) => run.1 = uid,
            _ => runs.push((uid, uid)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_what_went_after_a_modseq() {
        let mut expunged = Expunged::default();
        expunged.record(5, &[3, 1, 2, 9]);
        expunged.record(8, &[4, 20]);
        assert_eq!(expunged.since(4), [(1, 4), (9, 9), (20, 20)]);
        assert_eq!(expunged.since(5), [(4, 4), (20, 20)]);
        assert_eq!(expunged.since(8), []);
        let text = expunged.render();
        assert_eq!(text, "5:1-3 5:9-9 8:4-4 8:20-20");
        assert_eq!(Expunged::parse(&text), Some(expunged));
        assert_eq!(Expunged::parse(""), Some(Expunged::default()));
        assert_eq!(Expunged::parse("5:3-1"), None);
        assert_eq!(Expunged::parse("x"), None);
    }

    #[test]
    fn stays_bounded_and_never_forgets_a_uid() {
        let mut expunged = Expunged::default();
        for n in 1..=(MAX_SPANS as u32 + 10) {
            expunged.record(u64::from(n), &[n * 2]);
        }
        assert_eq!(expunged.0.len(), MAX_SPANS);
        // Every UID is still reported to a client that saw the folder before its expunge.
        let all = expunged.since(0);
        for n in 1..=(MAX_SPANS as u32 + 10) {
            assert!(all.iter().any(|(a, b)| (*a..=*b).contains(&(n * 2))), "{n}");
        }
        let recent = expunged.since(MAX_SPANS as u64 + 5);
        assert_eq!(
            recent,
            [
                (2 * (MAX_SPANS as u32 + 6), 2 * (MAX_SPANS as u32 + 6)),
                (2 * (MAX_SPANS as u32 + 7), 2 * (MAX_SPANS as u32 + 7)),
                (2 * (MAX_SPANS as u32 + 8), 2 * (MAX_SPANS as u32 + 8)),
                (2 * (MAX_SPANS as u32 + 9), 2 * (MAX_SPANS as u32 + 9)),
                (2 * (MAX_SPANS as u32 + 10), 2 * (MAX_SPANS as u32 + 10))
            ]
        );
    }
}
