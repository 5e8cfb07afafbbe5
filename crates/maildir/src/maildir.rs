//! Writing into Maildir (cr.yp.to/proto/maildir.html): write into `tmp/` under a unique
//! name, fsync, rename into `new/`, fsync `new/`. A reader never sees half a message and a
//! crash never loses one that we reported delivered.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::quota::{Change, Usage};

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Held while a Maildir is looked at or made. Folders that exist are not yet durable while
/// the thread that made them is still syncing them: a delivery that found them and went on
/// could be recorded (and its queued copy removed) before they were on disk.
static MAKING: Mutex<()> = Mutex::new(());

/// Creates `cur/`, `new/` and `tmp/` under `root` if they are missing (mode 0700), each
/// durable in its parent (see [`create_dir_durable`]): a message delivered into a folder
/// whose own entry is not durable could vanish with it.
pub(crate) fn create(root: &Path) -> io::Result<()> {
    let _making = MAKING.lock().unwrap_or_else(PoisonError::into_inner);
    if root.join("new").is_dir() && root.join("cur").is_dir() && root.join("tmp").is_dir() {
        return Ok(());
    }
    let half_made = root.is_dir();
    create_dir_durable(root, 0o700)?;
    for sub in ["cur", "new", "tmp"] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root.join(sub))?;
    }
    // Maildir++ marks a subfolder (`.Name`) so readers do not take it for a mailbox.
    if root
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    {
        File::create(root.join("maildirfolder"))?.sync_all()?;
    }
    // One sync of `root` for the entries made in it.
    File::open(root)?.sync_all()?;
    // A run that crashed while making this Maildir may have left `root` without a durable
    // entry in its parent.
    if half_made && let Some(parent) = root.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Makes `folder` and the folders above it that are missing (new ones with `mode`), and
/// fsyncs the parent of each one made, so that none of them can vanish in a crash once
/// this returns. A relative `folder` with no parent named (`posthorn-data`, the default data
/// folder) has the current folder as its parent.
pub fn create_dir_durable(folder: &Path, mode: u32) -> io::Result<()> {
    let missing = folder
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.is_dir())
        .count();
    if missing == 0 {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(folder)?;
    for parent in folder.ancestors().skip(1).take(missing) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The Maildir++ folder `name` of the mailbox at `root`: `root/.name`, as Dovecot and
/// Courier lay folders out, so IMAP clients find it.
pub(crate) fn folder(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".{name}"))
}

/// The folder quarantined mail goes to.
pub const JUNK: &str = "Junk";

/// Delivers `header` followed by `content` (of `content_len` octets) into the mailbox
/// whose Maildir root is `root`: into INBOX, or into the Maildir++ folder `folder` (made
/// if missing). Returns the path in `new/`. `hostname` goes into the unique file name. The
/// message is added to the quota figure (see [`crate::quota`]).
pub fn deliver(
    root: &Path,
    folder: Option<&str>,
    hostname: &str,
    header: &[u8],
    content: &mut dyn Read,
    content_len: u64,
) -> io::Result<PathBuf> {
    deliver_flagged(root, folder, hostname, header, content, content_len, "")
}

/// [`deliver`] with Maildir flag letters (`S` seen, `F` flagged...; a Sieve `addflag`):
/// with any, the message goes into `cur/` as `NAME:2,LETTERS`, as a client that had
/// read it would leave it; returns that path.
pub fn deliver_flagged(
    root: &Path,
    folder: Option<&str>,
    hostname: &str,
    header: &[u8],
    content: &mut dyn Read,
    content_len: u64,
    letters: &str,
) -> io::Result<PathBuf> {
    let dir = match folder {
        Some(name) => self::folder(root, name),
        None => root.to_path_buf(),
    };
    create(&dir)?;
    let size = header.len() as u64 + content_len;
    let name = unique_name(hostname, size);
    let tmp = dir.join("tmp").join(&name);
    let result = write_synced(&tmp, header, content, content_len);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let new = if letters.is_empty() {
        dir.join("new").join(&name)
    } else {
        dir.join("cur").join(format!("{name}:2,{letters}"))
    };
    let placed = Change::begin(root).and_then(|change| {
        fs::rename(&tmp, &new)?;
        change.added(Usage::one(size));
        Ok(())
    });
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(new.parent().unwrap_or(&dir))?.sync_all()?;
    crate::store::changes::changed(&dir);
    Ok(new)
}

fn write_synced(path: &Path, header: &[u8], content: &mut dyn Read, len: u64) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(header)?;
    let copied = io::copy(&mut content.take(len), &mut file)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "queued message is shorter than its recorded length",
        ));
    }
    file.sync_all()
}

/// `time.MmicrosPpidQn.host,S=size`: unique per host (time, pid and a counter), with the
/// size in the name as Maildir++ readers expect for quota.
pub(crate) fn unique_name(hostname: &str, size: u64) -> String {
    format!("{},S={size}", unique(hostname))
}

/// `time.MmicrosPpidQn.host`, the unique part of a name in `tmp/`.
pub(crate) fn unique(hostname: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    let host: String = hostname
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_string(),
            ':' => "\\072".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "{}.M{:06}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host
    )
}

/// The `S=` field of a Maildir++ file name (`...,S=1234` possibly followed by `:2,FLAGS`).
pub(crate) fn size_from_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',')
        .find_map(|field| field.strip_prefix("S="))
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_lands_in_new_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        let content = b"Subject: hi\r\n\r\nbody\r\n";
        let path = deliver(
            &root,
            None,
            "mx.example",
            b"Delivered-To: a@b\r\n",
            &mut &content[..],
            content.len() as u64,
        )
        .unwrap();
        assert!(path.starts_with(root.join("new")));
        let stored = fs::read(&path).unwrap();
        assert_eq!(stored, b"Delivered-To: a@b\r\nSubject: hi\r\n\r\nbody\r\n");
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(size_from_name(&name), Some(stored.len() as u64));
    }

    #[test]
    fn delivery_into_a_folder_makes_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        let path = deliver(&root, Some(JUNK), "h", b"", &mut &b"x"[..], 1).unwrap();
        assert!(
            path.starts_with(root.join(".Junk/new")),
            "{}",
            path.display()
        );
        assert!(root.join(".Junk/maildirfolder").exists());
    }

    #[test]
    fn names_are_unique_and_carry_the_size() {
        let a = unique_name("h/o:st", 10);
        let b = unique_name("h/o:st", 10);
        assert_ne!(a, b);
        assert!(a.ends_with(".h\\057o\\072st,S=10"), "{a}");
        assert_eq!(size_from_name(&a), Some(10));
        assert_eq!(size_from_name("123.M1P2Q3.host,S=77:2,S"), Some(77));
        assert_eq!(size_from_name("123.host"), None);
    }

    #[test]
    fn short_content_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = deliver(dir.path(), None, "h", b"", &mut &b"abc"[..], 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }
}
