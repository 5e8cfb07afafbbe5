//! What a folder looked like when its index last matched it whole, so a sync can skip
//! reading `new/` and `cur/` when neither changed since, as Dovecot trusts its index
//! while the Maildir's mtimes stand still. Reading a 100 000-file `cur/` and matching it
//! against the index took most of a SELECT's 180 ms; the check is two `stat`s.
//!
//! `posthorn-uidlist.seen` holds the modification times of `new/` and `cur/` seen before
//! a sync that changed neither, and the identity of the index file that sync left. Any
//! delivery, flag change (a rename) or expunge changes a folder's mtime; any save of the
//! index changes the index's identity. Times within [`SETTLE`] of the clock are never
//! recorded: a change in the same clock tick as the sync's reading would leave the mtime
//! as it was. It is only a hint: missing, stale or unreadable, the sync reads the folders.
//!
//! A sync that moved mail from `new/` into `cur/` itself made both times fresh, and the
//! next session would list `cur/` again only because of its own moves (155 ms at 100 000
//! messages). So after its moves it waits until the clock has passed their tick
//! ([`Folders::after_own_change`], at most [`TICK`]) and only then lists: a change by
//! anyone after that listing began gets a later mtime, so the times it lists from can be
//! recorded at once. Times set by others keep the [`SETTLE`] rule.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The file's name inside a Maildir folder.
const FILE: &str = "posthorn-uidlist.seen";
/// How old an mtime must be to be trusted: older than any clock tick.
const SETTLE: Duration = Duration::from_secs(1);
/// The longest a sync waits after its own moves: two ticks of the kernel's coarse clock
/// (10 ms at the lowest HZ, 100), which stamps file times on filesystems keeping
/// nanoseconds; a change stamped after the wait cannot carry the moves' time.
const TICK: Duration = Duration::from_millis(20);

/// The modification times of `new/` and `cur/`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folders {
    new: i128,
    cur: i128,
}

/// An index file's identity: inode, length, modification time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexFile(u64, u64, i128);

impl Folders {
    /// Their times now; `None` when either cannot be read.
    pub(crate) fn observe(dir: &Path) -> Option<Folders> {
        let time = |sub: &str| fs::metadata(dir.join(sub)).ok().map(|m| nanos(&m));
        Some(Folders {
            new: time("new")?,
            cur: time("cur")?,
        })
    }

    /// True when they are old enough to be trusted (see [`SETTLE`]).
    fn settled(&self) -> bool {
        now() - self.latest() >= SETTLE.as_nanos() as i128
    }

    fn latest(&self) -> i128 {
        self.new.max(self.cur)
    }

    /// Their times after this process changed both folders, once the clock has passed
    /// them by [`TICK`], so that a listing begun now sees every change that keeps these
    /// times. `None` (list again at the next sync) when the filesystem keeps whole seconds
    /// (its tick is the second: [`SETTLE`] applies) or the times lie ahead of this clock
    /// (a server's clock on a network filesystem).
    pub(crate) fn after_own_change(dir: &Path) -> Option<Folders> {
        let folders = Folders::observe(dir)?;
        let whole_seconds = |t: i128| t % 1_000_000_000 == 0;
        if whole_seconds(folders.new) || whole_seconds(folders.cur) {
            return None;
        }
        let wait = folders.latest() + TICK.as_nanos() as i128 - now();
        if wait > TICK.as_nanos() as i128 {
            return None;
        }
        if let Ok(wait) = u64::try_from(wait) {
            std::thread::sleep(Duration::from_nanos(wait));
        }
        Some(folders)
    }
}

/// The clock now, in nanoseconds since the epoch.
fn now() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn nanos(metadata: &fs::Metadata) -> i128 {
    i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec())
}

fn index_file(dir: &Path) -> Option<IndexFile> {
    let metadata = fs::metadata(dir.join(super::index::FILE)).ok()?;
    Some(IndexFile(metadata.ino(), metadata.len(), nanos(&metadata)))
}

/// The index file's identity when the folders are as `folders` (observed now) and as
/// recorded after the last sync that left the index file as it is now: the index lists
/// the folder exactly. `None` when the folder must be read.
pub(crate) fn unchanged(dir: &Path, folders: Folders) -> Option<IndexFile> {
    let text = fs::read_to_string(dir.join(FILE)).ok()?;
    let numbers: Vec<i128> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [new, cur, ino, len, mtime] = numbers[..] else {
        return None;
    };
    let recorded_index = IndexFile(ino as u64, len as u64, mtime);
    (Folders { new, cur } == folders && index_file(dir) == Some(recorded_index))
        .then_some(recorded_index)
}

/// Where a sync's listing started from: the folders' times observed before it, and
/// whether the clock had passed them when it began.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listed {
    /// Observed at the sync's start: trusted once [`SETTLE`]d.
    Observed(Option<Folders>),
    /// From [`Folders::after_own_change`]: the clock had passed them.
    AfterOwnChange(Option<Folders>),
}

/// Records that the index as saved now lists the folder exactly as it was when its
/// listing began (`listed`), if nothing changed the folders since (`after`, observed now,
/// is the same) and their times can be trusted; else removes any record, so the next sync
/// reads the folders. Returns the identity of the index file recorded, if any.
pub(crate) fn record(
    dir: &Path,
    listed: Listed,
    after: Option<Folders>,
) -> io::Result<Option<IndexFile>> {
    let path = dir.join(FILE);
    let index = index_file(dir);
    let trusted = match listed {
        Listed::Observed(folders) => folders.filter(Folders::settled),
        Listed::AfterOwnChange(folders) => folders,
    };
    match (trusted, index) {
        (Some(folders), Some(IndexFile(ino, len, mtime))) if Some(folders) == after => {
            let tmp = dir.join(format!("{FILE}.tmp"));
            fs::write(
                &tmp,
                format!("{} {} {ino} {len} {mtime}\n", folders.new, folders.cur),
            )?;
            fs::rename(tmp, path)?;
            Ok(index)
        }
        _ => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(None),
        },
    }
}
