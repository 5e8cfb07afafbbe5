//! Group commit: many files made durable together, as databases do with their logs.
//!
//! A writer hands over an unnamed file (or just its content) with [`GroupCommit::finish`],
//! or a named one to move over another with [`GroupCommit::rename`]. Two stages do the
//! rest, so a file never waits for a whole batch ahead of it:
//! 1. one of [`SYNC_THREADS`] workers writes what is left of the file and syncs its data
//!    (`fdatasync`); many syncs in flight at once let the block layer merge their disk
//!    cache flushes;
//! 2. the namer thread takes every synced file that is ready, names it in the folder (a
//!    link for an unnamed file, see `unnamed`; a rename for a named one) and fsyncs the
//!    folder once for all their names.
//!
//! A file from the pool (see `pool`) skips stage 2: its name was durable before its
//! message arrived, so once its data is synced it is renamed to its queue id and the
//! ticket resolves, with one sync instead of two in sequence. Its footer goes where the
//! pool file says (at its end, when a recycled file is longer than the message).
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

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rustix::fs::{CWD, RenameFlags};
use tokio::sync::oneshot;

use crate::format::FOOTER_LEN;
use crate::pool::PoolFile;
use crate::unnamed;

/// Most names made durable by one folder fsync.
const MAX_BATCH: usize = 4096;

/// Files whose data is synced at once: enough for the device to see many flushes together
/// (and merge them); the threads mostly sleep in the kernel, so they cost no CPU.
const SYNC_THREADS: usize = 16;

/// A file to finish and name durably.
struct Request {
    source: Source,
    to: PathBuf,
    /// Octets still to append.
    tail: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

/// Where the file of a request is.
enum Source {
    /// An unnamed file in the folder, partly written; or none yet, and the sync worker makes
    /// it. It is linked at `to`, which must be new.
    Unnamed(Option<File>),
    /// A named file, written in full, renamed over `to`.
    Named(PathBuf),
    /// A pool file, partly written, renamed to `to` (which must be new) once its data is
    /// durable, without waiting for the rename to be; the request's tail goes before the
    /// footer, which goes where it says.
    Pooled(PoolFile, FooterAt),
}

/// A message file's footer and where in the file it goes.
pub(crate) struct FooterAt {
    pub octets: [u8; FOOTER_LEN as usize],
    pub at: u64,
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
    /// The file, open, when the request had to make it.
    result: io::Result<File>,
}

impl GroupCommit {
    /// Starts a committer for `folder`, the open folder every file is named in. Its
    /// threads end when the `GroupCommit` is dropped.
    pub fn start(folder: File) -> io::Result<GroupCommit> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (synced, to_name) = mpsc::channel::<Synced>();
        let incoming = Arc::new(Mutex::new(incoming));
        let shared = Arc::new(folder.try_clone()?);
        for i in 0..SYNC_THREADS {
            let (incoming, synced) = (Arc::clone(&incoming), synced.clone());
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("commit-sync-{i}"))
                .spawn(move || sync_loop(&shared, &incoming, &synced))?;
        }
        std::thread::Builder::new()
            .name("commit-names".into())
            .spawn(move || name_loop(&folder, &to_name))?;
        Ok(GroupCommit { requests })
    }

    /// Appends `tail` to `file`, an unnamed file in the folder (see `unnamed`; made here
    /// when `None`), names it `to`, and resolves the ticket once content and name are on
    /// disk. On error nothing is left at `to`.
    pub fn finish(&self, file: Option<File>, to: PathBuf, tail: Vec<u8>) -> Ticket {
        self.request(Source::Unnamed(file), to, tail)
    }

    /// Appends `tail` to a pool file, writes `footer`, renames the file `to` and resolves
    /// the ticket once its content is on disk (its name was before). On error nothing is
    /// left at `to`, nor in the pool.
    pub(crate) fn finish_pooled(
        &self,
        file: PoolFile,
        to: PathBuf,
        tail: Vec<u8>,
        footer: FooterAt,
    ) -> Ticket {
        self.request(Source::Pooled(file, footer), to, tail)
    }

    /// Moves a file written in full over `to` durably. Blocking.
    pub fn rename(&self, from: PathBuf, to: PathBuf) -> io::Result<()> {
        self.request(Source::Named(from), to, Vec::new()).wait()
    }

    fn request(&self, source: Source, to: PathBuf, tail: Vec<u8>) -> Ticket {
        let (done, ticket) = oneshot::channel();
        let request = Request {
            source,
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
}

/// Writes what is left of an unnamed file (made in `folder` when `None`) and names it `to`,
/// without syncing.
pub(crate) fn finish_file(
    folder: &File,
    file: Option<File>,
    to: &Path,
    tail: &[u8],
) -> io::Result<()> {
    let file = complete(folder, file, tail)?;
    unnamed::give_name(&file, to)
}

/// Writes `tail` at the end of an unnamed file, made in `folder` when there is none yet.
fn complete(folder: &File, file: Option<File>, tail: &[u8]) -> io::Result<File> {
    let mut file = match file {
        Some(file) => file,
        None => unnamed::create_in(folder)?,
    };
    file.write_all(tail)?;
    Ok(file)
}

/// Writes the rest of a pool file and its footer, syncs its data and renames it `to`; a
/// failed one is removed.
fn finish_pooled(
    pooled: &mut PoolFile,
    footer: &FooterAt,
    to: &Path,
    tail: &[u8],
) -> io::Result<()> {
    let result = pooled
        .file
        .write_all(tail)
        .and_then(|()| pooled.file.write_all_at(&footer.octets, footer.at))
        .and_then(|()| pooled.file.sync_data())
        .and_then(|()| {
            rustix::fs::renameat_with(CWD, &pooled.path, CWD, to, RenameFlags::NOREPLACE)
                .map_err(io::Error::from)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&pooled.path);
    }
    result
}

/// Stage 1: write the rest of a file and sync its data, one file at a time per worker.
fn sync_loop(
    folder: &File,
    incoming: &Mutex<mpsc::Receiver<Request>>,
    synced: &mpsc::Sender<Synced>,
) {
    loop {
        // The lock is held only while waiting for the next file, never while syncing.
        let next = match incoming.lock() {
            Ok(incoming) => incoming.recv(),
            Err(_) => return,
        };
        let Ok(mut request) = next else { return };
        let file = match &mut request.source {
            Source::Unnamed(file) => complete(folder, file.take(), &request.tail),
            Source::Named(from) => File::open(from),
            Source::Pooled(pooled, footer) => {
                let result = finish_pooled(pooled, footer, &request.to, &request.tail);
                let _ = request.done.send(result);
                continue;
            }
        };
        let result = file.and_then(|file| file.sync_data().map(|()| file));
        if synced.send(Synced { request, result }).is_err() {
            return;
        }
    }
}

/// Stage 2: name every synced file that is ready and make the names durable with one
/// fsync of the folder.
fn name_loop(folder: &File, synced: &mpsc::Receiver<Synced>) {
    while let Ok(first) = synced.recv() {
        let mut batch = vec![first];
        batch.extend(synced.try_iter().take(MAX_BATCH - 1));
        let placed: Vec<(Request, io::Result<()>)> = batch
            .into_iter()
            .map(|Synced { request, result }| {
                let placed = result.and_then(|file| match &request.source {
                    Source::Unnamed(_) => unnamed::give_name(&file, &request.to),
                    Source::Named(from) => std::fs::rename(from, &request.to),
                    // Finished by stage 1; never sent here.
                    Source::Pooled(..) => Ok(()),
                });
                // An unnamed file leaves nothing behind; a named one is removed.
                if let (Err(_), Source::Named(from)) = (&placed, &request.source) {
                    let _ = std::fs::remove_file(from);
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
                    let tail = format!("content {i}").into_bytes();
                    committer
                        .finish(None, dir.join(format!("file{i}")), tail)
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
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 16);
    }

    #[test]
    fn a_partly_written_file_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let folder = File::open(dir.path()).unwrap();
        let mut file = unnamed::create_in(&folder).unwrap();
        let committer = GroupCommit::start(folder).unwrap();
        file.write_all(b"head ").unwrap();
        let ticket = committer.finish(Some(file), dir.path().join("whole"), b"tail".to_vec());
        ticket.wait().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("whole")).unwrap(),
            b"head tail"
        );
    }

    #[test]
    fn a_name_already_taken_fails_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let committer = GroupCommit::start(File::open(dir.path()).unwrap()).unwrap();
        std::fs::write(dir.path().join("taken"), b"first").unwrap();
        let again = committer.finish(None, dir.path().join("taken"), b"second".to_vec());
        assert_eq!(
            again.wait().unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"first");
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
