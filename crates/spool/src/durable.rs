//! Group commit: many files made durable together, as databases do with their logs.
//!
//! A writer hands over a file (or just its last octets) with [`GroupCommit::finish`]. Two
//! stages do the rest, so a file never waits for a whole batch ahead of it:
//! 1. one of [`SYNC_THREADS`] workers writes what is left of the file and syncs its data
//!    (`fdatasync`); many syncs in flight at once let the block layer merge their disk
//!    cache flushes;
//! 2. the namer thread takes every synced file that is ready, renames each into the folder
//!    and fsyncs the folder once for all their names.
//!
//! The caller's [`Ticket`] resolves only after that, so nothing is promised early; a crash
//! before it leaves at most a file whose writer was never told it was safe, and a file
//! appears under its final name only with its content already durable. The threads do the
//! work, so an async caller needs no blocking thread.
//!
//! Why not one `syncfs(2)` per batch, which it was until the benchmark measured it: syncfs
//! waits for every dirty page of the whole filesystem, other programs' included. With
//! another process writing a large file, DATA-to-250 went from ~3 ms to ~850 ms at the
//! median, while Postfix, which fsyncs its own files, stayed at ~8 ms.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

/// Most names made durable by one folder fsync.
const MAX_BATCH: usize = 4096;

/// Files whose data is synced at once: enough for the device to see many flushes together
/// (and merge them); the threads mostly sleep in the kernel, so they cost no CPU.
const SYNC_THREADS: usize = 16;

/// A file to finish and move into place durably.
struct Request {
    /// The file, when part of it is already written; otherwise it is created at `from`.
    file: Option<File>,
    from: PathBuf,
    to: PathBuf,
    /// Octets still to append.
    tail: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

/// Resolves once a file handed to the committer is durable (or failed).
#[derive(Debug)]
pub struct Ticket(oneshot::Receiver<io::Result<()>>);

impl Ticket {
    /// A ticket that is already resolved.
    pub fn ready(result: io::Result<()>) -> Ticket {
        let (done, ticket) = oneshot::channel();
        let _ = done.send(result);
        Ticket(ticket)
    }

    /// Waits in an async task.
    pub async fn durable(self) -> io::Result<()> {
        self.0
            .await
            .map_err(|_| io::Error::other("the group committer has stopped"))?
    }

    /// Waits on a thread that may block (never an async task's).
    pub fn wait(self) -> io::Result<()> {
        self.0
            .blocking_recv()
            .map_err(|_| io::Error::other("the group committer has stopped"))?
    }
}

/// The committer for one folder.
#[derive(Debug)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

/// A file whose data is durable, on its way to its name.
struct Synced {
    request: Request,
    result: io::Result<()>,
}

impl GroupCommit {
    /// Starts a committer for `folder`, the open folder every file is renamed into. Its
    /// threads end when the `GroupCommit` is dropped.
    pub fn start(folder: File) -> io::Result<GroupCommit> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (synced, to_name) = mpsc::channel::<Synced>();
        let incoming = Arc::new(Mutex::new(incoming));
        for i in 0..SYNC_THREADS {
            let (incoming, synced) = (Arc::clone(&incoming), synced.clone());
            std::thread::Builder::new()
                .name(format!("commit-sync-{i}"))
                .spawn(move || sync_loop(&incoming, &synced))?;
        }
        std::thread::Builder::new()
            .name("commit-names".into())
            .spawn(move || name_loop(&folder, &to_name))?;
        Ok(GroupCommit { requests })
    }

    /// Appends `tail` to `file` (or creates the file at `from` with it, mode 0600), renames
    /// it to `to`, and resolves the ticket once content and name are on disk. On error the
    /// file is not left at `to`.
    pub fn finish(&self, file: Option<File>, from: PathBuf, to: PathBuf, tail: Vec<u8>) -> Ticket {
        let (done, ticket) = oneshot::channel();
        let request = Request {
            file,
            from,
            to,
            tail,
            done,
        };
        if let Err(mpsc::SendError(request)) = self.requests.send(request) {
            let _ = request
                .done
                .send(Err(io::Error::other("the group committer has stopped")));
        }
        Ticket(ticket)
    }

    /// Moves a file written in full into place durably. Blocking.
    pub fn rename(&self, from: PathBuf, to: PathBuf) -> io::Result<()> {
        self.finish(None, from, to, Vec::new()).wait()
    }
}

/// Writes what is left of a file and moves it into place, without syncing.
pub(crate) fn finish_file(
    file: Option<File>,
    from: &PathBuf,
    to: &PathBuf,
    tail: &[u8],
) -> io::Result<()> {
    complete(file, from, tail)?;
    std::fs::rename(from, to)
}

/// Writes what is left of a file and returns it open: the file handed over, or the one at
/// `from`, created with `tail` when there is one, else written in full by the caller.
fn complete(file: Option<File>, from: &PathBuf, tail: &[u8]) -> io::Result<File> {
    let mut file = match file {
        Some(file) => file,
        None if tail.is_empty() => return File::open(from),
        None => OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(from)?,
    };
    file.write_all(tail)?;
    Ok(file)
}

/// Stage 1: write the rest of a file and sync its data, one file at a time per worker.
fn sync_loop(incoming: &Mutex<mpsc::Receiver<Request>>, synced: &mpsc::Sender<Synced>) {
    loop {
        // The lock is held only while waiting for the next file, never while syncing.
        let next = match incoming.lock() {
            Ok(incoming) => incoming.recv(),
            Err(_) => return,
        };
        let Ok(mut request) = next else { return };
        let result = complete(request.file.take(), &request.from, &request.tail)
            .and_then(|file| file.sync_data());
        if synced.send(Synced { request, result }).is_err() {
            return;
        }
    }
}

/// Stage 2: rename every synced file that is ready and make the names durable with one
/// fsync of the folder.
fn name_loop(folder: &File, synced: &mpsc::Receiver<Synced>) {
    while let Ok(first) = synced.recv() {
        let mut batch = vec![first];
        batch.extend(synced.try_iter().take(MAX_BATCH - 1));
        let placed: Vec<(Request, io::Result<()>)> = batch
            .into_iter()
            .map(|Synced { request, result }| {
                let placed = result.and_then(|()| std::fs::rename(&request.from, &request.to));
                if placed.is_err() {
                    let _ = std::fs::remove_file(&request.from);
                }
                (request, placed)
            })
            .collect();
        // One fsync of the folder makes every new name of the batch durable.
        let named = folder.sync_all();
        for (request, placed) in placed {
            let result = match (placed, &named) {
                (Err(e), _) => Err(e),
                (Ok(()), Ok(())) => Ok(()),
                (Ok(()), Err(e)) => {
                    let _ = std::fs::remove_file(&request.to);
                    Err(io::Error::new(e.kind(), e.to_string()))
                }
            };
            let _ = request.done.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_and_concurrent_ones_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let committer =
            std::sync::Arc::new(GroupCommit::start(File::open(dir.path()).unwrap()).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let committer = std::sync::Arc::clone(&committer);
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let from = dir.join(format!("tmp{i}"));
                    let tail = format!("content {i}").into_bytes();
                    committer
                        .finish(None, from, dir.join(format!("file{i}")), tail)
                        .wait()
                        .unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        for i in 0..16 {
            assert_eq!(
                std::fs::read_to_string(dir.path().join(format!("file{i}"))).unwrap(),
                format!("content {i}")
            );
            assert!(!dir.path().join(format!("tmp{i}")).exists());
        }
    }

    #[test]
    fn a_partly_written_file_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let committer = GroupCommit::start(File::open(dir.path()).unwrap()).unwrap();
        let from = dir.path().join("partial");
        let mut file = File::create(&from).unwrap();
        file.write_all(b"head ").unwrap();
        let ticket = committer.finish(Some(file), from, dir.path().join("whole"), b"tail".to_vec());
        ticket.wait().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("whole")).unwrap(),
            b"head tail"
        );
    }

    #[test]
    fn a_failed_rename_is_reported_to_its_caller_only() {
        let dir = tempfile::tempdir().unwrap();
        let committer = GroupCommit::start(File::open(dir.path()).unwrap()).unwrap();
        let missing = committer.rename(dir.path().join("absent"), dir.path().join("x"));
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        committer
            .rename(dir.path().join("a"), dir.path().join("b"))
            .unwrap();
        assert!(dir.path().join("b").exists());
    }
}
