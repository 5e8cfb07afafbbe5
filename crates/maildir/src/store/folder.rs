//! One Maildir folder as IMAP and POP3 see it: a numbered list of messages with flags.
//!
//! Every change Posthorn makes to `cur/` (moving mail in from `new/`, renaming a file for
//! its flags, unlinking, adding) happens under the folder's lock file, so two sessions
//! never race on one name; delivery only ever adds files to `new/` through `tmp/`, which
//! needs no lock. A message is known by its base name (the file name before `:2,`), which
//! never changes while it stays in the folder: a file whose flags were changed by another
//! session is found again by that name, and its UID follows it.
//!
//! Every change that adds or removes messages records its delta in the mailbox's quota
//! file ([`crate::quota`]): APPEND, COPY, MOVE between mailboxes, and expunges (IMAP's
//! EXPUNGE and CLOSE, POP3's deletions at QUIT). Such a change takes the mailbox's quota
//! lock before the folder's.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::warn;

use super::flags::{Flag, Flags, MAX_KEYWORDS, StoreOperation};
use super::index::{self, Entry, Index};
use super::modseq::Expunged;
use super::name::FileName;
use super::seen;
use super::shared;
use crate::maildir;
use crate::quota::{Change, Usage};

/// The lock file serialising changes to a folder.
const LOCK: &str = "posthorn-uidlist.lock";

/// From how many messages a sync that moved new mail waits for the clock to pass its
/// moves, so the listing that follows can be recorded as is and the next sync need not
/// list `cur/` again: the wait (at most 20 ms) costs about what listing 10 000 files does.
/// A folder without an index waits whatever its size, once. Tests wait always, to see
/// that path on small folders.
const WORTH_WAITING: usize = if cfg!(test) { 1 } else { 10_000 };

/// A message as a folder listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its UID, stable while UIDVALIDITY stays.
    pub uid: u32,
    /// Its current file name in `cur/`.
    pub file: FileName,
    /// Its flags.
    pub flags: Flags,
    /// Its size in octets.
    pub size: u64,
    /// Its MODSEQ (RFC 7162): the mod-sequence of its arrival or last flag change.
    pub modseq: u64,
}

impl Message {
    /// The part of the file name that never changes.
    pub fn base(&self) -> &str {
        base_of(&self.file)
    }
}

/// A folder's state at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT.
    pub uid_next: u32,
    /// The messages in UID order, shared with the other sessions that synced the folder
    /// while it stayed as it is (see `store/shared.rs`).
    pub messages: Arc<Vec<Message>>,
    /// UIDs no session has claimed as \Recent before this sync.
    pub recent: Vec<u32>,
    /// The keywords in use in this folder.
    pub keywords: Vec<String>,
    /// HIGHESTMODSEQ (RFC 7162 §3.1.1).
    pub highest_modseq: u64,
    /// The expunged UIDs with their mod-sequences, for QRESYNC's VANISHED.
    pub expunged: Expunged,
}

impl Snapshot {
    /// From `header`, an index whose entries are `messages`.
    fn new(header: Index, messages: Arc<Vec<Message>>, recent: Vec<u32>) -> Snapshot {
        Snapshot {
            uid_validity: header.uid_validity,
            uid_next: header.uid_next,
            messages,
            recent,
            keywords: header.keywords,
            highest_modseq: header.highest_modseq,
            expunged: header.expunged,
        }
    }
}

/// What COPY or MOVE did: UIDPLUS's COPYUID, and where each message now is (for the
/// spam classifier to read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The target's UIDVALIDITY.
    pub uid_validity: u32,
    /// The messages placed, in the order they were asked for.
    pub placed: Vec<Placed>,
}

/// One message COPY or MOVE placed in the target folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Its UID in the source folder.
    pub source_uid: u32,
    /// Its UID in the target folder.
    pub uid: u32,
    /// Its file name in the target's `cur/`.
    pub file: String,
}

/// What APPEND stored: UIDPLUS's APPENDUID, and the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The folder's UIDVALIDITY.
    pub uid_validity: u32,
    /// The message's UID.
    pub uid: u32,
    /// Its file name in `cur/`.
    pub file: String,
}

impl Appended {
    /// The part of its file name that never changes.
    pub fn base(&self) -> &str {
        base_of(&self.file)
    }
}

/// A message's flags as a STORE found them on disk and left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    /// Its UID.
    pub uid: u32,
    /// Its file name now.
    pub file: String,
    /// Its flags before the change.
    pub before: Flags,
    /// Its flags now, as the file name holds them.
    pub flags: Flags,
    /// Its MODSEQ now.
    pub modseq: u64,
}

/// What a conditional STORE did (RFC 7162 §3.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The messages still present, with their flags before and after.
    pub changed: Vec<FlagChange>,
    /// The UIDs left alone because they changed after the UNCHANGEDSINCE mod-sequence.
    pub modified: Vec<u32>,
}

/// A Maildir folder.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The Maildir root of the mailbox it belongs to, where its quota file is.
    root: PathBuf,
    dir: PathBuf,
    hostname: String,
}

/// A message's current file name and flags, as found under the lock.
struct Current {
    name: String,
    flags: Flags,
}

impl Folder {
    /// The folder at `dir` of the mailbox at `root` (`dir` is `root` for INBOX,
    /// `root/.Name` for the others). `hostname` goes into the names of files we create.
    pub(crate) fn new(root: PathBuf, dir: PathBuf, hostname: &str) -> Folder {
        Folder {
            root,
            dir,
            hostname: hostname.to_string(),
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The modification times of `new/` and `cur/`: any delivery, flag change or expunge
    /// changes one of them, so a session compares them to decide whether to look again.
    pub fn stamp(&self) -> Option<(SystemTime, SystemTime)> {
        let time = |sub: &str| fs::metadata(self.dir.join(sub)).and_then(|m| m.modified());
        Some((time("new").ok()?, time("cur").ok()?))
    }

    /// Takes new mail into `cur/`, gives UIDs to files that have none, forgets files that
    /// are gone, and returns the folder's state. With `claim_recent`, messages no session
    /// has seen yet are returned as \Recent and will not be \Recent for anyone else.
    pub fn sync(&self, claim_recent: bool) -> io::Result<Snapshot> {
        let _lock = self.lock()?;
        self.sync_locked(claim_recent)
    }

    /// The sync itself. Everything it finds changed since the index was written (files
    /// gone, names changed by a flag change nobody recorded, new files) shares one new
    /// mod-sequence.
    fn sync_locked(&self, claim_recent: bool) -> io::Result<Snapshot> {
        maildir::create(&self.dir)?;
        let before = seen::Folders::observe(&self.dir);
        let trusted = before.and_then(|folders| seen::unchanged(&self.dir, folders));
        if let Some(snapshot) = trusted.and_then(|index| self.shared(index, claim_recent)) {
            return Ok(snapshot);
        }
        let (mut index, mut dirty) = self.load_index()?;
        let up_to_date = !dirty && trusted.is_some();
        let mut listed = seen::Listed::Observed(before);
        if !up_to_date {
            let moved = self.take_new()?;
            // A folder with no index yet (`dirty` here) may hold any number of files.
            if moved > 0 && (dirty || index.entries.len() + moved >= WORTH_WAITING) {
                listed = seen::Listed::AfterOwnChange(self.after_own_moves());
            }
            dirty |= self.match_files(&mut index)?;
        }
        let recent: Vec<u32> = index
            .entries
            .iter()
            .map(|e| e.uid)
            .filter(|uid| *uid >= index.first_recent)
            .collect();
        if claim_recent && index.first_recent != index.uid_next {
            index.first_recent = index.uid_next;
            dirty = true;
        }
        if dirty {
            index.save(&self.dir)?;
        }
        // The index file the listing below matches, trusted to list the folder exactly.
        let index_file = if dirty || !up_to_date {
            seen::record(&self.dir, listed, seen::Folders::observe(&self.dir))?
        } else {
            trusted
        };
        let keywords = &index.keywords;
        let messages: Arc<Vec<Message>> = Arc::new(
            std::mem::take(&mut index.entries)
                .into_iter()
                .map(|entry| Message {
                    uid: entry.uid,
                    flags: Flags::from_info(info_of(&entry.name), keywords),
                    size: self.size_of(&entry.name),
                    file: entry.name,
                    modseq: entry.modseq,
                })
                .collect(),
        );
        // What is left of the index (its entries are now `messages`) heads the listing.
        if let Some(index_file) = index_file {
            shared::keep(&self.dir, index_file, index.clone(), &messages);
        }
        Ok(Snapshot::new(index, messages, recent))
    }

    /// The snapshot from the listing other sessions share for the index file `index`,
    /// unless there is none or this sync must claim \Recent messages (which saves the
    /// index: the full sync does it).
    fn shared(&self, index: seen::IndexFile, claim_recent: bool) -> Option<Snapshot> {
        let (header, messages) = shared::find(&self.dir, index)?;
        if claim_recent && header.first_recent != header.uid_next {
            return None;
        }
        let first = messages.partition_point(|m| m.uid < header.first_recent);
        let recent = messages.get(first..)?.iter().map(|m| m.uid).collect();
        Some(Snapshot::new(header, messages, recent))
    }

    /// The folders' times after this sync's own moves into `cur/`, once they can be
    /// trusted ([`seen::Folders::after_own_change`]); `None` when mail arrived in `new/`
    /// meanwhile, which the moves missed.
    fn after_own_moves(&self) -> Option<seen::Folders> {
        let folders = seen::Folders::after_own_change(&self.dir)?;
        list(&self.dir.join("new"))
            .is_ok_and(|names| names.is_empty())
            .then_some(folders)
    }

    /// Brings `index` in line with the files in `cur/`: files gone forgotten, names
    /// changed by an unrecorded flag change followed, unknown files given UIDs. True when
    /// the index changed.
    fn match_files(&self, index: &mut Index) -> io::Result<bool> {
        let files = self.list_cur()?;
        let mut by_base: HashMap<&str, &str> = files
            .iter()
            .map(|name| (base_of(name), name.as_str()))
            .collect();
        let change = index.highest_modseq + 1;
        let gone: Vec<u32> = index
            .entries
            .iter()
            .filter(|e| !by_base.contains_key(base_of(&e.name)))
            .map(|e| e.uid)
            .collect();
        index.forget(&gone, change);
        for entry in &mut index.entries {
            if let Some(name) = by_base.remove(base_of(&entry.name))
                && entry.name != name
            {
                entry.name = name.into();
                entry.modseq = change;
                index.highest_modseq = change;
            }
        }
        // Files new to the index, in delivery order as their names tell it.
        let mut unknown: Vec<&str> = by_base.into_values().collect();
        unknown.sort_unstable_by_key(|name| delivery_order(name));
        for name in unknown {
            let uid = index.uid_next;
            index.uid_next = index.uid_next.saturating_add(1);
            index.entries.push(Entry {
                uid,
                modseq: change,
                name: name.into(),
            });
            index.highest_modseq = change;
        }
        Ok(index.highest_modseq == change)
    }

    /// The index, or a fresh one (to be saved) when there is none or it is damaged.
    fn load_index(&self) -> io::Result<(Index, bool)> {
        match Index::load(&self.dir)? {
            Ok(Some(index)) => Ok((index, false)),
            Ok(None) => Ok((Index::fresh(index::new_validity(&self.root, None)?), true)),
            Err(previous) => {
                warn!(folder = %self.dir.display(), "damaged UID list; renumbering the folder");
                // The old UIDVALIDITY is at most the time the file was last written, even
                // when its text is unreadable: the new one must differ from it.
                let written = modified_secs(&self.dir.join(index::FILE)).unwrap_or(0);
                let written = u32::try_from(written).unwrap_or(u32::MAX);
                let previous = previous.unwrap_or(0).max(written);
                Ok((
                    Index::fresh(index::new_validity(&self.root, Some(previous))?),
                    true,
                ))
            }
        }
    }

    /// Moves every file of `new/` into `cur/` with an empty info part; returns how many it
    /// moved. A file another session moved first is simply not there any more.
    fn take_new(&self) -> io::Result<usize> {
        let mut moved = 0;
        for name in list(&self.dir.join("new"))? {
            let target = if name.contains(':') {
                name.clone()
            } else {
                format!("{name}:2,")
            };
            match fs::rename(
                self.dir.join("new").join(&name),
                self.dir.join("cur").join(target),
            ) {
                Ok(()) => moved += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if moved > 0 {
            File::open(self.dir.join("cur"))?.sync_all()?;
            File::open(self.dir.join("new"))?.sync_all()?;
        }
        Ok(moved)
    }

    fn list_cur(&self) -> io::Result<Vec<String>> {
        #[cfg(test)]
        tests::LISTINGS.set(tests::LISTINGS.get() + 1);
        list(&self.dir.join("cur"))
    }

    /// The size from the `S=` of the name, or the file's length.
    fn size_of(&self, file: &str) -> u64 {
        maildir::size_from_name(file)
            .unwrap_or_else(|| fs::metadata(self.dir.join("cur").join(file)).map_or(0, |m| m.len()))
    }

    /// Reads a message; `file` may be out of date (flags changed since), then it is
    /// found by its base name. `None` if it has been expunged.
    pub fn read(&self, file: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(mut opened) = self.open(file)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut opened, &mut bytes)?;
        Ok(Some(bytes))
    }

    /// Opens a message for reading, as [`Folder::read`] finds it. The open file keeps its
    /// content even if the message is renamed or expunged meanwhile, so FETCH can copy it
    /// piece by piece.
    pub fn open(&self, file: &str) -> io::Result<Option<File>> {
        match File::open(self.dir.join("cur").join(file)) {
            Ok(opened) => return Ok(Some(opened)),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        // Renamed since: look it up again under the lock, so no second rename can slip
        // in between finding the new name and opening it.
        let _lock = self.lock()?;
        let Some(name) = Names::new(self).current(file)? else {
            return Ok(None);
        };
        match File::open(self.dir.join("cur").join(name)) {
            Ok(opened) => Ok(Some(opened)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// INTERNALDATE: the file's modification time (Maildir's delivery time), Unix seconds.
    pub fn internal_date(&self, file: &str) -> i64 {
        modified_secs(&self.dir.join("cur").join(file)).unwrap_or(0)
    }

    /// Changes the flags of `messages` (UID and file name as last seen) as STORE asks,
    /// starting from their flags now on disk, so concurrent changes by others are kept.
    /// Returns the messages still present with their flags before and after: what the
    /// new name holds, so a keyword the folder had no letter left for is not among them.
    pub fn store_flags(
        &self,
        messages: &[(u32, String)],
        operation: StoreOperation,
        flags: &[Flag],
    ) -> io::Result<Vec<FlagChange>> {
        Ok(self
            .store_flags_if(messages, operation, flags, None)?
            .changed)
    }

    /// [`Folder::store_flags`] with RFC 7162's UNCHANGEDSINCE: a message whose MODSEQ is
    /// above `unchanged_since` is left alone and reported as modified, decided under the
    /// folder's lock so no change slips in between the test and the rename (§3.1.3).
    /// Every message whose flags change gets one new MODSEQ, saved in the index before
    /// this returns; a message whose flags stay as they were keeps its MODSEQ.
    pub fn store_flags_if(
        &self,
        messages: &[(u32, String)],
        operation: StoreOperation,
        flags: &[Flag],
        unchanged_since: Option<u64>,
    ) -> io::Result<Stored> {
        let _lock = self.lock()?;
        let (mut index, mut dirty) = self.load_index()?;
        dirty |= add_keywords(&mut index, flags);
        let change = index.highest_modseq + 1;
        let mut names = Names::new(self);
        let mut stored = Stored::default();
        let mut renamed = false;
        for (uid, file) in messages {
            let Some(current) = names.current_with_flags(file, &index.keywords)? else {
                continue;
            };
            let Some(entry) = index
                .position(*uid)
                .and_then(|at| index.entries.get_mut(at))
            else {
                continue;
            };
            if entry.name != current.name {
                // Renamed by someone who did not record it: a change of its own.
                entry.name = current.name.as_str().into();
                entry.modseq = change;
                dirty = true;
            }
            if unchanged_since.is_some_and(|since| entry.modseq > since) {
                stored.modified.push(*uid);
                continue;
            }
            let mut new = match operation {
                StoreOperation::Replace => Flags::default(),
                _ => current.flags.clone(),
            };
            for flag in flags {
                match operation {
                    StoreOperation::Remove => new.remove(flag),
                    _ => new.insert(flag),
                }
            }
            let info = new.to_info(&index.keywords);
            let name = format!("{}:2,{info}", base_of(&current.name));
            if name != current.name {
                fs::rename(
                    self.dir.join("cur").join(&current.name),
                    self.dir.join("cur").join(&name),
                )?;
                renamed = true;
                entry.name = name.as_str().into();
                entry.modseq = change;
            }
            stored.changed.push(FlagChange {
                uid: *uid,
                file: name,
                before: current.flags,
                flags: Flags::from_info(&info, &index.keywords),
                modseq: entry.modseq,
            });
        }
        if renamed {
            File::open(self.dir.join("cur"))?.sync_all()?;
        }
        if renamed || dirty {
            if index.entries.iter().any(|e| e.modseq == change) {
                index.highest_modseq = change;
            }
            index.save(&self.dir)?;
        }
        Ok(stored)
    }

    /// Adds the keywords among `flags` to the folder's list (as far as letters last) and
    /// returns the list.
    fn register_keywords(&self, flags: &[Flag]) -> io::Result<Vec<String>> {
        let (mut index, mut dirty) = self.load_index()?;
        dirty |= add_keywords(&mut index, flags);
        if dirty {
            index.save(&self.dir)?;
        }
        Ok(index.keywords)
    }

    /// Deletes `messages` (UID and file name as last seen); returns the UIDs that were
    /// still there and are now gone.
    pub fn expunge(&self, messages: &[(u32, String)]) -> io::Result<Vec<u32>> {
        let quota = Change::begin(&self.root)?;
        let _lock = self.lock()?;
        let mut names = Names::new(self);
        let mut gone = Vec::new();
        let mut freed = Usage::default();
        let result = messages.iter().try_for_each(|(uid, file)| {
            let Some(name) = names.current(file)? else {
                return Ok(());
            };
            let size = self.size_of(&name);
            match fs::remove_file(self.dir.join("cur").join(&name)) {
                Ok(()) => {
                    gone.push(*uid);
                    freed.add(size);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        });
        // What is gone is gone even if a later file failed.
        quota.removed(freed);
        result?;
        if !gone.is_empty() {
            File::open(self.dir.join("cur"))?.sync_all()?;
            self.forget(&gone)?;
        }
        Ok(gone)
    }

    /// Takes `uids`, whose files this folder just removed, out of the index as expunged
    /// under a new mod-sequence. Called under the lock; were it not to happen (a crash),
    /// the next sync would find the files gone and do the same.
    fn forget(&self, uids: &[u32]) -> io::Result<()> {
        let (mut index, _) = self.load_index()?;
        let change = index.highest_modseq + 1;
        index.forget(uids, change);
        index.save(&self.dir)
    }

    /// Stores a new message with `flags` and internal date `date` (Unix seconds): written
    /// and synced in `tmp/`, then renamed into `cur/`.
    pub fn append(
        &self,
        content: &[u8],
        flags: &[Flag],
        date: Option<i64>,
    ) -> io::Result<Appended> {
        maildir::create(&self.dir)?;
        let base = maildir::unique_name(&self.hostname, content.len() as u64);
        let tmp = self.dir.join("tmp").join(&base);
        let written = write_synced(&tmp, content, date);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let placed = Change::begin(&self.root).and_then(|quota| {
            let lock = self.lock()?;
            let keywords = self.register_keywords(flags)?;
            let mut set = Flags::default();
            flags.iter().for_each(|f| set.insert(f));
            let name = format!("{base}:2,{}", set.to_info(&keywords));
            fs::rename(&tmp, self.dir.join("cur").join(&name))?;
            quota.added(Usage::one(content.len() as u64));
            Ok(lock)
        });
        let _lock = match placed {
            Ok(lock) => lock,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        File::open(self.dir.join("cur"))?.sync_all()?;
        let listing = self.sync_locked(false)?;
        let stored = listing
            .messages
            .iter()
            .find(|m| m.base() == base)
            .ok_or_else(|| io::Error::other("a message vanished as it was added"))?;
        Ok(Appended {
            uid_validity: listing.uid_validity,
            uid: stored.uid,
            file: stored.file.to_string(),
        })
    }

    /// Copies `messages` into `target` with their flags (hard links: the content is
    /// shared and already durable).
    pub fn copy_to(&self, messages: &[(u32, String)], target: &Folder) -> io::Result<Transfer> {
        self.transfer(messages, target, false)
    }

    /// Moves `messages` into `target`: each file is renamed across, so at every instant it
    /// is in exactly one of the two folders. A move into the folder itself renames each
    /// file under a new base name, so it gets a new UID (RFC 6851 §3.3 allows it).
    pub fn move_to(&self, messages: &[(u32, String)], target: &Folder) -> io::Result<Transfer> {
        self.transfer(messages, target, true)
    }

    fn transfer(
        &self,
        messages: &[(u32, String)],
        target: &Folder,
        remove: bool,
    ) -> io::Result<Transfer> {
        let same = self.dir == target.dir;
        maildir::create(&target.dir)?;
        // The quota locks before the folders' (see `Change`): the source mailbox's, and the
        // target's if it is another mailbox.
        let quota = Change::begin(&self.root)?;
        let target_quota = if target.root == self.root {
            None
        } else {
            Some(Change::begin(&target.root)?)
        };
        // Both locks, always taken in path order so two opposite transfers cannot deadlock;
        // one when the folder is its own target (a second would wait for the first).
        let (_first, _second) = if same {
            (self.lock()?, None)
        } else if self.dir < target.dir {
            let a = self.lock()?;
            (a, Some(target.lock()?))
        } else {
            let a = target.lock()?;
            (a, Some(self.lock()?))
        };
        let (source_index, _) = self.load_index()?;
        let mut names = Names::new(self);
        let mut found = Vec::with_capacity(messages.len());
        for (uid, file) in messages {
            if let Some(current) = names.current_with_flags(file, &source_index.keywords)? {
                found.push((*uid, current));
            }
        }
        // The target learns every keyword the messages carry in one update of its index.
        let keyword_flags: Vec<Flag> = found
            .iter()
            .flat_map(|(_, current)| current.flags.keywords())
            .map(|k| Flag::Keyword(k.clone()))
            .collect();
        let keywords = target.register_keywords(&keyword_flags)?;
        let mut placed: Vec<(u32, String)> = Vec::new();
        let mut added = Usage::default();
        let result = found.into_iter().try_for_each(|(uid, current)| {
            let info = current.flags.to_info(&keywords);
            let from = self.dir.join("cur").join(&current.name);
            let size = self.size_of(&current.name);
            let base = if remove && !same {
                base_of(&current.name).to_string()
            } else {
                maildir::unique_name(&self.hostname, size)
            };
            let to = target.dir.join("cur").join(format!("{base}:2,{info}"));
            let result = if remove {
                fs::rename(&from, &to)
            } else {
                fs::hard_link(&from, &to).or_else(|_| copy_synced(&from, &to, &target.dir))
            };
            match result {
                Ok(()) => {
                    placed.push((uid, base));
                    added.add(size);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        });
        // What was placed is recorded even if a later message failed. A copy adds to the
        // target's mailbox; a move takes from one mailbox what it adds to the other, and
        // changes nothing inside one mailbox (a hard link counts as a message of its own,
        // as the walk that recalculates counts it).
        match (&target_quota, remove) {
            (None, true) => {}
            (None, false) => quota.added(added),
            (Some(target_quota), _) => {
                if remove {
                    quota.removed(added);
                }
                target_quota.added(added);
            }
        }
        result?;
        File::open(target.dir.join("cur"))?.sync_all()?;
        if remove {
            File::open(self.dir.join("cur"))?.sync_all()?;
        }
        if remove && !same {
            let moved: Vec<u32> = placed.iter().map(|(uid, _)| *uid).collect();
            self.forget(&moved)?;
        }
        let listing = target.sync_locked(false)?;
        let by_base: HashMap<&str, &Message> =
            listing.messages.iter().map(|m| (m.base(), m)).collect();
        let placed = placed
            .iter()
            .filter_map(|(source_uid, base)| {
                let message = by_base.get(base.as_str())?;
                Some(Placed {
                    source_uid: *source_uid,
                    uid: message.uid,
                    file: message.file.to_string(),
                })
            })
            .collect();
        Ok(Transfer {
            uid_validity: listing.uid_validity,
            placed,
        })
    }

    /// An exclusive lock on the folder, released when dropped.
    fn lock(&self) -> io::Result<File> {
        maildir::create(&self.dir)?;
        lock_folder(&self.dir)
    }
}

/// Adds the keywords among `flags` to the index's list, as far as letters last; true if
/// the list changed.
fn add_keywords(index: &mut Index, flags: &[Flag]) -> bool {
    let mut added = false;
    for flag in flags {
        if let Flag::Keyword(k) = flag
            && !index
                .keywords
                .iter()
                .any(|have| have.eq_ignore_ascii_case(k))
            && index.keywords.len() < MAX_KEYWORDS
        {
            index.keywords.push(k.clone());
            added = true;
        }
    }
    added
}

/// Locks the existing folder at `dir` (its lock file made if missing), as every change to
/// its `cur/` does and as the quota's recalculation does to list it.
pub(crate) fn lock_folder(dir: &Path) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(LOCK))?;
    file.lock()?;
    Ok(file)
}

/// A file's modification time in Unix seconds: Maildir's delivery time, IMAP's
/// INTERNALDATE.
fn modified_secs(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let since = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_secs()).ok()
}

/// The current names in a folder's `cur/`, for finding messages whose names changed
/// since a session last looked. `cur/` is listed at most once, when the first stale name
/// is met, so a batch meeting many of them reads the folder once, not once per message.
/// Used under the folder's lock, where only the caller renames.
struct Names<'f> {
    folder: &'f Folder,
    by_base: Option<HashMap<String, String>>,
}

impl<'f> Names<'f> {
    fn new(folder: &'f Folder) -> Names<'f> {
        Names {
            folder,
            by_base: None,
        }
    }

    /// The current name of the message last seen as `file`, if it is still here.
    fn current(&mut self, file: &str) -> io::Result<Option<String>> {
        if self.folder.dir.join("cur").join(file).exists() {
            return Ok(Some(file.to_string()));
        }
        if self.by_base.is_none() {
            let listing = self.folder.list_cur()?;
            self.by_base = Some(
                listing
                    .into_iter()
                    .map(|name| (base_of(&name).to_string(), name))
                    .collect(),
            );
        }
        Ok(self
            .by_base
            .as_ref()
            .and_then(|names| names.get(base_of(file)).cloned()))
    }

    /// The current name and flags (read with the folder's `keywords`).
    fn current_with_flags(
        &mut self,
        file: &str,
        keywords: &[String],
    ) -> io::Result<Option<Current>> {
        Ok(self.current(file)?.map(|name| Current {
            flags: Flags::from_info(info_of(&name), keywords),
            name,
        }))
    }
}

/// The order of delivery from a Maildir name, `SECONDS.MMICROS...`: numbers compared as
/// numbers (`M99` before `M100`); names of other forms after, by name.
fn delivery_order(name: &str) -> (u64, u64, &str) {
    let mut fields = name.split('.');
    let seconds = fields.next().and_then(|s| s.parse().ok());
    let micros = fields.next().and_then(|f| {
        let digits: String = f
            .strip_prefix('M')?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    (seconds.unwrap_or(u64::MAX), micros.unwrap_or(0), name)
}

/// The base name: the file name before the `:2,` info.
pub fn base_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(base, _)| base)
}

/// The flag letters of a file name (after the first `:2,`), found from each `:` (a byte
/// search): searching for the string sets up a substring searcher per name, which cost
/// more than the search in a sync of 100 000 messages.
fn info_of(name: &str) -> &str {
    name.match_indices(':')
        .find_map(|(at, _)| name.get(at + 1..)?.strip_prefix("2,"))
        .unwrap_or("")
}

/// The names in a Maildir subfolder, without dot files; a missing folder is empty.
fn list(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    Ok(names)
}

/// Writes a new file, synced, with its modification time set to `date` if given.
fn write_synced(path: &Path, content: &[u8], date: Option<i64>) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)?;
    if let Some(date) = date {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64);
        file.set_modified(time)?;
    }
    file.sync_all()
}

/// A copy through the target's `tmp/` when a hard link is not possible.
fn copy_synced(from: &Path, to: &Path, target_dir: &Path) -> io::Result<()> {
    let content = fs::read(from)?;
    let date = modified_secs(from);
    let tmp = target_dir
        .join("tmp")
        .join(to.file_name().unwrap_or_default());
    write_synced(&tmp, &content, date)?;
    fs::rename(&tmp, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Listings of `cur/` by this thread: a sync that trusts its record lists none.
        pub(super) static LISTINGS: Cell<usize> = const { Cell::new(0) };
    }

    fn folder() -> (tempfile::TempDir, Folder) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box");
        let folder = Folder::new(root.clone(), root, "h");
        (dir, folder)
    }

    fn deliver(folder: &Folder, text: &str) {
        maildir::deliver(
            folder.dir(),
            None,
            "h",
            b"",
            &mut text.as_bytes(),
            text.len() as u64,
        )
        .unwrap();
    }

    fn pairs(snapshot: &Snapshot) -> Vec<(u32, String)> {
        snapshot
            .messages
            .iter()
            .map(|m| (m.uid, m.file.to_string()))
            .collect()
    }

    #[test]
    fn new_mail_gets_increasing_uids_and_moves_to_cur() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        deliver(&folder, "two\r\n");
        let first = folder.sync(true).unwrap();
        assert_eq!(
            first.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(first.recent, [1, 2]);
        assert_eq!(first.messages[0].size, 5);
        assert!(first.messages[0].file.ends_with(":2,"));
        assert_eq!(list(&folder.dir().join("new")).unwrap().len(), 0);
        deliver(&folder, "three\r\n");
        let second = folder.sync(true).unwrap();
        assert_eq!(second.uid_validity, first.uid_validity);
        assert_eq!(second.uid_next, 4);
        assert_eq!(second.recent, [3], "recent is claimed once");
        assert!(folder.sync(false).unwrap().recent.is_empty());
        assert_eq!(
            folder.read(&second.messages[2].file).unwrap().unwrap(),
            b"three\r\n"
        );
    }

    /// Sets the mtimes of `new/` and `cur/` back by a minute, as if the folder had been
    /// quiet since.
    fn settle(folder: &Folder) {
        for sub in ["new", "cur"] {
            let dir = File::open(folder.dir().join(sub)).unwrap();
            let time = dir.metadata().unwrap().modified().unwrap();
            dir.set_modified(time - std::time::Duration::from_secs(60))
                .unwrap();
        }
    }

    /// How many times this thread listed a `cur/`.
    fn listings() -> usize {
        LISTINGS.get()
    }

    #[test]
    fn a_quiet_folder_is_not_read_again_and_any_change_is_seen() {
        let (_dir, folder) = folder();
        maildir::create(folder.dir()).unwrap();
        // Another program's file: its fresh mtime is not trusted (SETTLE).
        let cur = folder.dir().join("cur");
        fs::write(cur.join("1.M1P1.h:2,"), "one\r\n").unwrap();
        let first = folder.sync(false).unwrap();
        let record = folder.dir().join("posthorn-uidlist.seen");
        assert!(!record.exists(), "fresh mtimes are not trusted");
        let listed = listings();
        folder.sync(false).unwrap();
        assert_eq!(listings(), listed + 1, "listed again");
        settle(&folder);
        assert_eq!(pairs(&folder.sync(false).unwrap()), pairs(&first));
        assert!(record.exists(), "a settled folder is recorded");
        // Trusted now: a file slipped into cur/ with the old mtime put back is not looked
        // for, which shows the folder is not read.
        let mtime = fs::metadata(&cur).unwrap().modified().unwrap();
        fs::write(cur.join("9.M9P9.h:2,"), "hidden\r\n").unwrap();
        File::open(&cur).unwrap().set_modified(mtime).unwrap();
        let listed = listings();
        assert_eq!(pairs(&folder.sync(false).unwrap()), pairs(&first));
        assert_eq!(listings(), listed, "not listed");
        // Any real change moves an mtime: a delivery, another program's file, a flag change.
        deliver(&folder, "two\r\n");
        let second = folder.sync(false).unwrap();
        assert_eq!(second.messages.len(), 3, "{second:?}");
        settle(&folder);
        folder.sync(false).unwrap();
        folder.sync(false).unwrap();
        fs::write(cur.join("10.M10P10.h:2,"), "outside\r\n").unwrap();
        assert_eq!(folder.sync(false).unwrap().messages.len(), 4);
        settle(&folder);
        let quiet = folder.sync(false).unwrap();
        let stored = folder
            .store_flags(&pairs(&quiet)[..1], StoreOperation::Add, &[Flag::Seen])
            .unwrap();
        let after = folder.sync(false).unwrap();
        assert_eq!(after.messages[0].file, stored[0].file);
        assert!(after.messages[0].flags.contains(&Flag::Seen));
    }

    #[test]
    fn the_sync_after_our_own_moves_lists_nothing() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        deliver(&folder, "two\r\n");
        // The first session's SELECT moves the mail to cur/, both mtimes fresh.
        let first = folder.sync(true).unwrap();
        assert_eq!(first.recent, [1, 2]);
        assert!(folder.dir().join("posthorn-uidlist.seen").exists());
        // The second session's SELECT, at once: the same state, without listing cur/.
        let listed = listings();
        let second = folder.sync(true).unwrap();
        assert_eq!(listings(), listed, "cur/ not listed");
        assert_eq!(pairs(&second), pairs(&first));
        assert_eq!(second.uid_next, 3);
        assert!(second.recent.is_empty(), "claimed by the first");
        // Mail delivered in the same instant is still seen.
        deliver(&folder, "three\r\n");
        let third = folder.sync(false).unwrap();
        assert_eq!(listings(), listed + 1);
        assert_eq!(third.messages.len(), 3);
    }

    #[test]
    fn syncs_of_an_unchanged_folder_share_one_listing_until_it_changes() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        deliver(&folder, "two\r\n");
        let first = folder.sync(true).unwrap();
        let second = folder.sync(true).unwrap();
        assert!(Arc::ptr_eq(&first.messages, &second.messages), "shared");
        assert_eq!(first.recent, [1, 2]);
        assert!(second.recent.is_empty(), "claimed by the first");
        // A flag change is listed afresh; the listing held stays as it was.
        folder
            .store_flags(&pairs(&first)[..1], StoreOperation::Add, &[Flag::Seen])
            .unwrap();
        let flagged = folder.sync(false).unwrap();
        assert!(!Arc::ptr_eq(&first.messages, &flagged.messages));
        assert!(flagged.messages[0].flags.contains(&Flag::Seen));
        assert!(!first.messages[0].flags.contains(&Flag::Seen));
        // An expunge and new mail too.
        folder.expunge(&pairs(&flagged)[1..]).unwrap();
        deliver(&folder, "three\r\n");
        let changed = folder.sync(false).unwrap();
        let uids: Vec<u32> = changed.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [1, 3]);
        assert_eq!(second.messages.len(), 2, "a held listing never changes");
        let again = folder.sync(false).unwrap();
        assert!(Arc::ptr_eq(&changed.messages, &again.messages));
        // Kept only while someone holds it.
        let index = seen::Folders::observe(folder.dir())
            .and_then(|folders| seen::unchanged(folder.dir(), folders))
            .unwrap();
        assert!(shared::find(folder.dir(), index).is_some());
        drop((first, second, flagged, changed, again));
        assert!(shared::find(folder.dir(), index).is_none());
    }

    #[test]
    fn a_large_listing_outlives_its_sessions() {
        let (_dir, folder) = folder();
        maildir::create(folder.dir()).unwrap();
        let cur = folder.dir().join("cur");
        for n in 0..super::super::shelf::HOLD_FROM {
            fs::write(cur.join(format!("{n}.M1P1.h:2,S")), "x\r\n").unwrap();
        }
        settle(&folder);
        let first = folder.sync(false).unwrap();
        assert_eq!(first.messages.len(), super::super::shelf::HOLD_FROM);
        let index = seen::Folders::observe(folder.dir())
            .and_then(|folders| seen::unchanged(folder.dir(), folders))
            .unwrap();
        let listing = Arc::downgrade(&first.messages);
        drop(first);
        // The next session, after the last one left: the same listing, nothing read.
        let listed = listings();
        let next = folder.sync(false).unwrap();
        assert_eq!(listings(), listed, "cur/ not listed");
        let held = listing.upgrade().expect("held after its session let go");
        assert!(Arc::ptr_eq(&held, &next.messages), "handed to the next");
        assert!(shared::find(folder.dir(), index).is_some());
    }

    #[test]
    fn another_programs_change_right_after_our_moves_is_seen() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        let moved = folder.sync(false).unwrap();
        // A mail reader sets \Seen by renaming, and files a message of its own, in the
        // same second as our moves.
        let cur = folder.dir().join("cur");
        let file = &moved.messages[0].file;
        fs::rename(cur.join(file), cur.join(format!("{}:2,S", base_of(file)))).unwrap();
        fs::write(cur.join("2.M2P2.h:2,"), "two\r\n").unwrap();
        let after = folder.sync(false).unwrap();
        assert_eq!(after.messages.len(), 2);
        assert!(after.messages[0].flags.contains(&Flag::Seen));
        assert!(
            !folder.dir().join("posthorn-uidlist.seen").exists(),
            "their fresh mtimes are not trusted"
        );
    }

    #[test]
    fn the_info_follows_the_first_colon_2_comma() {
        assert_eq!(info_of("1.M1P1.h,S=5:2,FS"), "FS");
        assert_eq!(info_of("1.M1P1.h:2,"), "");
        assert_eq!(info_of("1.M1P1.h"), "");
        assert_eq!(info_of("odd:1,x:2,S:2,T"), "S:2,T");
    }

    #[test]
    fn delivery_order_compares_numbers() {
        let mut names = vec!["10.M100P1.h", "9.M5P1.h", "10.M99P2.h", "other"];
        names.sort_by_key(|n| delivery_order(n));
        assert_eq!(names, ["9.M5P1.h", "10.M99P2.h", "10.M100P1.h", "other"]);
    }

    #[test]
    fn flags_follow_the_file_and_stale_names_are_found() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        let snapshot = folder.sync(false).unwrap();
        let stale = pairs(&snapshot);
        let seen = folder
            .store_flags(
                &stale,
                StoreOperation::Add,
                &[Flag::Seen, Flag::Keyword("$Junk".into())],
            )
            .unwrap();
        assert!(seen[0].file.ends_with(":2,Sa"), "{}", seen[0].file);
        assert_eq!(seen[0].before, Flags::default());
        // A second session still holding the old name adds \Flagged: \Seen stays.
        let flagged = folder
            .store_flags(&stale, StoreOperation::Add, &[Flag::Flagged])
            .unwrap();
        assert!(
            flagged[0].flags.contains(&Flag::Seen) && flagged[0].flags.contains(&Flag::Flagged)
        );
        assert!(!flagged[0].before.contains(&Flag::Flagged));
        assert!(folder.read(&stale[0].1).unwrap().is_some());
        let again = folder.sync(false).unwrap();
        assert_eq!(again.messages[0].uid, 1);
        assert_eq!(again.keywords, ["$Junk"]);
        let cleared = folder
            .store_flags(&stale, StoreOperation::Replace, &[])
            .unwrap();
        assert!(cleared[0].file.ends_with(":2,"));
    }

    #[test]
    fn every_change_raises_the_modseq_and_survives_in_the_index() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        deliver(&folder, "two\r\n");
        let first = folder.sync(false).unwrap();
        let arrived = first.highest_modseq;
        assert!(first.messages.iter().all(|m| m.modseq == arrived));
        let all = pairs(&first);
        // A STORE that changes flags gives the changed messages one new MODSEQ.
        let seen = folder
            .store_flags(&all[..1], StoreOperation::Add, &[Flag::Seen])
            .unwrap();
        assert_eq!(seen[0].modseq, arrived + 1);
        // One that changes nothing leaves it.
        let again = folder
            .store_flags(&all[..1], StoreOperation::Add, &[Flag::Seen])
            .unwrap();
        assert_eq!(again[0].modseq, arrived + 1);
        let now = folder.sync(false).unwrap();
        assert_eq!(now.highest_modseq, arrived + 1);
        assert_eq!(now.messages[1].modseq, arrived);
        // UNCHANGEDSINCE below the message's MODSEQ refuses it, at or above allows it.
        let stored = folder
            .store_flags_if(&all, StoreOperation::Add, &[Flag::Flagged], Some(arrived))
            .unwrap();
        assert_eq!(stored.modified, [1]);
        assert_eq!(stored.changed.len(), 1);
        assert_eq!(stored.changed[0].uid, 2);
        assert_eq!(stored.changed[0].modseq, arrived + 2);
        // A rename nobody recorded (another program, or a crash before the index's save)
        // is found by the next sync and gets a new MODSEQ.
        let current = folder.sync(false).unwrap().messages[0].file.clone();
        fs::rename(
            folder.dir().join("cur").join(&current),
            folder
                .dir()
                .join("cur")
                .join(format!("{}:2,ST", base_of(&current))),
        )
        .unwrap();
        let renamed = folder.sync(false).unwrap();
        assert_eq!(renamed.messages[0].modseq, arrived + 3);
        // An expunge is remembered with its own mod-sequence.
        assert_eq!(folder.expunge(&pairs(&renamed)[1..]).unwrap(), [2]);
        let after = folder.sync(false).unwrap();
        assert_eq!(after.highest_modseq, arrived + 4);
        assert_eq!(after.expunged.since(arrived + 3), [(2, 2)]);
        assert!(after.expunged.since(arrived + 4).is_empty());
        // A message gone behind the store's back (POP3 of another server, a user's rm) is
        // found gone by the sync and remembered too; new mail gets a MODSEQ of its own.
        fs::remove_file(folder.dir().join("cur").join(&after.messages[0].file)).unwrap();
        deliver(&folder, "three\r\n");
        let last = folder.sync(false).unwrap();
        assert_eq!(last.highest_modseq, arrived + 5);
        assert_eq!(last.messages[0].modseq, arrived + 5);
        assert_eq!(last.expunged.since(arrived + 4), [(1, 1)]);
    }

    #[test]
    fn a_move_out_is_an_expunge_of_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a");
        let inbox = Folder::new(root.clone(), root.clone(), "h");
        let archive = Folder::new(root.clone(), root.join(".Archive"), "h");
        inbox.append(b"x\r\n", &[], None).unwrap();
        let before = inbox.sync(false).unwrap();
        inbox.move_to(&pairs(&before), &archive).unwrap();
        let index = Index::load(inbox.dir()).unwrap().unwrap().unwrap();
        assert!(index.entries.is_empty());
        assert_eq!(index.highest_modseq, before.highest_modseq + 1);
        assert_eq!(index.expunged.since(before.highest_modseq), [(1, 1)]);
    }

    #[test]
    fn a_keyword_without_a_letter_is_not_reported_as_stored() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        let all = pairs(&folder.sync(false).unwrap());
        let many: Vec<Flag> = (0..MAX_KEYWORDS)
            .map(|i| Flag::Keyword(format!("k{i}")))
            .collect();
        folder
            .store_flags(&all, StoreOperation::Add, &many)
            .unwrap();
        let junk = Flag::Keyword("$Junk".into());
        let changed = folder
            .store_flags(&all, StoreOperation::Add, std::slice::from_ref(&junk))
            .unwrap();
        assert!(!changed[0].flags.contains(&junk));
        assert!(changed[0].flags.contains(&Flag::Keyword("k25".into())));
        assert_eq!(changed[0].before, changed[0].flags);
    }

    #[test]
    fn expunge_is_once_and_uids_are_not_reused() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        deliver(&folder, "two\r\n");
        let snapshot = folder.sync(false).unwrap();
        let all = pairs(&snapshot);
        assert_eq!(folder.expunge(&all[..1]).unwrap(), [1]);
        assert_eq!(folder.expunge(&all[..1]).unwrap(), Vec::<u32>::new());
        assert!(folder.read(&all[0].1).unwrap().is_none());
        deliver(&folder, "three\r\n");
        let after = folder.sync(false).unwrap();
        assert_eq!(
            after.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [2, 3]
        );
    }

    #[test]
    fn a_damaged_index_renumbers_under_a_new_validity() {
        let (_dir, folder) = folder();
        deliver(&folder, "one\r\n");
        let before = folder.sync(false).unwrap();
        let path = folder.dir().join(index::FILE);
        let saved = fs::read(&path).unwrap();
        fs::write(&path, "posthorn-uidlist 1\nV 5 N x\n").unwrap();
        let after = folder.sync(false).unwrap();
        assert_ne!(after.uid_validity, before.uid_validity);
        assert_eq!(after.messages.len(), 1);
        // A version 3 index cut short: renumbered too, never read as far as it goes.
        fs::write(&path, &saved[..saved.len() - 2]).unwrap();
        let again = folder.sync(false).unwrap();
        assert!(again.uid_validity > after.uid_validity);
        assert_eq!(pairs(&again), pairs(&after));
    }

    #[test]
    fn an_old_index_keeps_its_uids_and_is_saved_as_version_3() {
        let (_dir, folder) = folder();
        maildir::create(folder.dir()).unwrap();
        let cur = folder.dir().join("cur");
        fs::write(cur.join("1.M1P1.h:2,S"), "one\r\n").unwrap();
        fs::write(cur.join("2.M2P2.h:2,"), "two\r\n").unwrap();
        let path = folder.dir().join(index::FILE);
        fs::write(
            &path,
            "posthorn-uidlist 2\nV 40 N 9 R 9 M 3\nK\nX\n5 2 1.M1P1.h:2,S\n8 3 2.M2P2.h:2,\n",
        )
        .unwrap();
        let listed = folder.sync(false).unwrap();
        assert_eq!((listed.uid_validity, listed.uid_next), (40, 9));
        assert_eq!(
            listed.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [5, 8]
        );
        // The next change saves it in version 3, still under the same UIDs.
        let stored = folder
            .store_flags(&pairs(&listed)[1..], StoreOperation::Add, &[Flag::Flagged])
            .unwrap();
        assert_eq!(stored[0].modseq, 4);
        assert!(
            fs::read(&path)
                .unwrap()
                .starts_with(b"posthorn-uidlist 3\n")
        );
        let after = folder.sync(false).unwrap();
        assert_eq!(after.uid_validity, 40);
        assert_eq!(after.messages[1].file, stored[0].file);
    }

    #[test]
    fn append_copy_and_move_keep_flags_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a");
        let inbox = Folder::new(root.clone(), root.clone(), "h");
        let archive = Folder::new(root.clone(), root.join(".Archive"), "h");
        let appended = inbox
            .append(
                b"hello\r\n",
                &[Flag::Seen, Flag::Keyword("work".into())],
                Some(1_000_000_000),
            )
            .unwrap();
        assert_eq!(appended.uid, 1);
        let listed = inbox.sync(false).unwrap();
        assert_eq!(appended.uid_validity, listed.uid_validity);
        assert_eq!(appended.file, listed.messages[0].file);
        assert_eq!(inbox.internal_date(&listed.messages[0].file), 1_000_000_000);
        archive
            .append(b"x\r\n", &[Flag::Keyword("other".into())], None)
            .unwrap();
        let copied = inbox.copy_to(&pairs(&listed), &archive).unwrap();
        let target = archive.sync(false).unwrap();
        assert_eq!(
            copied.placed,
            [Placed {
                source_uid: 1,
                uid: 2,
                file: target.messages[1].file.to_string()
            }]
        );
        assert!(
            target.messages[1]
                .flags
                .contains(&Flag::Keyword("work".into()))
        );
        assert!(
            target.messages[1].file.ends_with(":2,Sb"),
            "{}",
            target.messages[1].file
        );
        assert_eq!(
            archive.internal_date(&target.messages[1].file),
            1_000_000_000
        );
        let moved = archive.move_to(&pairs(&target)[1..], &inbox).unwrap();
        assert_eq!((moved.placed[0].source_uid, moved.placed[0].uid), (2, 2));
        assert_eq!(
            inbox.read(&moved.placed[0].file).unwrap().unwrap(),
            b"hello\r\n"
        );
        assert_eq!(archive.sync(false).unwrap().messages.len(), 1);
        let back = inbox.sync(false).unwrap();
        assert_eq!(back.messages.len(), 2);
        assert_eq!(
            inbox.read(&back.messages[1].file).unwrap().unwrap(),
            b"hello\r\n"
        );
    }
}
