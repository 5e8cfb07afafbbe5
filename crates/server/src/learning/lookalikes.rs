//! Near-copies of what a user filed: the fingerprints (`posthorn_classify::fingerprint`)
//! of the messages an account filed into or out of Junk, so the next message like one of
//! them follows it from the first lesson on, while the classifier still needs a hundred
//! of each kind. The latest lesson about such a message wins: filing a near-copy back
//! out of Junk lets the next one through.
//!
//! The file is text: a `posthorn-lookalikes 1` line, then one message per line:
//! `digest class lesson slot,slot,...` (hexadecimal digest and slots; class `spam` or
//! `ham`; `lesson` orders them). At most `max` are kept, the oldest lessons go first.

use std::collections::HashMap;
use std::fmt::Write as _;

use posthorn_classify::{Class, Fingerprint, SLOTS};

use super::stored::Learnt;

const MAGIC: &str = "posthorn-lookalikes 1";

/// From this share of word runs in common on, a message is a near-copy.
pub(crate) const ALIKE: f64 = 0.5;

/// One filed message.
#[derive(Debug, Clone, PartialEq)]
struct Filed {
    fingerprint: Fingerprint,
    class: Class,
    /// Order of the lessons: the latest wins.
    lesson: u64,
}

/// An account's filed messages, by digest.
#[derive(Default)]
pub(crate) struct Lookalikes {
    filed: HashMap<u64, Filed>,
    next: u64,
}

/// A lesson about one message.
pub(crate) enum Filing {
    /// Filed as `class` (again, or the other way: the class is replaced).
    Filed {
        digest: u64,
        fingerprint: Fingerprint,
        class: Class,
    },
    /// Taken back.
    Forgotten { digest: u64 },
}

impl Lookalikes {
    /// How the latest filed near-copy of `fingerprint` was filed, and how alike it is.
    pub(crate) fn closest(&self, fingerprint: &Fingerprint) -> Option<(Class, f64)> {
        self.filed
            .values()
            .map(|f| (f, f.fingerprint.similarity(fingerprint)))
            .filter(|(_, similarity)| *similarity >= ALIKE)
            .max_by_key(|(f, _)| f.lesson)
            .map(|(f, similarity)| (f.class, similarity))
    }

    /// True when nothing was filed.
    pub(crate) fn is_empty(&self) -> bool {
        self.filed.is_empty()
    }
}

impl Learnt for Lookalikes {
    type Change = Filing;
    /// Messages kept at most.
    type Bounds = usize;

    fn apply(&mut self, filing: &Filing, _day: u32) {
        match filing {
            Filing::Filed {
                digest,
                fingerprint,
                class,
            } => {
                let lesson = self.next;
                self.next += 1;
                self.filed.insert(
                    *digest,
                    Filed {
                        fingerprint: fingerprint.clone(),
                        class: *class,
                        lesson,
                    },
                );
            }
            Filing::Forgotten { digest } => {
                self.filed.remove(digest);
            }
        }
    }

    fn prune(&mut self, max: &usize, _day: u32) {
        if self.filed.len() <= *max {
            return;
        }
        let mut lessons: Vec<u64> = self.filed.values().map(|f| f.lesson).collect();
        lessons.sort_unstable();
        let first_kept = lessons[lessons.len() - max];
        self.filed.retain(|_, f| f.lesson >= first_kept);
    }

    fn encode(&self) -> Vec<u8> {
        let mut text = format!("{MAGIC}\n");
        for (digest, f) in &self.filed {
            let class = match f.class {
                Class::Spam => "spam",
                Class::Ham => "ham",
            };
            let slots: Vec<String> = f.fingerprint.0.iter().map(|s| format!("{s:x}")).collect();
            let _ = writeln!(text, "{digest:x} {class} {} {}", f.lesson, slots.join(","));
        }
        text.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("not a lookalike table (no `{MAGIC}` line)"));
        }
        let mut table = Lookalikes::default();
        for (i, line) in lines.enumerate() {
            let bad = || format!("line {}: {line:?}", i + 2);
            let fields: Vec<&str> = line.split(' ').collect();
            let [digest, class, lesson, slots] = fields[..] else {
                return Err(bad());
            };
            let digest = u64::from_str_radix(digest, 16).map_err(|_| bad())?;
            let class = match class {
                "spam" => Class::Spam,
                "ham" => Class::Ham,
                _ => return Err(bad()),
            };
            let lesson: u64 = lesson.parse().map_err(|_| bad())?;
            let slots: Vec<u32> = slots
                .split(',')
                .map(|s| u32::from_str_radix(s, 16))
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            let fingerprint = Fingerprint(<[u32; SLOTS]>::try_from(slots).map_err(|_| bad())?);
            table.next = table.next.max(lesson + 1);
            table.filed.insert(
                digest,
                Filed {
                    fingerprint,
                    class,
                    lesson,
                },
            );
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(first: u32) -> Fingerprint {
        let mut slots = [7u32; SLOTS];
        slots[0] = first;
        Fingerprint(slots)
    }

    fn filed(digest: u64, fingerprint: Fingerprint, class: Class) -> Filing {
        Filing::Filed {
            digest,
            fingerprint,
            class,
        }
    }

    #[test]
    fn the_latest_lesson_about_a_near_copy_wins() {
        let mut table = Lookalikes::default();
        table.apply(&filed(1, print(1), Class::Spam), 0);
        assert_eq!(table.closest(&print(2)).map(|c| c.0), Some(Class::Spam));
        table.apply(&filed(2, print(3), Class::Ham), 0);
        assert_eq!(table.closest(&print(2)).map(|c| c.0), Some(Class::Ham));
        table.apply(&Filing::Forgotten { digest: 2 }, 0);
        assert_eq!(table.closest(&print(2)).map(|c| c.0), Some(Class::Spam));
        assert_eq!(table.closest(&Fingerprint([9; SLOTS])), None);
    }

    #[test]
    fn the_table_survives_encoding_pruning_keeps_the_latest_and_damage_is_an_error() {
        let mut table = Lookalikes::default();
        for digest in 0..10 {
            table.apply(&filed(digest, print(digest as u32), Class::Spam), 0);
        }
        table.prune(&4, 0);
        let back = Lookalikes::decode(&table.encode()).unwrap();
        assert_eq!(back.filed, table.filed);
        assert_eq!(back.filed.len(), 4);
        assert!(back.filed.contains_key(&9) && !back.filed.contains_key(&5));
        assert_eq!(back.next, 10);
        assert!(Lookalikes::decode(b"posthorn-lookalikes 1\n1 spam 0 1,2\n").is_err());
        assert!(Lookalikes::decode(b"posthorn-lookalikes 1\nzz spam 0 1\n").is_err());
        assert!(Lookalikes::decode(b"other\n").is_err());
    }
}
