//! Sender reputation of one account, as mox keeps it: the addresses its user wrote to
//! (correspondents) and their domains (kept as `@domain`), and the senders whose mail
//! the user kept or junked. A known
//! correspondent lowers a message's score, a junked sender raises it (`checks::learned`).
//!
//! The file is text, one sender per line: `address sent kept junked day`, after a
//! `posthorn-senders 1` line. At most `max_senders` are kept; those seen longest ago go
//! first.

use std::collections::HashMap;
use std::fmt::Write as _;

use posthorn_classify::Class;

use super::stored::Learnt;

const MAGIC: &str = "posthorn-senders 1";

/// What an account's mail says about one sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Messages the user sent to this address.
    pub sent: u32,
    /// Messages from it the user filed as not junk.
    pub kept: u32,
    /// Messages from it the user filed as junk.
    pub junked: u32,
    /// The last day (since the epoch) it was seen.
    pub day: u32,
}

/// An account's senders, by lower-case address.
#[derive(Default)]
pub(crate) struct Senders(HashMap<String, Standing>);

/// Something the account's user did.
pub(crate) enum Deed {
    /// Sent a message to these addresses.
    Wrote(Vec<String>),
    /// Filed a message from `sender` as `class`; `instead` when it had been filed as the
    /// other class before (that filing is taken back); `undo` when the filing itself is
    /// taken back.
    Filed {
        sender: String,
        class: Class,
        instead: bool,
        undo: bool,
    },
}

impl Senders {
    /// What the account knows of `address`.
    pub(crate) fn standing(&self, address: &str) -> Option<Standing> {
        self.0.get(&address.to_lowercase()).copied()
    }

    /// Senders known.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

fn count(class: Class, standing: &mut Standing) -> &mut u32 {
    match class {
        Class::Spam => &mut standing.junked,
        Class::Ham => &mut standing.kept,
    }
}

fn other(class: Class) -> Class {
    match class {
        Class::Spam => Class::Ham,
        Class::Ham => Class::Spam,
    }
}

impl Learnt for Senders {
    type Change = Deed;
    /// Senders kept at most.
    type Bounds = usize;

    fn apply(&mut self, deed: &Deed, day: u32) {
        match deed {
            Deed::Wrote(addresses) => {
                let domains = addresses
                    .iter()
                    .filter_map(|a| a.rsplit_once('@'))
                    .map(|(_, domain)| format!("@{domain}"));
                let keys: Vec<String> = addresses.iter().cloned().chain(domains).collect();
                for key in keys {
                    let standing = self.0.entry(key.to_lowercase()).or_default();
                    standing.sent = standing.sent.saturating_add(1);
                    standing.day = day;
                }
            }
            Deed::Filed {
                sender,
                class,
                instead,
                undo,
            } => {
                let standing = self.0.entry(sender.to_lowercase()).or_default();
                standing.day = day;
                if *undo {
                    let n = count(*class, standing);
                    *n = n.saturating_sub(1);
                    return;
                }
                let n = count(*class, standing);
                *n = n.saturating_add(1);
                if *instead {
                    let n = count(other(*class), standing);
                    *n = n.saturating_sub(1);
                }
            }
        }
    }

    fn prune(&mut self, max: &usize, _day: u32) {
        self.0.retain(|_, s| s.sent + s.kept + s.junked > 0);
        if self.0.len() <= *max {
            return;
        }
        let mut days: Vec<u32> = self.0.values().map(|s| s.day).collect();
        let cut = self.0.len() - max;
        days.select_nth_unstable(cut);
        let first_kept = days[cut];
        // Those last seen before the cut day go, then as many seen on it as the bound asks.
        let older = days.iter().filter(|d| **d < first_kept).count();
        let mut ties = cut - older;
        self.0.retain(|_, s| {
            if s.day < first_kept {
                return false;
            }
            if s.day == first_kept && ties > 0 {
                ties -= 1;
                return false;
            }
            true
        });
    }

    fn encode(&self) -> Vec<u8> {
        let mut text = format!("{MAGIC}\n");
        for (address, s) in &self.0 {
            let _ = writeln!(
                text,
                "{address} {} {} {} {}",
                s.sent, s.kept, s.junked, s.day
            );
        }
        text.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("not a sender table (no `{MAGIC}` line)"));
        }
        let mut senders = HashMap::new();
        for (i, line) in lines.enumerate() {
            let bad = || format!("line {}: {line:?}", i + 2);
            // From the right: a quoted local part may hold spaces.
            let mut fields = line.rsplitn(5, ' ');
            let mut number = || -> Result<u32, String> {
                fields.next().and_then(|n| n.parse().ok()).ok_or_else(bad)
            };
            let (day, junked, kept, sent) = (number()?, number()?, number()?, number()?);
            let address = fields.next().filter(|a| !a.is_empty()).ok_or_else(bad)?;
            let standing = Standing {
                sent,
                kept,
                junked,
                day,
            };
            senders.insert(address.to_string(), standing);
        }
        Ok(Senders(senders))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filed(sender: &str, class: Class, instead: bool) -> Deed {
        Deed::Filed {
            sender: sender.into(),
            class,
            instead,
            undo: false,
        }
    }

    #[test]
    fn deeds_count_and_a_refiling_moves_the_count() {
        let mut senders = Senders::default();
        senders.apply(&Deed::Wrote(vec!["Bob@Far.test".into()]), 10);
        senders.apply(&filed("eve@spam.test", Class::Ham, false), 11);
        senders.apply(&filed("EVE@spam.test", Class::Spam, true), 12);
        let bob = senders.standing("bob@far.test").unwrap();
        assert_eq!((bob.sent, bob.kept, bob.junked, bob.day), (1, 0, 0, 10));
        assert_eq!(senders.standing("@FAR.test").unwrap().sent, 1);
        let eve = senders.standing("eve@spam.test").unwrap();
        assert_eq!((eve.kept, eve.junked, eve.day), (0, 1, 12));
        senders.apply(
            &Deed::Filed {
                sender: "eve@spam.test".into(),
                class: Class::Spam,
                instead: false,
                undo: true,
            },
            13,
        );
        assert_eq!(senders.standing("eve@spam.test").unwrap().junked, 0);
    }

    #[test]
    fn the_table_survives_encoding_and_damage_is_an_error() {
        let mut senders = Senders::default();
        senders.apply(
            &Deed::Wrote(vec!["a@x.test".into(), "\"b c\"@y.test".into()]),
            3,
        );
        let back = Senders::decode(&senders.encode()).unwrap();
        assert_eq!(back.standing("a@x.test"), senders.standing("a@x.test"));
        assert_eq!(back.standing("\"b c\"@y.test").unwrap().sent, 1);
        assert_eq!(back.len(), 4);
        assert!(Senders::decode(b"posthorn-senders 1\na@x.test 1 2\n").is_err());
        assert!(Senders::decode(b"something else\n").is_err());
        assert!(Senders::decode(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn pruning_keeps_the_most_recently_seen() {
        let mut senders = Senders::default();
        for day in 0..100 {
            senders.apply(&Deed::Wrote(vec![format!("s{day}@x{day}.test")]), day);
        }
        senders.prune(&10, 100);
        assert_eq!(senders.len(), 10);
        assert!(senders.standing("s99@x99.test").is_some());
        assert!(senders.standing("@x99.test").is_some());
        assert!(senders.standing("s89@x89.test").is_none());
    }
}
