//! Who has had a vacation reply, so each sender gets one per `:days` (RFC 5230 §4.1):
//! per account, in its Maildir root's `sieve/.vacation`, one line per (handle, sender)
//! with the time until which no new reply goes. Bounded: at most [`MAX_ENTRIES`], the
//! earliest to expire go first. Written atomically, after the reply is in the queue: a
//! crash in between can repeat a reply, never lose a message.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Senders remembered per account.
pub const MAX_ENTRIES: usize = 10_000;

const FILE: &str = ".vacation";

/// An account's replies.
pub struct Replied {
    path: PathBuf,
    /// "handle sender" -> Unix time until which that sender gets no reply.
    until: HashMap<String, u64>,
}

fn key(handle: &str, sender: &str) -> String {
    format!("{handle} {}", sender.to_lowercase())
}

impl Replied {
    /// The replies of the Maildir whose root is `root` (none when there is no file; a
    /// damaged line is skipped: at worst a sender gets a second reply).
    pub fn load(root: &Path) -> io::Result<Replied> {
        let path = root.join("sieve").join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let until = text
            .lines()
            .filter_map(|line| {
                let (time, key) = line.split_once(' ')?;
                Some((key.to_string(), time.parse().ok()?))
            })
            .collect();
        Ok(Replied { path, until })
    }

    /// True when `sender` may get a reply for `handle` at `now`.
    pub fn may_reply(&self, handle: &str, sender: &str, now: u64) -> bool {
        self.until
            .get(&key(handle, sender))
            .is_none_or(|until| *until <= now)
    }

    /// Notes a reply sent at `now`, quiet for `period` seconds, and saves.
    pub fn replied(&mut self, handle: &str, sender: &str, now: u64, period: u64) -> io::Result<()> {
        self.until.retain(|_, until| *until > now);
        self.until
            .insert(key(handle, sender), now.saturating_add(period));
        if self.until.len() > MAX_ENTRIES {
            let mut times: Vec<u64> = self.until.values().copied().collect();
            times.sort_unstable();
            let excess = self.until.len() - MAX_ENTRIES;
            let cut = times[excess];
            // The earliest to expire go; of those expiring at the cut, as many as needed.
            let mut ties = excess - times.iter().filter(|t| **t < cut).count();
            self.until.retain(|_, until| {
                if *until < cut {
                    return false;
                }
                if *until == cut && ties > 0 {
                    ties -= 1;
                    return false;
                }
                true
            });
        }
        self.save()
    }

    fn save(&self) -> io::Result<()> {
        let mut text = String::new();
        for (key, until) in &self.until {
            text.push_str(&format!("{until} {key}\n"));
        }
        let folder = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(folder)?;
        crate::atomic_file::replace(&self.path, text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reply_per_sender_per_period_and_it_survives_a_reload() {
        let root = tempfile::tempdir().unwrap();
        let mut replied = Replied::load(root.path()).unwrap();
        assert!(replied.may_reply("away", "Bob@far.test", 1000));
        replied
            .replied("away", "Bob@far.test", 1000, 86_400)
            .unwrap();
        assert!(!replied.may_reply("away", "bob@far.test", 2000));
        assert!(replied.may_reply("other-script", "bob@far.test", 2000));
        let reloaded = Replied::load(root.path()).unwrap();
        assert!(!reloaded.may_reply("away", "bob@far.test", 50_000));
        assert!(reloaded.may_reply("away", "bob@far.test", 1000 + 86_400));
    }

    #[test]
    fn the_table_is_bounded() {
        let root = tempfile::tempdir().unwrap();
        let mut replied = Replied::load(root.path()).unwrap();
        for i in 0..MAX_ENTRIES + 5 {
            replied
                .until
                .insert(key("h", &format!("s{i}@x.test")), 10_000 + i as u64);
        }
        replied.replied("h", "last@x.test", 1, 1_000_000).unwrap();
        assert_eq!(replied.until.len(), MAX_ENTRIES);
        assert!(!replied.may_reply("h", "last@x.test", 2));
        assert!(replied.may_reply("h", "s0@x.test", 2));
    }
}
