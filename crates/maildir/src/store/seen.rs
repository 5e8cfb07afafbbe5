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

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The file's name inside a Maildir folder.
const FILE: &str = "posthorn-uidlist.seen";
/// How old an mtime must be to be trusted: older than any clock tick.
const SETTLE: Duration = Duration::from_secs(1);

/// The modification times of `new/` and `cur/`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folders {
    new: i128,
    cur: i128,
}

/// An index file's identity: inode, length, modification time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexFile(u64, u64, i128);

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
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now - self.new.max(self.cur) >= SETTLE.as_nanos() as i128
    }
}

fn nanos(metadata: &fs::Metadata) -> i128 {
    i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec())
}

fn index_file(dir: &Path) -> Option<IndexFile> {
    let metadata = fs::metadata(dir.join(super::index::FILE)).ok()?;
    Some(IndexFile(metadata.ino(), metadata.len(), nanos(&metadata)))
}

/// True when the folders are as `folders` (observed now) and as recorded after the last
/// sync that left the index file as it is now: the index lists the folder exactly.
pub(crate) fn unchanged(dir: &Path, folders: Folders) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(FILE)) else {
        return false;
    };
    let numbers: Vec<i128> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [new, cur, ino, len, mtime] = numbers[..] else {
        return false;
    };
    let recorded_index = IndexFile(ino as u64, len as u64, mtime);
    Folders { new, cur } == folders && index_file(dir) == Some(recorded_index)
}

/// Records that the index as saved now lists the folder exactly as it was when `before`
/// was observed, if nothing changed the folders since (`after`, observed now, is the
/// same) and their times are settled; else removes any record, so the next sync reads the
/// folders.
pub(crate) fn record(
    dir: &Path,
    before: Option<Folders>,
    after: Option<Folders>,
) -> io::Result<()> {
    let path = dir.join(FILE);
    let index = index_file(dir);
    match (before, index) {
        (Some(folders), Some(IndexFile(ino, len, mtime)))
            if Some(folders) == after && folders.settled() =>
        {
            let tmp = dir.join(format!("{FILE}.tmp"));
            fs::write(
                &tmp,
                format!("{} {} {ino} {len} {mtime}\n", folders.new, folders.cur),
            )?;
            fs::rename(tmp, path)
        }
        _ => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}
