//! Group commit: many files made durable by one sync, as databases do with their logs.
//!
//! A writer hands over a file (or just its last octets) with [`GroupCommit::finish`]. A
//! committer thread writes what is left of every file that arrived while its previous sync
//! ran, renames them all into place, and calls `syncfs(2)` once for the whole batch: one
//! journal commit and one disk cache flush make all their content and all their names
//! durable together. The caller's [`Ticket`] resolves only after that sync, so nothing is
//! promised early; a crash before it leaves at most a file whose writer was never told it
//! was safe. The thread does the work itself, so an async caller needs no blocking thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;

/// Most files made durable by one sync.
const MAX_BATCH: usize = 4096;

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

/// The committer for one filesystem.
#[derive(Debug)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts a committer for the filesystem that holds `folder` (any open file or folder on
    /// it). The thread ends when the `GroupCommit` is dropped.
    pub fn start(folder: File) -> io::Result<GroupCommit> {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || commit_loop(&folder, &incoming))?;
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
    if !tail.is_empty() {
        let mut file = match file {
            Some(file) => file,
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(from)?,
        };
        file.write_all(tail)?;
    }
    std::fs::rename(from, to)
}

fn commit_loop(folder: &File, incoming: &mpsc::Receiver<Request>) {
    while let Ok(first) = incoming.recv() {
        let mut batch = vec![first];
        batch.extend(incoming.try_iter().take(MAX_BATCH - 1));
        let finished: Vec<io::Result<()>> = batch
            .iter_mut()
            .map(|request| {
                let result = finish_file(
                    request.file.take(),
                    &request.from,
                    &request.to,
                    &request.tail,
                );
                if result.is_err() {
                    let _ = std::fs::remove_file(&request.from);
                }
                result
            })
            .collect();
        let synced = syncfs(folder);
        for (request, finished) in batch.into_iter().zip(finished) {
            let result = match (finished, &synced) {
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

/// Makes every dirty page and metadata change of the filesystem durable (Linux `syncfs`,
/// which reports write-back errors since 5.8).
fn syncfs(folder: &File) -> io::Result<()> {
    // SAFETY: syncfs takes a valid open descriptor, which `folder` owns for the call.
    let result = unsafe { libc::syncfs(folder.as_raw_fd()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
