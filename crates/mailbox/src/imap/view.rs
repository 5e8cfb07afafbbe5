//! The selected mailbox as one session sees it: message sequence numbers, and the
//! untagged EXISTS/EXPUNGE/FETCH responses that bring the session up to date with what
//! delivery and other sessions changed on disk.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use posthorn_maildir::store::cache::HeaderCache;
use posthorn_maildir::store::modseq::Expunged;
use posthorn_maildir::store::{Flags, Folder, Message};

use super::command::{SeqNumber, SequenceSet};
use super::condstore;
use super::enabled::Enabled;
use super::searchres;

/// A selected folder.
#[derive(Debug)]
pub struct View {
    /// Its name, as the client selected it.
    pub name: String,
    /// The folder on disk.
    pub folder: Folder,
    /// Its header cache.
    pub cache: HeaderCache,
    /// EXAMINE: no changes allowed.
    pub read_only: bool,
    /// UIDVALIDITY at selection.
    pub uid_validity: u32,
    /// UIDNEXT as last seen.
    pub uid_next: u32,
    /// Messages by sequence number (index + 1): the folder's listing, shared with the
    /// other sessions that see the folder as it is, until this session's view departs
    /// from it.
    pub messages: Arc<Vec<Message>>,
    /// UIDs that are \Recent in this session.
    pub recent: HashSet<u32>,
    /// The folder's keywords, for FLAGS.
    pub keywords: Vec<String>,
    /// HIGHESTMODSEQ as last seen.
    pub highest_modseq: u64,
    /// The folder's expunged UIDs as last seen, for QRESYNC.
    pub expunged: Expunged,
    /// What the client turned on: the session keeps it current.
    pub enabled: Enabled,
    /// Directory stamps at the last look: unchanged means nothing to do.
    stamp: Option<(SystemTime, SystemTime)>,
    /// Messages seen gone while expunges could not be reported.
    pending_expunge: bool,
    /// The UIDs SEARCH RETURN (SAVE) kept for `$` (RFC 5182), none after SELECT.
    pub saved: Vec<u32>,
}

impl View {
    /// Selects `folder`, called `name`: syncs it, claiming \Recent unless read-only. EXAMINE
    /// still shows which messages are \Recent, leaving them so for the next SELECT (RFC
    /// 3501 §6.3.2: the \Recent state is not changed).
    pub fn open(name: &str, folder: Folder, read_only: bool) -> io::Result<View> {
        let stamp = folder.stamp();
        let snapshot = folder.sync(!read_only)?;
        Ok(View {
            name: name.to_string(),
            read_only,
            uid_validity: snapshot.uid_validity,
            uid_next: snapshot.uid_next,
            recent: snapshot.recent.into_iter().collect(),
            keywords: snapshot.keywords,
            messages: snapshot.messages,
            highest_modseq: snapshot.highest_modseq,
            expunged: snapshot.expunged,
            enabled: Enabled::default(),
            saved: Vec::new(),
            cache: HeaderCache::new(folder.dir()),
            folder,
            stamp,
            pending_expunge: false,
        })
    }

    /// Looks at the folder again if it changed and writes the untagged responses for the
    /// differences into `out`. With `expunges` false (during FETCH, STORE and SEARCH, RFC
    /// 3501 §7.4.1) vanished messages keep their numbers until a later call may report them.
    pub fn refresh(&mut self, out: &mut Vec<u8>, expunges: bool) -> io::Result<()> {
        let stamp = self.folder.stamp();
        if stamp == self.stamp && !(expunges && self.pending_expunge) {
            return Ok(());
        }
        let snapshot = self.folder.sync(!self.read_only)?;
        self.stamp = stamp;
        self.announce_keywords(snapshot.keywords, out);
        // IMAP4rev2 has no \Recent (RFC 9051 Appendix E, item 6).
        if !self.enabled.imap4rev2 {
            self.recent.extend(snapshot.recent.iter().copied());
        }
        self.highest_modseq = snapshot.highest_modseq;
        self.expunged = snapshot.expunged;
        let listing = snapshot.messages;
        let mut fresh = listing.iter().peekable();
        let (mut matched, mut skipped) = (0, false);
        let mut gone = Vec::new();
        // The indexes of messages gone from the listing that keep their numbers for now.
        let mut stale = Vec::new();
        for (index, old) in self.messages.iter().enumerate() {
            while fresh.next_if(|m| m.uid < old.uid).is_some() {
                skipped = true;
            }
            match fresh.next_if(|m| m.uid == old.uid) {
                Some(now) => {
                    matched += 1;
                    // A CONDSTORE client also hears of a change that left the flags as
                    // they were (set and cleared again): its MODSEQ moved on.
                    if now.flags != old.flags
                        || (self.enabled.condstore && now.modseq != old.modseq)
                    {
                        out.extend_from_slice(
                            self.flags_fetch(index + 1, now, true, true).as_bytes(),
                        );
                    }
                }
                None if expunges => gone.push((index + 1, old.uid)),
                None => stale.push(index),
            }
        }
        self.pending_expunge = !expunges && (self.pending_expunge || !stale.is_empty());
        self.report_expunged(&gone, out);
        let before = matched + stale.len();
        // With every message of the listing in its place, this session's list is the
        // listing: share it rather than copy it.
        self.messages = if stale.is_empty() && !skipped {
            listing
        } else {
            Arc::new(self.merged(&listing, &stale))
        };
        self.uid_next = snapshot.uid_next;
        if self.messages.len() != before || !gone.is_empty() {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.messages.len()).as_bytes());
            if !self.enabled.imap4rev2 {
                out.extend_from_slice(format!("* {} RECENT\r\n", self.recent_count()).as_bytes());
            }
        }
        Ok(())
    }

    /// This session's messages brought up to date with `listing`: those still listed as
    /// the listing has them, those at `stale` (indexes, ascending) as they were, then the
    /// listing's messages after them.
    fn merged(&self, listing: &[Message], stale: &[usize]) -> Vec<Message> {
        let mut kept: Vec<Message> = self
            .messages
            .iter()
            .enumerate()
            .filter_map(|(index, old)| {
                if stale.binary_search(&index).is_ok() {
                    return Some(old.clone());
                }
                let at = listing.binary_search_by_key(&old.uid, |m| m.uid).ok()?;
                listing.get(at).cloned()
            })
            .collect();
        let last_uid = kept.last().map_or(0, |m| m.uid);
        kept.extend(listing.iter().filter(|m| m.uid > last_uid).cloned());
        kept
    }

    /// Takes `keywords` as the folder's list; when it changed, tells the client with FLAGS
    /// and PERMANENTFLAGS before any FETCH that carries a new keyword (RFC 3501 §7.2.6:
    /// FLAGS lists every flag the mailbox uses).
    pub fn announce_keywords(&mut self, keywords: Vec<String>, out: &mut Vec<u8>) {
        let known = keywords.len() == self.keywords.len()
            && keywords.iter().all(|k| self.keywords.contains(k));
        self.keywords = keywords;
        if !known {
            out.extend_from_slice(self.flags_responses().as_bytes());
        }
    }

    /// Adds the keywords among `used` that the folder's list lacks, as
    /// [`View::announce_keywords`] does.
    pub fn learn_keywords<'k>(
        &mut self,
        used: impl IntoIterator<Item = &'k String>,
        out: &mut Vec<u8>,
    ) {
        let mut keywords = self.keywords.clone();
        for keyword in used {
            if !keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword)) {
                keywords.push(keyword.clone());
            }
        }
        self.announce_keywords(keywords, out);
    }

    /// The untagged FLAGS and PERMANENTFLAGS of SELECT, and of a change to the keywords.
    pub fn flags_responses(&self) -> String {
        let list = self.flag_list();
        let permanent = if self.read_only {
            String::new()
        } else {
            format!("{list} \\*")
        };
        format!("* FLAGS ({list})\r\n* OK [PERMANENTFLAGS ({permanent})] flags allowed\r\n")
    }

    /// Forgets messages this session expunged itself, reporting them.
    pub fn remove(&mut self, uids: &[u32], out: &mut Vec<u8>) {
        let gone: Vec<(usize, u32)> = self
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| uids.contains(&m.uid))
            .map(|(i, m)| (i + 1, m.uid))
            .collect();
        if !gone.is_empty() {
            self.messages = Arc::new(
                self.messages
                    .iter()
                    .filter(|m| !uids.contains(&m.uid))
                    .cloned()
                    .collect(),
            );
        }
        for uid in uids {
            self.recent.remove(uid);
        }
        self.report_expunged(&gone, out);
    }

    /// Reports messages gone, given as (sequence number, UID) in ascending order: one
    /// VANISHED with their UIDs once QRESYNC is on (RFC 7162 §3.2.10), else an EXPUNGE
    /// each, from the highest down, as each renumbers the messages after it.
    fn report_expunged(&self, gone: &[(usize, u32)], out: &mut Vec<u8>) {
        if gone.is_empty() {
            return;
        }
        if self.enabled.qresync {
            let uids: Vec<u32> = gone.iter().map(|(_, uid)| *uid).collect();
            let set = condstore::number_set(&uids);
            out.extend_from_slice(format!("* VANISHED {set}\r\n").as_bytes());
            return;
        }
        for (seq, _) in gone.iter().rev() {
            out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
        }
    }

    /// Records new flags and MODSEQ of a message after a STORE of ours.
    pub fn set_flags(
        &mut self,
        uid: u32,
        file: String,
        flags: Flags,
        modseq: u64,
    ) -> Option<usize> {
        let index = self.messages.iter().position(|m| m.uid == uid)?;
        // Copied on this session's first change while other sessions share the list.
        let message = Arc::make_mut(&mut self.messages).get_mut(index)?;
        message.file = file.into();
        message.flags = flags;
        message.modseq = modseq;
        self.highest_modseq = self.highest_modseq.max(modseq);
        Some(index)
    }

    /// Writes the untagged FETCH telling the client of the flags of the message at
    /// `index`; see [`View::flags_fetch`].
    pub fn write_flags(&self, index: usize, uid: bool, flags: bool, out: &mut Vec<u8>) {
        if let Some(m) = self.messages.get(index) {
            out.extend_from_slice(self.flags_fetch(index + 1, m, uid, flags).as_bytes());
        }
    }

    /// `* seq FETCH (...)` for a message's flags: its UID when `uid` asks or CONDSTORE is
    /// on, FLAGS when `flags` asks, MODSEQ when CONDSTORE is on (RFC 7162 §3.1: every
    /// untagged FETCH then carries UID and MODSEQ, even after STORE .SILENT).
    fn flags_fetch(&self, seq: usize, m: &Message, uid: bool, flags: bool) -> String {
        let mut items = Vec::new();
        if uid || self.enabled.condstore {
            items.push(format!("UID {}", m.uid));
        }
        if flags {
            let recent = self.recent.contains(&m.uid);
            items.push(format!("FLAGS ({})", m.flags.to_imap(recent)));
        }
        if self.enabled.condstore {
            items.push(format!("MODSEQ ({})", m.modseq));
        }
        format!("* {seq} FETCH ({})\r\n", items.join(" "))
    }

    /// How many messages are \Recent here.
    pub fn recent_count(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| self.recent.contains(&m.uid))
            .count()
    }

    /// The indexes of the messages a set names: sequence numbers, or UIDs with `uid`.
    /// A sequence number past the end is an error (the client's view is wrong); UIDs that
    /// do not exist are skipped, as RFC 3501 §6.4.8 asks.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        if set.is_saved() {
            return Ok(searchres::indexes(self));
        }
        let count = self.messages.len() as u32;
        if uid {
            let last = self.messages.last().map_or(0, |m| m.uid);
            let mut indexes: Vec<usize> = self
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| super::search::in_set(set, m.uid, last.max(1)))
                .map(|(i, _)| i)
                .collect();
            // `n:*` with n past the last UID still names the last message (RFC 3501 §6.4.8).
            if indexes.is_empty()
                && count > 0
                && set
                    .0
                    .iter()
                    .any(|r| r.start == SeqNumber::Last || r.end == SeqNumber::Last)
            {
                indexes.push(self.messages.len() - 1);
            }
            return Ok(indexes);
        }
        for range in &set.0 {
            for end in [range.start, range.end] {
                if let SeqNumber::Value(n) = end
                    && n > count
                {
                    return Err(format!("invalid message sequence number {n}"));
                }
            }
        }
        Ok((1..=count)
            .filter(|n| super::search::in_set(set, *n, count))
            .map(|n| n as usize - 1)
            .collect())
    }

    /// The FLAGS response's list: system flags and the keywords in use.
    pub fn flag_list(&self) -> String {
        let mut list = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for keyword in &self.keywords {
            list.push(' ');
            list.push_str(keyword);
        }
        list
    }
}
