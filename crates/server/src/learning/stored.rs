//! One piece of learnt state (a classifier model, a sender table) kept in memory and in a
//! file of the learning folder, shared by the server and `posthorn spam`.
//!
//! Writes replace the file atomically (`atomic_file`), so a crash leaves the old or the
//! new version, never a torn one: `kill -9` loses at most the changes since the last save.
//! Every writer holds the folder's lock (see [`Folder`]) from reading the file to
//! replacing it. A writer whose file was replaced by someone else since it last read it
//! (the server while `posthorn spam train` ran) reads the new file and applies its own
//! unsaved changes again on top, so neither loses the other's training.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use tracing::error;

use crate::atomic_file;

/// State that can be learnt, saved and merged.
pub(crate) trait Learnt: Default + Send + Sync + 'static {
    /// One lesson, kept until saved so it can be applied again over a newer file.
    type Change: Send + Sync + 'static;
    /// How large it may grow.
    type Bounds: Send + Sync + 'static;
    /// Applies a change. Applying one twice must do no harm (the classifier's ledger makes
    /// it a no-op; a sender table counts a message at most once more).
    fn apply(&mut self, change: &Self::Change, day: u32);
    /// Keeps the state within its bounds before it is written.
    fn prune(&mut self, bounds: &Self::Bounds, day: u32);
    /// The file's content.
    fn encode(&self) -> Vec<u8>;
    /// Reads a file's content; a damaged file is an error, never a panic.
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

/// Unsaved changes kept at most (a lesson holds a message's features, up to 48 KiB):
/// while the disk refuses saves, the oldest are let go. They stay in memory, and in the
/// file at the next save that succeeds; only their replay over a file another process
/// replaced meanwhile is lost.
const MAX_UNSAVED: usize = 1_000;

fn bound<C>(unsaved: &mut Vec<C>) {
    if unsaved.len() > MAX_UNSAVED {
        let excess = unsaved.len() - MAX_UNSAVED;
        unsaved.drain(..excess);
    }
}

/// Tells one version of a file from another: every atomic replace makes a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    inode: u64,
    modified: i64,
    modified_ns: i64,
    len: u64,
}

fn version_of(path: &Path) -> io::Result<Option<Version>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(Version {
            inode: meta.ino(),
            modified: meta.mtime(),
            modified_ns: meta.mtime_nsec(),
            len: meta.len(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `path` as `T`, or the empty state when there is no file.
fn read<T: Learnt>(path: &Path) -> io::Result<(T, Option<Version>)> {
    let before = version_of(path)?;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((T::default(), None)),
        Err(e) => return Err(e),
    };
    let state = T::decode(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    Ok((state, before))
}

/// The learning folder and its lock.
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    dir: PathBuf,
}

impl Folder {
    pub(crate) fn new(dir: PathBuf) -> Folder {
        Folder { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Removes the temporary files of writes a crash cut short (see
    /// `atomic_file::replace`), in the folder and `sub`; the caller holds the lock.
    pub(crate) fn remove_leftovers(&self, sub: &str) -> io::Result<()> {
        for dir in [self.dir.clone(), self.dir.join(sub)] {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// Holds the folder for a read-modify-write until dropped.
    pub(crate) fn lock(&self) -> io::Result<File> {
        atomic_file::lock_beside(&self.dir.join("learning"))
    }
}

/// A piece of learnt state with its file.
pub(crate) struct Stored<T: Learnt> {
    path: PathBuf,
    bounds: T::Bounds,
    state: RwLock<T>,
    /// Changes applied in memory and not yet in the file.
    unsaved: Mutex<Vec<T::Change>>,
    /// The version of the file the state was last read from or written to.
    seen: Mutex<Option<Version>>,
}

impl<T: Learnt> Stored<T> {
    /// The state in `path` (empty when there is no file yet). A damaged file (which no
    /// crash of ours leaves, but a disk or a hand can) is set aside as `PATH.damaged`
    /// and learning starts again: mail must keep flowing.
    pub(crate) fn open(path: PathBuf, bounds: T::Bounds) -> io::Result<Stored<T>> {
        let (state, seen) = match read::<T>(&path) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let mut aside = path.clone().into_os_string();
                aside.push(".damaged");
                std::fs::rename(&path, &aside)?;
                error!(error = %e, aside = %Path::new(&aside).display(), "damaged learning file set aside; learning starts again");
                (T::default(), None)
            }
            read => read?,
        };
        Ok(Stored {
            path,
            bounds,
            state: RwLock::new(state),
            unsaved: Mutex::new(Vec::new()),
            seen: Mutex::new(seen),
        })
    }

    /// The state now, for reading; held briefly (writers wait).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` now and remembers it for the next save.
    pub(crate) fn change(&self, change: T::Change, day: u32) {
        self.change_with(change, |state, change| {
            state.apply(change, day);
            (true, ())
        });
    }

    /// Applies `change` with `with`, which says whether it changed anything (only then is
    /// it kept for the save) and what to tell the caller.
    pub(crate) fn change_with<R>(
        &self,
        change: T::Change,
        with: impl FnOnce(&mut T, &T::Change) -> (bool, R),
    ) -> R {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let (changed, told) = with(&mut state, &change);
        if changed {
            let mut unsaved = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
            unsaved.push(change);
            bound(&mut unsaved);
        }
        told
    }

    /// True when changes wait for a save.
    pub(crate) fn dirty(&self) -> bool {
        !self
            .unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Writes unsaved changes, merged over the file if someone else replaced it. The
    /// caller holds the folder's lock. On failure the changes stay unsaved.
    pub(crate) fn save(&self, day: u32) -> io::Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let unsaved = std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()));
        let saved = self.write(&mut seen, &unsaved, day);
        if saved.is_err() {
            let mut pending = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
            pending.splice(0..0, unsaved);
            bound(&mut pending);
        }
        saved
    }

    fn write(&self, seen: &mut Option<Version>, unsaved: &[T::Change], day: u32) -> io::Result<()> {
        let on_disk = version_of(&self.path)?;
        if unsaved.is_empty() && on_disk == *seen {
            return Ok(());
        }
        let bytes = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            if on_disk != *seen {
                let (mut newer, _) = read::<T>(&self.path)?;
                for change in unsaved {
                    newer.apply(change, day);
                }
                *state = newer;
            }
            if unsaved.is_empty() {
                // Someone else's changes only: read, nothing of ours to write.
                *seen = on_disk;
                return Ok(());
            }
            state.prune(&self.bounds, day);
            state.encode()
        };
        atomic_file::replace(&self.path, &bytes, 0o600)?;
        *seen = version_of(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::senders::{Deed, Senders};
    use super::*;

    fn wrote(to: &str) -> Deed {
        Deed::Wrote(vec![to.to_string()])
    }

    #[test]
    fn two_writers_keep_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::new(dir.path().to_path_buf());
        let path = folder.path("alice.senders");
        let server = Stored::<Senders>::open(path.clone(), 100).unwrap();
        let command = Stored::<Senders>::open(path.clone(), 100).unwrap();
        server.change(wrote("bob@far.test"), 1);
        command.change(wrote("carol@far.test"), 1);
        {
            let _lock = folder.lock().unwrap();
            command.save(1).unwrap();
        }
        {
            let _lock = folder.lock().unwrap();
            server.save(1).unwrap();
        }
        assert!(server.read().standing("carol@far.test").is_some());
        let reread = Stored::<Senders>::open(path, 100).unwrap();
        assert!(reread.read().standing("bob@far.test").is_some());
        assert!(reread.read().standing("carol@far.test").is_some());
        // A writer with nothing of its own picks up the other's file when it saves.
        command.change(wrote("dave@far.test"), 2);
        command.save(2).unwrap();
        server.save(2).unwrap();
        assert!(server.read().standing("dave@far.test").is_some());
    }

    #[test]
    fn unsaved_changes_are_bounded_but_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let stored = Stored::<Senders>::open(dir.path().join("a.senders"), 100_000).unwrap();
        for i in 0..MAX_UNSAVED + 10 {
            stored.change(wrote(&format!("s{i}@far.test")), 1);
        }
        assert_eq!(stored.unsaved.lock().unwrap().len(), MAX_UNSAVED);
        assert!(stored.read().standing("s0@far.test").is_some());
        stored.save(1).unwrap();
        let reread = Stored::<Senders>::open(dir.path().join("a.senders"), 100_000).unwrap();
        assert!(reread.read().standing("s0@far.test").is_some());
    }

    #[test]
    fn a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.senders");
        std::fs::write(&path, b"posthorn-senders 1\nbroken\n").unwrap();
        let opened = Stored::<Senders>::open(path.clone(), 10).unwrap();
        assert_eq!(opened.read().len(), 0);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(dir.path().join("x.senders.damaged")).unwrap(),
            b"posthorn-senders 1\nbroken\n"
        );
    }
}
