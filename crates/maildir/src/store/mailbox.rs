//! One user's mailbox: the Maildir++ folders under their Maildir root, as IMAP names them.
//! INBOX is the root itself; `Sent` is `root/.Sent`; hierarchy uses `.` (`Archive.2024` is
//! `root/.Archive.2024`), the layout Dovecot and Courier share, so a mailbox can move
//! between them and us. Names are stored as the client sends them (modified UTF-7).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::folder::Folder;
use super::mutf7;
use crate::maildir;
use crate::quota::Change;

/// The hierarchy delimiter.
pub const DELIMITER: char = '.';

/// The folders every mailbox gets at first login, with their RFC 6154 special use.
pub const SPECIAL: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// The subscription list, one name per line.
const SUBSCRIPTIONS: &str = "subscriptions";
/// The lock file serialising changes to it.
const SUBSCRIPTIONS_LOCK: &str = "subscriptions.lock";

/// Why a folder operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// No folder by that name.
    #[error("no such mailbox")]
    NotFound,
    /// The name is taken.
    #[error("mailbox already exists")]
    Exists,
    /// The name cannot be a folder here.
    #[error("{0}")]
    BadName(&'static str),
    /// DELETE of a folder with subfolders (Maildir++ cannot keep a folder that holds only
    /// other folders).
    #[error("mailbox has children; delete them first")]
    HasChildren,
    /// INBOX cannot be deleted, renamed into a subfolder...
    #[error("{0}")]
    Cannot(&'static str),
    /// The file system failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A user's mailbox.
#[derive(Debug, Clone)]
pub struct Mailbox {
    root: PathBuf,
    hostname: String,
}

impl Mailbox {
    /// The mailbox whose INBOX is the Maildir at `root`; `hostname` names new files.
    pub fn new(root: PathBuf, hostname: &str) -> Mailbox {
        Mailbox {
            root,
            hostname: hostname.to_string(),
        }
    }

    /// The Maildir root (INBOX).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates INBOX and the special-use folders that are missing, subscribed, as
    /// Thunderbird and phones expect them to exist.
    pub fn prepare(&self) -> io::Result<()> {
        maildir::create(&self.root)?;
        for (name, _) in SPECIAL {
            let dir = maildir::folder(&self.root, name);
            if !dir.is_dir() {
                maildir::create(&dir)?;
            }
        }
        self.change_subscriptions(|subscribed| {
            for (name, _) in SPECIAL {
                if !subscribed.iter().any(|s| s == name) {
                    subscribed.push(name.to_string());
                }
            }
        })
    }

    /// The folder called `name` if it exists.
    pub fn folder(&self, name: &str) -> Result<Folder, FolderError> {
        let dir = self.path(name)?;
        if !dir.join("cur").is_dir() {
            return Err(FolderError::NotFound);
        }
        Ok(Folder::new(self.root.clone(), dir, &self.hostname))
    }

    /// The directory of the folder `name` (which need not exist).
    fn path(&self, name: &str) -> Result<PathBuf, FolderError> {
        if is_inbox(name) {
            return Ok(self.root.clone());
        }
        validate(name)?;
        Ok(maildir::folder(&self.root, name))
    }

    /// Every folder's name, INBOX first, the others sorted.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec!["INBOX".into()]),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_prefix('.') else {
                continue;
            };
            if validate(name).is_ok() && entry.path().join("cur").is_dir() {
                names.push(name.to_string());
            }
        }
        names.sort();
        names.insert(0, "INBOX".into());
        Ok(names)
    }

    /// The special use of a folder (`\Sent`...), by its name.
    pub fn special_use(name: &str) -> Option<&'static str> {
        SPECIAL.iter().find(|(n, _)| *n == name).map(|(_, u)| *u)
    }

    /// CREATE: a new empty folder. A trailing delimiter is dropped (RFC 3501 §6.3.3); the
    /// parents of a hierarchical name need not exist, as Maildir++ keeps folders flat.
    pub fn create(&self, name: &str) -> Result<(), FolderError> {
        let name = name.strip_suffix(DELIMITER).unwrap_or(name);
        if is_inbox(name) {
            return Err(FolderError::Exists);
        }
        validate_new(name)?;
        let dir = self.path(name)?;
        if dir.exists() {
            return Err(FolderError::Exists);
        }
        maildir::create(&dir)?;
        Ok(())
    }

    /// DELETE: removes a folder and its messages. It is first renamed out of sight (one
    /// atomic step), then removed, so a crash never leaves half a folder listed. What it
    /// held leaves the quota figure at the rename. Its subscription stays: a server must
    /// not drop a subscribed name because the mailbox went (RFC 3501 §6.3.6), and LIST
    /// shows it as `\NonExistent` (RFC 5258 §3).
    pub fn delete(&self, name: &str) -> Result<(), FolderError> {
        if is_inbox(name) {
            return Err(FolderError::Cannot("INBOX cannot be deleted"));
        }
        let dir = self.path(name)?;
        if !dir.is_dir() {
            return Err(FolderError::NotFound);
        }
        if self.has_children(name)? {
            return Err(FolderError::HasChildren);
        }
        let doomed = self.root.join(format!(
            "..deleted-{}",
            maildir::unique_name(&self.hostname, 0)
        ));
        let quota = Change::begin(&self.root)?;
        fs::rename(&dir, &doomed)?;
        quota.removed_folder(&doomed);
        drop(quota);
        fs::File::open(&self.root)?.sync_all()?;
        fs::remove_dir_all(&doomed)?;
        Ok(())
    }

    /// True if some folder lies below `name`.
    pub fn has_children(&self, name: &str) -> io::Result<bool> {
        let prefix = format!("{name}{DELIMITER}");
        Ok(self.list()?.iter().any(|n| n.starts_with(&prefix)))
    }

    /// RENAME: the folder and every folder below it. Renaming INBOX moves its messages
    /// into the new folder and leaves INBOX empty (RFC 3501 §6.3.5).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FolderError> {
        let to = to.strip_suffix(DELIMITER).unwrap_or(to);
        if !is_inbox(to) {
            validate_new(to)?;
        }
        let target = self.path(to)?;
        if is_inbox(to) || target.exists() {
            return Err(FolderError::Exists);
        }
        if is_inbox(from) {
            return self.rename_inbox(to);
        }
        let source = self.path(from)?;
        if !source.is_dir() {
            return Err(FolderError::NotFound);
        }
        if to.starts_with(&format!("{from}{DELIMITER}")) {
            return Err(FolderError::Cannot("a mailbox cannot move into itself"));
        }
        let prefix = format!("{from}{DELIMITER}");
        // Nothing comes or goes, but a recalculation of the quota must not list the folders
        // half renamed.
        let _quota = Change::begin(&self.root)?;
        let children: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        fs::rename(&source, &target)?;
        for child in children {
            let renamed = format!("{to}{}", &child[from.len()..]);
            fs::rename(
                maildir::folder(&self.root, &child),
                maildir::folder(&self.root, &renamed),
            )?;
        }
        fs::File::open(&self.root)?.sync_all()?;
        self.change_subscriptions(|subscribed| {
            for s in subscribed.iter_mut() {
                if *s == from || s.starts_with(&prefix) {
                    *s = format!("{to}{}", &s[from.len()..]);
                }
            }
        })?;
        Ok(())
    }

    fn rename_inbox(&self, to: &str) -> Result<(), FolderError> {
        self.create(to)?;
        let inbox = Folder::new(self.root.clone(), self.root.clone(), &self.hostname);
        let target = self.folder(to)?;
        let all: Vec<(u32, String)> = inbox
            .sync(false)?
            .messages
            .iter()
            .map(|m| (m.uid, m.file.to_string()))
            .collect();
        inbox.move_to(&all, &target)?;
        Ok(())
    }

    /// The subscribed names.
    pub fn subscriptions(&self) -> io::Result<Vec<String>> {
        match fs::read_to_string(self.root.join(SUBSCRIPTIONS)) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// SUBSCRIBE / UNSUBSCRIBE. Subscribing to a name that does not exist is allowed
    /// (RFC 3501 §6.3.6); the name must still be valid.
    pub fn subscribe(&self, name: &str, on: bool) -> Result<(), FolderError> {
        let name = if is_inbox(name) { "INBOX" } else { name };
        self.path(name)?;
        self.change_subscriptions(|subscribed| {
            subscribed.retain(|s| s != name);
            if on {
                subscribed.push(name.to_string());
            }
        })?;
        Ok(())
    }

    /// Changes the subscription list under a lock, so sessions logging in at the same
    /// moment (a phone and a desktop, or a client's parallel connections) do not undo each
    /// other's changes; the file is replaced in one rename.
    fn change_subscriptions(&self, change: impl FnOnce(&mut Vec<String>)) -> io::Result<()> {
        maildir::create(&self.root)?;
        let lock = fs::File::create(self.root.join(SUBSCRIPTIONS_LOCK))?;
        lock.lock()?;
        let before = self.subscriptions()?;
        let mut after = before.clone();
        change(&mut after);
        if after == before {
            return Ok(());
        }
        let mut text = after.join("\n");
        text.push('\n');
        let tmp = self.root.join(format!("{SUBSCRIPTIONS}.tmp"));
        fs::write(&tmp, text)?;
        fs::rename(&tmp, self.root.join(SUBSCRIPTIONS))
    }
}

/// True for INBOX in any case.
pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// Refuses names that cannot be a Maildir++ folder: empty parts (`a..b`, leading or
/// trailing dots), `/`, control characters, and anything under INBOX (INBOX is the root;
/// its subfolders would collide with the top level).
fn validate(name: &str) -> Result<(), FolderError> {
    if name.is_empty() || name.len() > 255 {
        return Err(FolderError::BadName("mailbox name is empty or too long"));
    }
    if name.split(DELIMITER).any(str::is_empty) {
        return Err(FolderError::BadName("mailbox name has an empty level"));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(FolderError::BadName(
            "mailbox name has a character that is not allowed",
        ));
    }
    if name.split(DELIMITER).next().is_some_and(is_inbox) {
        return Err(FolderError::BadName("INBOX cannot have subfolders"));
    }
    Ok(())
}

/// What a name must also be to be given to a new folder (CREATE, RENAME's target): free
/// of the LIST wildcards `*` and `%` (RFC 3501 §5.1), which would make it impossible to
/// list alone, and valid modified UTF-7 (§5.1.3). Existing folders keep working whatever
/// their names, so this is not part of [`validate`].
fn validate_new(name: &str) -> Result<(), FolderError> {
    if name.contains(['*', '%']) {
        return Err(FolderError::BadName(
            "mailbox name has a wildcard (* or %) in it",
        ));
    }
    mutf7::check(name).map_err(FolderError::BadName)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox() -> (tempfile::TempDir, Mailbox) {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path().join("alice"), "h");
        (dir, mailbox)
    }

    #[test]
    fn prepare_makes_special_folders_once() {
        let (_dir, mailbox) = mailbox();
        mailbox.prepare().unwrap();
        mailbox.prepare().unwrap();
        assert_eq!(
            mailbox.list().unwrap(),
            ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
        );
        assert_eq!(mailbox.subscriptions().unwrap().len(), 5);
        assert!(mailbox.root().join(".Sent/maildirfolder").exists());
        assert_eq!(Mailbox::special_use("Trash"), Some("\\Trash"));
    }

    #[test]
    fn create_delete_rename_with_children() {
        let (_dir, mailbox) = mailbox();
        mailbox.create("Work").unwrap();
        mailbox.create("Work.2024.").unwrap();
        assert!(matches!(mailbox.create("Work"), Err(FolderError::Exists)));
        assert!(matches!(
            mailbox.delete("Work"),
            Err(FolderError::HasChildren)
        ));
        mailbox.subscribe("Work.2024", true).unwrap();
        mailbox.rename("Work", "Jobs").unwrap();
        assert_eq!(mailbox.list().unwrap(), ["INBOX", "Jobs", "Jobs.2024"]);
        assert!(matches!(
            mailbox.rename("Jobs", "Jobs%"),
            Err(FolderError::BadName(_))
        ));
        assert_eq!(mailbox.subscriptions().unwrap(), ["Jobs.2024"]);
        mailbox.delete("Jobs.2024").unwrap();
        mailbox.delete("Jobs").unwrap();
        assert_eq!(mailbox.list().unwrap(), ["INBOX"]);
        assert!(matches!(mailbox.delete("Jobs"), Err(FolderError::NotFound)));
        assert!(matches!(
            mailbox.delete("inbox"),
            Err(FolderError::Cannot(_))
        ));
    }

    #[test]
    fn bad_names_are_refused() {
        let (_dir, mailbox) = mailbox();
        for name in [
            "", "a..b", ".a", "a/b", "INBOX.x", "inbox.y", "x\u{7}", "*", "a%", "a&-&&--b", "&AGE",
            "&AGE-",
        ] {
            assert!(
                matches!(
                    mailbox.create(name),
                    Err(FolderError::BadName(_) | FolderError::Exists)
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn renaming_inbox_moves_its_messages() {
        let (_dir, mailbox) = mailbox();
        mailbox.prepare().unwrap();
        maildir::deliver(mailbox.root(), None, "h", b"", &mut &b"a\r\n"[..], 3).unwrap();
        mailbox.rename("INBOX", "Old").unwrap();
        let old = mailbox.folder("Old").unwrap().sync(false).unwrap();
        assert_eq!(old.messages.len(), 1);
        let inbox = mailbox.folder("inbox").unwrap().sync(false).unwrap();
        assert!(inbox.messages.is_empty());
    }
}
