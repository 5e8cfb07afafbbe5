//! The mailbox quota, kept as Maildir++ keeps it (Courier's README.maildirquota, which
//! Dovecot, maildrop and Exim follow): a file `maildirsize` in the Maildir root holds the
//! figure, so a check reads one small file instead of listing every folder.
//!
//! ```text
//! 10000000S
//! 1234567 89
//! 4016 1
//! -8032 -2
//! ```
//!
//! The first line is the quota definition (`S` a size in octets). Every other line is a
//! pair of signed integers, octets and messages, and the figure is their sum: a
//! recalculation writes the totals as one line, and every change after it appends its
//! delta as one more line, in a single write to a file opened with `O_APPEND`, so writers
//! never interleave and need no lock among themselves. Deltas are recorded only while the
//! file exists; without one, the next check counts.
//!
//! The file is recalculated (the folders walked, the totals written to `tmp/` and renamed
//! over it) when it is missing or damaged, when its definition is not the account's quota,
//! when its sum is negative, when it has grown to 5120 octets, and when it shows the
//! mailbox full but was last changed more than 15 minutes ago (its figure may be stale,
//! and refusing mail on a stale figure is worse than a walk): the spec's triggers. One
//! more trigger is ours: a file this process has not yet recalculated, as deltas are not
//! synced and a crash can lose the last ones (see `RECALCULATED`).
//!
//! The spec accepts a figure that is slightly off when a recalculation races a change;
//! ours does not, as it is checked against every message. Each change that adds or
//! removes messages holds the Maildir root locked shared (`Change`) from its first
//! rename or unlink until its delta is written, and a recalculation holds it exclusively,
//! and each folder's lock while it lists that folder: it counts every change either
//! wholly (and the change's delta, which comes later, lands in the new file) or not at
//! all (and the delta went to the old file), and never sees a file half renamed.
//!
//! Every message counts by the `S=` size in its name, or its length, in `cur/` and `new/`
//! of INBOX and of every folder, Trash included, as the quota counted before the figure
//! was cached; dot files are not messages.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tracing::warn;

use crate::maildir;
use crate::store::lock_folder;

/// The quota file's name in the Maildir root.
const FILE: &str = "maildirsize";

/// The size at which the file is recalculated rather than read: the spec's limit, which
/// keeps a read to one small file (some 400 deltas).
const MAX_SIZE: u64 = 5120;

/// How long a figure that shows the mailbox full is trusted (the spec's 15 minutes).
const STALE: Duration = Duration::from_secs(15 * 60);

/// The Maildir roots this process has recalculated, by a hash of their paths. Deltas are
/// appended without a sync (one per delivery would double its cost), so a crash can lose
/// the last ones; and what changed while no server ran (mail moved in by hand) was never
/// recorded at all. So a file written by an earlier run is recalculated once, at the first
/// check this run makes, and trusted from then on: one walk per mailbox per run.
static RECALCULATED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// An account's mailbox size limit, checked against the cached figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u64,
}

/// What a mailbox (or one folder) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Octets.
    pub(crate) bytes: u64,
    /// Messages.
    pub(crate) messages: u64,
}

impl Usage {
    /// One message of `bytes` octets.
    pub(crate) fn one(bytes: u64) -> Usage {
        Usage { bytes, messages: 1 }
    }

    /// Counts one more message of `bytes` octets.
    pub(crate) fn add(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.messages = self.messages.saturating_add(1);
    }
}

impl Quota {
    /// A limit of `limit` octets.
    pub fn new(limit: u64) -> Quota {
        Quota { limit }
    }

    /// The limit in octets.
    pub fn limit(self) -> u64 {
        self.limit
    }

    /// Octets used by the mailbox whose Maildir root is `root`: the figure of its
    /// `maildirsize`, recalculated first when the spec (or a first check in this process)
    /// says so. A mailbox not yet made uses nothing. Blocking.
    pub fn usage(self, root: &Path) -> io::Result<u64> {
        match self.cached(root)? {
            Some(usage) => Ok(usage.bytes),
            None => self.recalculate(root).map(|usage| usage.bytes),
        }
    }

    /// The definition line: a size limit only (we keep no message count limit).
    fn definition(self) -> String {
        format!("{}S", self.limit)
    }

    /// The file's figure if it may be trusted.
    fn cached(self, root: &Path) -> io::Result<Option<Usage>> {
        if !recalculated(root) {
            return Ok(None);
        }
        let file = match File::open(root.join(FILE)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let metadata = file.metadata()?;
        if metadata.len() >= MAX_SIZE {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        file.take(MAX_SIZE).read_to_end(&mut bytes)?;
        let Some((definition, usage)) = std::str::from_utf8(&bytes).ok().and_then(parse) else {
            return Ok(None);
        };
        if definition != self.definition() {
            return Ok(None);
        }
        let full = usage.bytes >= self.limit;
        let stale = metadata
            .modified()
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_none_or(|age| age > STALE);
        Ok((!(full && stale)).then_some(usage))
    }

    /// Walks the mailbox and writes the file anew. Under the root's lock held exclusively,
    /// so no change is half done while it counts; and a figure that another thread or
    /// process recalculated while this one waited for the lock is taken as it is.
    fn recalculate(self, root: &Path) -> io::Result<Usage> {
        let lock = match File::open(root) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Usage::default()),
            Err(e) => return Err(e),
        };
        lock.lock()?;
        if let Some(usage) = self.cached(root)? {
            return Ok(usage);
        }
        let usage = walk(root)?;
        // The figure is right even if it cannot be kept: the next check counts again.
        match self.write(root, usage) {
            Ok(()) => mark_recalculated(root),
            // No `tmp/`: the root holds only folders so far (a first delivery to Junk).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!(root = %root.display(), error = %e, "cannot write the quota file"),
        }
        Ok(usage)
    }

    /// Replaces the file with the definition and `usage`, written in `tmp/` and renamed
    /// over it (the spec's way), so a reader sees the old file or the new one, whole. Not
    /// synced: a file lost in a crash is recalculated like any other.
    fn write(self, root: &Path, usage: Usage) -> io::Result<()> {
        let tmp = root.join("tmp").join(maildir::unique("maildirsize"));
        let text = format!(
            "{}\n{} {}\n",
            self.definition(),
            usage.bytes,
            usage.messages
        );
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .and_then(|()| fs::rename(&tmp, root.join(FILE)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// The definition line and the sum of the other lines, `None` if the text is not a
/// `maildirsize` or a sum is negative or out of range. Blank lines are allowed; a last
/// line without its newline is a delta still being appended (or cut short by a crash) and
/// is not counted yet.
fn parse(text: &str) -> Option<(&str, Usage)> {
    let mut lines = text.split_inclusive('\n');
    let definition = lines.next()?.strip_suffix('\n')?;
    let (mut bytes, mut messages) = (0i64, 0i64);
    for line in lines {
        let Some(line) = line.strip_suffix('\n') else {
            break;
        };
        let mut fields = line.split_ascii_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (None, _, _) => {}
            (Some(b), Some(m), None) => {
                bytes = bytes.checked_add(b.parse().ok()?)?;
                messages = messages.checked_add(m.parse().ok()?)?;
            }
            _ => return None,
        }
    }
    let usage = Usage {
        bytes: u64::try_from(bytes).ok()?,
        messages: u64::try_from(messages).ok()?,
    };
    Some((definition, usage))
}

/// Counts every message of the mailbox at `root`: INBOX and each `.Name` folder (not
/// `..deleted-*`, a folder being deleted, already subtracted). Each folder is listed under
/// its lock, so no flag change or move from `new/` to `cur/` shows a message twice or not
/// at all; the caller holds the root's lock, so no message comes or goes.
fn walk(root: &Path) -> io::Result<Usage> {
    let mut folders = vec![root.to_path_buf()];
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && !name.starts_with("..") && entry.file_type()?.is_dir() {
            folders.push(entry.path());
        }
    }
    let mut usage = Usage::default();
    for folder in folders {
        // A folder without `cur/` is not a Maildir folder yet: nothing to lock it against.
        let _lock = if folder.join("cur").is_dir() {
            Some(lock_folder(&folder)?)
        } else {
            None
        };
        count(&folder, &mut usage)?;
    }
    Ok(usage)
}

/// Adds the messages of one folder's `cur/` and `new/` to `usage`. Dot files are not
/// messages (Maildir readers skip them); missing subfolders hold nothing.
fn count(folder: &Path, usage: &mut Usage) -> io::Result<()> {
    for sub in ["cur", "new"] {
        let entries = match fs::read_dir(folder.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let size = match maildir::size_from_name(&name) {
                Some(size) => size,
                None => match entry.metadata() {
                    Ok(metadata) => metadata.len(),
                    // Gone since the listing: only an outside program can do that now.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            usage.add(size);
        }
    }
    Ok(())
}

/// A change to what a mailbox holds or where (a delivery, an APPEND, COPY or MOVE, an
/// expunge, a folder deleted or renamed), from its first rename or unlink until its delta
/// is recorded: it holds the Maildir root locked shared, so changes run side by side while
/// a recalculation, which takes the lock exclusively, waits for them to finish. Take it
/// before any folder's lock (a recalculation takes the root's, then folders' locks), and
/// never check the quota while holding it.
pub(crate) struct Change {
    root: PathBuf,
    _lock: File,
}

impl Change {
    /// Locks the mailbox at `root` for a change.
    pub(crate) fn begin(root: &Path) -> io::Result<Change> {
        let lock = File::open(root)?;
        lock.lock_shared()?;
        Ok(Change {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// Records that `usage` was added.
    pub(crate) fn added(&self, usage: Usage) {
        self.record(signed(usage.bytes), signed(usage.messages));
    }

    /// Records that `usage` was removed.
    pub(crate) fn removed(&self, usage: Usage) {
        self.record(-signed(usage.bytes), -signed(usage.messages));
    }

    /// Records the removal of the folder at `dir` (already renamed out of sight) with all
    /// it holds.
    pub(crate) fn removed_folder(&self, dir: &Path) {
        let mut gone = Usage::default();
        match count(dir, &mut gone) {
            Ok(()) => self.removed(gone),
            Err(e) => self.forget(&e),
        }
    }

    /// Appends one delta line in one write. The line is far shorter than any page, so the
    /// write is whole or fails; when it fails, the file goes, as a wrong figure would be
    /// trusted and a missing one is recalculated.
    fn record(&self, bytes: i64, messages: i64) {
        if bytes == 0 && messages == 0 {
            return;
        }
        let mut file = match OpenOptions::new().append(true).open(self.root.join(FILE)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.forget(&e);
                return;
            }
        };
        let line = format!("{bytes} {messages}\n");
        match file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => {}
            Ok(_) => self.forget(&io::Error::from(io::ErrorKind::WriteZero)),
            Err(e) => self.forget(&e),
        }
    }

    /// Removes a file that could not be kept up to date.
    fn forget(&self, error: &io::Error) {
        let root = self.root.display();
        warn!(%root, %error, "cannot update the quota file; it will be recalculated");
        match fs::remove_file(self.root.join(FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!(%root, error = %e, "cannot remove the stale quota file"),
        }
    }
}

/// A count as a delta (counts never come near `i64::MAX`).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn root_key(root: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    root.hash(&mut hasher);
    hasher.finish()
}

/// True once this process has recalculated the file of `root`.
fn recalculated(root: &Path) -> bool {
    RECALCULATED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&root_key(root))
}

fn mark_recalculated(root: &Path) {
    RECALCULATED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(root_key(root));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::SystemTime;

    use super::*;
    use crate::store::Mailbox;
    use crate::store::flags::{Flag, StoreOperation};

    const LIMIT: u64 = 1_000_000;

    /// A Maildir with two messages (3 and 5 octets), its quota file written by a first check.
    fn mailbox() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        put(&root, "abc");
        put(&root, "12345");
        assert_eq!(Quota::new(LIMIT).usage(&root).unwrap(), 8);
        (dir, root)
    }

    fn put(root: &Path, text: &str) {
        maildir::deliver(
            root,
            None,
            "h",
            b"",
            &mut text.as_bytes(),
            text.len() as u64,
        )
        .unwrap();
    }

    /// A message file made behind the store's back: no delta recorded.
    fn sneak_in(root: &Path, size: usize) {
        let name = maildir::unique_name("sneaky", size as u64);
        fs::write(
            root.join("cur").join(format!("{name}:2,")),
            vec![b'x'; size],
        )
        .unwrap();
    }

    fn file(root: &Path) -> String {
        fs::read_to_string(root.join(FILE)).unwrap()
    }

    fn age(root: &Path, by: Duration) {
        let file = OpenOptions::new()
            .write(true)
            .open(root.join(FILE))
            .unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn parse_sums_signed_lines_after_the_definition() {
        let text = "1000S\n  10   2\n+5 +1\n\n-3 -1\n";
        assert_eq!(
            parse(text),
            Some((
                "1000S",
                Usage {
                    bytes: 12,
                    messages: 2
                }
            ))
        );
        // A delta still being appended is not counted yet.
        assert_eq!(parse("1000S\n10 2\n7").map(|(_, u)| u.bytes), Some(10));
        assert_eq!(parse("1000S\n10 2\n7 1"), parse("1000S\n10 2\n"));
        for damaged in [
            "",
            "1000S",
            "1000S\nx 1\n",
            "1000S\n1\n",
            "1000S\n1 2 3\n",
            "1000S\n5 1\n-6 -1\n",
            "1000S\n9223372036854775807 1\n1 1\n",
        ] {
            assert_eq!(parse(damaged), None, "{damaged:?}");
        }
    }

    #[test]
    fn a_missing_file_is_recalculated_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        assert_eq!(Quota::new(LIMIT).usage(&root).unwrap(), 0, "no mailbox yet");
        assert!(!root.exists(), "a check makes no mailbox");
        put(&root, "abc");
        let _ = fs::remove_file(root.join(FILE));
        assert_eq!(Quota::new(LIMIT).usage(&root).unwrap(), 3);
        assert_eq!(file(&root), "1000000S\n3 1\n");
        assert_eq!(
            fs::read_dir(root.join("tmp")).unwrap().count(),
            0,
            "no temporary file left"
        );
    }

    #[test]
    fn checks_read_the_file_and_do_not_walk_the_mailbox() {
        let (_dir, root) = mailbox();
        sneak_in(&root, 1000);
        let quota = Quota::new(LIMIT);
        assert_eq!(
            quota.usage(&root).unwrap(),
            8,
            "the file's figure, not a walk"
        );
        fs::remove_file(root.join(FILE)).unwrap();
        assert_eq!(
            quota.usage(&root).unwrap(),
            1008,
            "a deleted file is recalculated"
        );
    }

    #[test]
    fn a_damaged_file_is_recalculated() {
        let (_dir, root) = mailbox();
        sneak_in(&root, 1000);
        let quota = Quota::new(LIMIT);
        for damaged in [
            "",
            "garbage",
            "1000000S\n8 2\n\0\0\0\0\n",
            "1000000S\n8 2\n-9 -1\n",
        ] {
            fs::write(root.join(FILE), damaged).unwrap();
            assert_eq!(quota.usage(&root).unwrap(), 1008, "{damaged:?}");
            assert_eq!(file(&root), "1000000S\n1008 3\n");
        }
        fs::write(root.join(FILE), [0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(quota.usage(&root).unwrap(), 1008, "not UTF-8");
    }

    #[test]
    fn a_new_limit_rewrites_the_definition() {
        let (_dir, root) = mailbox();
        sneak_in(&root, 1000);
        assert_eq!(Quota::new(500).usage(&root).unwrap(), 1008);
        assert_eq!(file(&root), "500S\n1008 3\n");
    }

    #[test]
    fn a_file_grown_to_the_size_limit_is_recalculated() {
        let (_dir, root) = mailbox();
        let quota = Quota::new(LIMIT);
        let size = || fs::metadata(root.join(FILE)).unwrap().len();
        // Each pair of deltas, `1 1` and `-1 -1`, adds 10 octets and nothing to the sum.
        let churn = |until: u64| {
            let change = Change::begin(&root).unwrap();
            while size() < until {
                change.added(Usage::one(1));
                change.removed(Usage::one(1));
            }
        };
        churn(MAX_SIZE - 10);
        assert!(size() < MAX_SIZE);
        sneak_in(&root, 1000);
        assert_eq!(quota.usage(&root).unwrap(), 8, "below the limit: read");
        churn(MAX_SIZE);
        assert_eq!(
            quota.usage(&root).unwrap(),
            1008,
            "at the limit: recalculated"
        );
        assert_eq!(file(&root), "1000000S\n1008 3\n");
    }

    #[test]
    fn a_full_figure_older_than_15_minutes_is_recalculated() {
        let (_dir, root) = mailbox();
        sneak_in(&root, 1000);
        let full = Quota::new(8);
        assert_eq!(full.usage(&root).unwrap(), 1008, "new definition");
        // Someone removes the large file behind our back; the figure says full.
        for entry in fs::read_dir(root.join("cur")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().contains("sneaky") {
                fs::remove_file(entry.path()).unwrap();
            }
        }
        age(&root, Duration::from_secs(10 * 60));
        assert_eq!(full.usage(&root).unwrap(), 1008, "full but recent: trusted");
        age(&root, Duration::from_secs(16 * 60));
        assert_eq!(
            full.usage(&root).unwrap(),
            8,
            "full and stale: recalculated"
        );
        // A figure under the quota is trusted however old.
        assert_eq!(Quota::new(100).usage(&root).unwrap(), 8, "new definition");
        sneak_in(&root, 1);
        age(&root, Duration::from_secs(60 * 60));
        assert_eq!(
            Quota::new(100).usage(&root).unwrap(),
            8,
            "not full: trusted"
        );
    }

    #[test]
    fn a_file_from_an_earlier_run_is_recalculated_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        put(&root, "abc");
        // As an earlier run left it, a delta short (lost in a crash).
        fs::write(root.join(FILE), "1000000S\n0 0\n").unwrap();
        let quota = Quota::new(LIMIT);
        assert_eq!(quota.usage(&root).unwrap(), 3);
        sneak_in(&root, 1000);
        assert_eq!(quota.usage(&root).unwrap(), 3, "trusted from then on");
    }

    #[test]
    fn every_change_of_the_store_records_its_delta() {
        let (_dir, root) = mailbox();
        let quota = Quota::new(LIMIT);
        let mailbox = Mailbox::new(root.clone(), "h");
        mailbox.prepare().unwrap();
        let inbox = mailbox.folder("INBOX").unwrap();
        let archive = mailbox.folder("Archive").unwrap();
        let check = |what: &str| {
            let walked = walk(&root).unwrap();
            assert_eq!(quota.usage(&root).unwrap(), walked.bytes, "{what}");
            let (_, figure) = parse(&file(&root)).unwrap();
            assert_eq!(figure, walked, "{what}");
        };
        maildir::deliver(&root, Some(maildir::JUNK), "h", b"", &mut &b"junk"[..], 4).unwrap();
        check("delivery into Junk");
        inbox.append(b"appended\r\n", &[Flag::Seen], None).unwrap();
        check("APPEND");
        let listed: Vec<(u32, String)> = inbox
            .sync(false)
            .unwrap()
            .messages
            .iter()
            .map(|m| (m.uid, m.file.to_string()))
            .collect();
        inbox.copy_to(&listed, &archive).unwrap();
        check("COPY");
        inbox.move_to(&listed[..1], &archive).unwrap();
        check("MOVE");
        inbox.expunge(&listed[1..2]).unwrap();
        check("EXPUNGE");
        mailbox.rename("Archive", "Old").unwrap();
        check("RENAME");
        mailbox.rename("INBOX", "Inbox-2024").unwrap();
        check("RENAME INBOX");
        mailbox.delete("Old").unwrap();
        check("DELETE");
        let lines = file(&root).lines().count();
        assert!(
            lines > 2,
            "deltas appended, not recalculated: {}",
            file(&root)
        );
    }

    #[test]
    fn concurrent_changes_and_recalculations_lose_nothing() {
        const THREADS: usize = 4;
        const EACH: usize = 40;
        let (_dir, root) = mailbox();
        let quota = Quota::new(LIMIT);
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let root = root.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let mailbox = Mailbox::new(root.clone(), "h");
                    let inbox = mailbox.folder("INBOX").unwrap();
                    barrier.wait();
                    for n in 0..EACH {
                        let text = "x".repeat(t * 100 + n);
                        put(&root, &text);
                        if n % 4 == 0 {
                            // Expunge one message: someone else's or its own.
                            let listing = inbox.sync(false).unwrap();
                            let at = n % listing.messages.len().max(1);
                            if let Some(m) = listing.messages.get(at) {
                                inbox.expunge(&[(m.uid, m.file.to_string())]).unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        // Flags change all along: each a rename in `cur/` that a walk must not see half done.
        let done = Arc::new(AtomicBool::new(false));
        let flagger = {
            let inbox = Mailbox::new(root.clone(), "h").folder("INBOX").unwrap();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut operation = StoreOperation::Add;
                while !done.load(Ordering::Relaxed) {
                    let all: Vec<(u32, String)> = inbox
                        .sync(false)
                        .unwrap()
                        .messages
                        .iter()
                        .map(|m| (m.uid, m.file.to_string()))
                        .collect();
                    inbox.store_flags(&all, operation, &[Flag::Seen]).unwrap();
                    operation = match operation {
                        StoreOperation::Add => StoreOperation::Remove,
                        _ => StoreOperation::Add,
                    };
                }
            })
        };
        barrier.wait();
        // Meanwhile the file is dropped and recalculated again and again.
        let mut recalculations = 0;
        while writers.iter().any(|w| !w.is_finished()) {
            let _ = fs::remove_file(root.join(FILE));
            quota.usage(&root).unwrap();
            recalculations += 1;
        }
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        flagger.join().unwrap();
        assert!(recalculations > 0);
        let walked = walk(&root).unwrap();
        let (_, figure) = parse(&file(&root)).unwrap();
        assert_eq!(figure, walked, "after {recalculations} recalculations");
    }

    #[test]
    fn a_recalculation_waits_for_changes_and_for_each_folder() {
        let (_dir, root) = mailbox();
        let recalculate = || {
            let _ = fs::remove_file(root.join(FILE));
            let root = root.clone();
            std::thread::spawn(move || Quota::new(LIMIT).usage(&root).unwrap())
        };
        let pause = Duration::from_millis(200);
        let change = Change::begin(&root).unwrap();
        let waiting = recalculate();
        std::thread::sleep(pause);
        assert!(!waiting.is_finished(), "a change in progress");
        drop(change);
        assert_eq!(waiting.join().unwrap(), 8);
        let folder = lock_folder(&root).unwrap();
        let waiting = recalculate();
        std::thread::sleep(pause);
        assert!(!waiting.is_finished(), "a folder locked");
        drop(folder);
        assert_eq!(waiting.join().unwrap(), 8);
    }

    #[test]
    fn concurrent_appends_keep_every_line_whole() {
        const THREADS: usize = 8;
        const EACH: u64 = 50;
        let (_dir, root) = mailbox();
        let barrier = Arc::new(Barrier::new(THREADS));
        let writers: Vec<_> = (0..THREADS)
            .map(|_| {
                let root = root.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for n in 1..=EACH {
                        Change::begin(&root).unwrap().added(Usage::one(n));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let text = file(&root);
        assert_eq!(text.lines().count(), 2 + THREADS * EACH as usize);
        let (_, figure) = parse(&text).unwrap();
        let added = THREADS as u64 * EACH * (EACH + 1) / 2;
        assert_eq!(
            figure,
            Usage {
                bytes: 8 + added,
                messages: 2 + THREADS as u64 * EACH,
            }
        );
    }

    #[test]
    fn the_walk_counts_folders_and_skips_folders_being_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        maildir::create(&root.join(".Sent")).unwrap();
        fs::write(root.join(".Sent/cur/1.x,S=5:2,S"), b"12345").unwrap();
        fs::create_dir_all(root.join("cur")).unwrap();
        fs::write(root.join("cur/2.x"), b"123").unwrap();
        fs::write(root.join("cur/.hidden"), b"123").unwrap();
        maildir::create(&root.join("..deleted-x")).unwrap();
        fs::write(root.join("..deleted-x/cur/3.x,S=7"), b"1234567").unwrap();
        assert_eq!(
            walk(root).unwrap(),
            Usage {
                bytes: 8,
                messages: 2
            }
        );
    }
}
