//! Spool files named before their mail arrives, so that a message needs one sync, not two.
//!
//! A message received into an unnamed file (`unnamed`) needs two syncs in sequence before
//! its 250: its data, then the folder entry that names it (`durable`). On the disks we
//! measured each costs about 4 ms whatever its size, so those two are most of DATA-to-250.
//! A pool file's name is made durable beforehand, many names by one folder fsync, off the
//! critical path. A message written into it is durable after the one `fdatasync` of its
//! data, and is then renamed to its queue id without waiting for the rename to reach the
//! disk: after a crash before it does, recovery finds the message under its pool name by
//! its footer and checksum (format version 2) and gives it its name. A pool file without a
//! whole, checksummed message was never promised to anyone and is removed.
//!
//! The files are `.pool-<n>` in the spool folder itself, so that the rename stays within
//! the folder the fsync covered, and the queue's listings (and `ls`) pass them by. When the
//! pool runs dry in a burst, a writer falls back on an unnamed file and two syncs, and the
//! pool doubles, up to [`MAX_READY`].

use std::fs::{self, File};
use std::io::{self, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::format;
use crate::fs::create_file;

/// How pool files' names begin.
const PREFIX: &str = ".pool-";
/// Files kept ready at first.
const INITIAL_READY: usize = 32;
/// Most files kept ready (each holds a descriptor open).
const MAX_READY: usize = 1024;
/// The wait before trying again when files cannot be made (a full disk, say); writers
/// meanwhile use unnamed files, which report the error to their client.
const RETRY: Duration = Duration::from_secs(1);

/// An empty spool file whose name is durable.
pub(crate) struct PoolFile {
    pub file: File,
    pub path: PathBuf,
}

/// The files ready for messages, kept filled by a thread of its own, which ends when the
/// pool is dropped.
#[derive(Debug)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the pool runs low or stops.
    low: Condvar,
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<PoolFile>,
    /// How many files the keeper keeps ready.
    target: usize,
    stopped: bool,
}

impl std::fmt::Debug for PoolFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path.to_string_lossy())
    }
}

impl Pool {
    /// Makes the first files in `root`, the spool folder (`folder`, open), and starts
    /// keeping files ready there. Call only after [`recover`] has dealt with the files a
    /// previous run left.
    pub fn start(root: &Path, folder: File) -> io::Result<Pool> {
        let mut names = Names {
            root: root.to_path_buf(),
            next: 0,
        };
        let ready = names.make(&folder, INITIAL_READY)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready,
                target: INITIAL_READY,
                stopped: false,
            }),
            low: Condvar::new(),
        });
        let keeper = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("spool-pool".into())
            .spawn(move || keep(&keeper, names, &folder))?;
        Ok(Pool { shared })
    }

    /// A ready file, if there is one.
    pub fn take(&self) -> Option<PoolFile> {
        let mut state = self.shared.lock();
        let taken = state.ready.pop();
        if taken.is_none() {
            state.target = (state.target * 2).min(MAX_READY);
        }
        if state.ready.len() < state.target / 2 {
            self.shared.low.notify_one();
        }
        taken
    }

    /// Takes back a file whose message was abandoned, emptied for the next one. One that
    /// cannot be emptied is removed.
    pub fn give_back(&self, mut pooled: PoolFile) {
        let emptied = pooled.file.set_len(0).and_then(|()| pooled.file.rewind());
        let mut state = self.shared.lock();
        if emptied.is_ok() && !state.stopped && state.ready.len() < state.target {
            state.ready.push(pooled);
        } else {
            drop(state);
            let _ = fs::remove_file(&pooled.path);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.low.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The keeper: whenever the pool runs below half its target, makes the files it lacks.
fn keep(shared: &Shared, mut names: Names, folder: &File) {
    let mut failed = false;
    loop {
        let wanted = {
            let mut state = shared.lock();
            loop {
                if state.stopped {
                    return;
                }
                if state.ready.len() < state.target / 2 && !failed {
                    break state.target - state.ready.len();
                }
                state = if failed {
                    let (state, waited) = shared
                        .low
                        .wait_timeout(state, RETRY)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    failed = !waited.timed_out();
                    state
                } else {
                    shared
                        .low
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                };
            }
        };
        let made = names.make(folder, wanted);
        failed = made.is_err();
        let mut state = shared.lock();
        match made {
            Ok(made) if !state.stopped => state.ready.extend(made),
            Ok(made) => {
                drop(state);
                for pooled in made {
                    let _ = fs::remove_file(&pooled.path);
                }
                return;
            }
            Err(_) => {}
        }
    }
}

/// Where pool files are made, and the number the next one takes.
struct Names {
    root: PathBuf,
    next: u64,
}

impl Names {
    /// Makes `count` files and makes their names durable with one fsync of the folder; on
    /// error none is left.
    fn make(&mut self, folder: &File, count: usize) -> io::Result<Vec<PoolFile>> {
        let mut made = Vec::with_capacity(count);
        let result = loop {
            if made.len() == count {
                break folder.sync_all();
            }
            self.next += 1;
            let path = self.root.join(format!("{PREFIX}{}", self.next));
            match create_file(&path) {
                Ok(file) => made.push(PoolFile { file, path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = result {
            for pooled in made {
                let _ = fs::remove_file(&pooled.path);
            }
            return Err(e);
        }
        Ok(made)
    }
}

/// Start-up, before the pool starts: gives each whole, checksummed message a previous run
/// left under a pool name its queue id, sets aside in `corrupt` a file that has a footer
/// but fails its checksum, and removes the rest (files never written, or whose writing
/// was cut off, which no client was told were safe). Returns whether it named any message.
pub(crate) fn recover(root: &Path, corrupt: &Path) -> io::Result<bool> {
    let mut named = false;
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        match left_message(&path)? {
            Left::Message(id) => {
                let to = root.join(id);
                if to.exists() {
                    fs::remove_file(&path)?;
                } else {
                    fs::rename(&path, to)?;
                    named = true;
                }
            }
            Left::Damaged => {
                fs::create_dir_all(corrupt)?;
                fs::rename(&path, corrupt.join(&name))?;
            }
            Left::Nothing => fs::remove_file(&path)?,
        }
    }
    Ok(named)
}

/// What a previous run left in a pool file.
enum Left {
    /// A whole message, with its queue id.
    Message(String),
    /// A footer whose checksum or envelope does not hold.
    Damaged,
    /// Nothing, or a message cut off before its footer.
    Nothing,
}

fn left_message(path: &Path) -> io::Result<Left> {
    let file = File::open(path)?;
    let Ok(footer) = format::read_footer(&file) else {
        return Ok(Left::Nothing);
    };
    if !format::checksum_holds(&file, &footer)? {
        return Ok(Left::Damaged);
    }
    let Ok(len) = usize::try_from(footer.envelope_len) else {
        return Ok(Left::Damaged);
    };
    let mut json = vec![0; len];
    file.read_exact_at(&mut json, footer.content_len)?;
    Ok(match format::decode_envelope(&json) {
        Ok(envelope) => Left::Message(envelope.id.to_string()),
        Err(_) => Left::Damaged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_made_durable_and_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::start(dir.path(), File::open(dir.path()).unwrap()).unwrap();
        let taken = pool.take().unwrap();
        assert!(taken.path.starts_with(dir.path()));
        assert_eq!(taken.file.metadata().unwrap().len(), 0);
        assert!(
            taken
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(PREFIX)
        );
    }

    #[test]
    fn a_file_given_back_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::start(dir.path(), File::open(dir.path()).unwrap()).unwrap();
        let mut taken = pool.take().unwrap();
        std::io::Write::write_all(&mut taken.file, b"abandoned").unwrap();
        let path = taken.path.clone();
        pool.give_back(taken);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }
}
