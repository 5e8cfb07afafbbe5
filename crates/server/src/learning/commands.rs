//! `posthorn spam`: train the classifier from files or Maildir folders, show how far a
//! model is, forget, and measure accuracy on a labelled corpus.

use std::io;
use std::path::{Path, PathBuf};

use posthorn_classify::{Class, Learned};

use super::{Learning, Status};

/// What a training run did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages learnt for the first time.
    pub learnt: usize,
    /// Messages learnt before as the other class, now relearnt.
    pub relearnt: usize,
    /// Messages already learnt as this class.
    pub known: usize,
    /// Files that could not be read.
    pub unreadable: usize,
}

/// The message files under `path`: the file itself; a Maildir folder's `cur/` and
/// `new/`; or the files of a folder (not its subfolders, nor hidden files).
pub fn messages_in(path: &Path) -> io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let maildir = ["cur", "new"].map(|sub| path.join(sub));
    let folders: Vec<PathBuf> = if maildir.iter().any(|d| d.is_dir()) {
        maildir.into_iter().filter(|d| d.is_dir()).collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut files = Vec::new();
    for folder in folders {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.path().is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Training is saved every so many messages, so a long run killed halfway keeps most of
/// what it learnt.
const SAVE_EVERY: usize = 500;

/// Learns every message under `paths` as `class`, saving as it goes and at the end.
pub fn train(
    learning: &Learning,
    account: Option<&str>,
    paths: &[PathBuf],
    class: Class,
) -> io::Result<Tally> {
    let mut tally = Tally::default();
    for path in paths {
        for file in messages_in(path)? {
            let Ok(message) = read_message(&file) else {
                tally.unreadable += 1;
                continue;
            };
            match learning.learn(account, &message, class)? {
                Learned::Trained => tally.learnt += 1,
                Learned::Retrained => tally.relearnt += 1,
                Learned::Unchanged => tally.known += 1,
            }
            if (tally.learnt + tally.relearnt + tally.known) % SAVE_EVERY == 0 {
                learning.save()?;
            }
        }
    }
    learning.save()?;
    Ok(tally)
}

/// Takes every message under `paths` back out; returns how many the model had.
pub fn forget(learning: &Learning, account: Option<&str>, paths: &[PathBuf]) -> io::Result<usize> {
    let mut forgotten = 0;
    for path in paths {
        for file in messages_in(path)? {
            if learning.forget(account, &read_message(&file)?)? {
                forgotten += 1;
            }
        }
    }
    learning.save()?;
    Ok(forgotten)
}

/// A message file, as much of it as the classifier reads.
fn read_message(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(super::READ_LIMIT as u64)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A labelled corpus: `DIR/spam` and `DIR/ham` (files or Maildir folders).
pub fn corpus(dir: &Path) -> io::Result<Vec<(Vec<u8>, Class)>> {
    let mut messages = Vec::new();
    for (sub, class) in [("spam", Class::Spam), ("ham", Class::Ham)] {
        let folder = dir.join(sub);
        if !folder.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is not a folder (a corpus has spam/ and ham/)",
                    folder.display()
                ),
            ));
        }
        for file in messages_in(&folder)? {
            messages.push((read_message(&file)?, class));
        }
    }
    Ok(messages)
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} spam, {} ham, {} tokens; {}",
            self.spam,
            self.ham,
            self.tokens,
            if self.ready { "ready" } else { "not ready yet" }
        )?;
        if let Some(senders) = self.senders {
            write!(f, "; {senders} senders known")?;
        }
        Ok(())
    }
}
