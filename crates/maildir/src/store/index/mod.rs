//! The per-folder UID list (`posthorn-uidlist`): which UID each message file has, the
//! folder's UIDVALIDITY and UIDNEXT, the keywords its file-name letters stand for, the
//! first UID no session has yet seen as \Recent, and the mod-sequences of RFC 7162: the
//! folder's HIGHESTMODSEQ, each message's MODSEQ, and the expunged UIDs with theirs. It is
//! only an index: when it is missing or unreadable the folder gets a new UIDVALIDITY and
//! fresh UIDs, and nothing is lost, since the messages themselves are the files.
//!
//! Each entry keeps the message's whole file name as it was when its MODSEQ was given, so a
//! flag change nobody recorded (another program renaming the file, or a crash between a
//! STORE's rename and the index's save) is seen at the next sync and gets a new MODSEQ.
//!
//! Every SELECT reads the whole index, so it is written in a binary form read with one
//! `read` and no parsing of numbers ([`binary`], version 3); the text forms of versions 1
//! and 2 ([`text`]) are still read, and the next save writes version 3. Each version's
//! first line names it, so no version is ever read as another.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::modseq::Expunged;
use super::name::FileName;

mod binary;
mod text;

/// The index file's name inside a Maildir folder.
pub const FILE: &str = "posthorn-uidlist";

/// One folder's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Changes whenever UIDs are renumbered, so clients drop their caches.
    pub uid_validity: u32,
    /// The UID the next new message gets.
    pub uid_next: u32,
    /// Messages from this UID on are \Recent to the next session that selects the folder.
    pub first_recent: u32,
    /// HIGHESTMODSEQ: the last mod-sequence given to any change (RFC 7162 §3.1.1).
    pub highest_modseq: u64,
    /// Keyword names; letter `a` is the first.
    pub keywords: Vec<String>,
    /// The expunged UIDs with their mod-sequences.
    pub expunged: Expunged,
    /// The messages in UID order.
    pub entries: Vec<Entry>,
}

/// One message of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its UID.
    pub uid: u32,
    /// Its MODSEQ: the mod-sequence of its arrival or its last flag change.
    pub modseq: u64,
    /// Its file name in `cur/` when `modseq` was given (a base name alone in version 1).
    pub name: FileName,
}

impl Index {
    /// An empty index under `uid_validity` (from [`new_validity`]).
    pub fn fresh(uid_validity: u32) -> Index {
        Index {
            uid_validity,
            uid_next: 1,
            first_recent: 1,
            highest_modseq: 1,
            keywords: Vec::new(),
            expunged: Expunged::default(),
            entries: Vec::new(),
        }
    }

    /// Reads the index of the folder at `dir`: `Ok(None)` when there is none yet,
    /// `Err(previous UIDVALIDITY if legible)` when it is damaged.
    pub fn load(dir: &Path) -> io::Result<Result<Option<Index>, Option<u32>>> {
        let mut file = match File::open(dir.join(FILE)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
            Err(e) => return Err(e),
        };
        // Every version's first line is as long as version 3's.
        let mut bytes = vec![0; binary::MAGIC.len()];
        match io::Read::read_exact(&mut file, &mut bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Err(None)),
            Err(e) => return Err(e),
        }
        if bytes == binary::MAGIC {
            return Ok(binary::read(&mut file)?.map(Some));
        }
        io::Read::read_to_end(&mut file, &mut bytes)?;
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| None)
            .and_then(text::parse);
        Ok(parsed.map(Some))
    }

    /// True when `entry` may follow the entries before it, `last`: UIDs rising, each below
    /// UIDNEXT, no MODSEQ above HIGHESTMODSEQ.
    fn may_follow(&self, last: Option<&Entry>, entry: &Entry) -> bool {
        entry.uid != 0
            && entry.uid < self.uid_next
            && entry.modseq <= self.highest_modseq
            && last.is_none_or(|last| last.uid < entry.uid)
    }

    /// The position of the message with `uid`.
    pub fn position(&self, uid: u32) -> Option<usize> {
        self.entries.binary_search_by_key(&uid, |e| e.uid).ok()
    }

    /// Drops the messages with `uids` from the index, remembering them as expunged at
    /// `modseq`, which becomes HIGHESTMODSEQ (RFC 7162 §3.2.10: an expunge is a change).
    pub fn forget(&mut self, uids: &[u32], modseq: u64) {
        if uids.is_empty() {
            return;
        }
        self.entries.retain(|e| !uids.contains(&e.uid));
        self.expunged.record(modseq, uids);
        self.highest_modseq = self.highest_modseq.max(modseq);
    }

    /// Writes the index durably: a temporary file synced, renamed over the old one, the
    /// folder synced. A UID handed to a client must survive a crash, or it could be reused.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let bytes = binary::encode(self);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        File::open(dir)?.sync_all()?;
        super::changes::changed(dir);
        Ok(())
    }
}

/// The file in a mailbox's Maildir root holding the last UIDVALIDITY given to any of its
/// folders.
pub const LAST_VALIDITY: &str = "posthorn-uidvalidity";

/// A UIDVALIDITY for a new or renumbered folder of the mailbox at `root`: the time in
/// seconds, but more than `previous` (the folder's old value, if any) and more than any
/// value the mailbox gave out before. A folder deleted and created again within the same
/// second thus never gets its old UIDVALIDITY back, so a UIDVALIDITY/UID pair never names
/// two messages (RFC 3501 §2.3.1.1). The last value is kept in `LAST_VALIDITY`, changed
/// under its lock and synced before the new value is used.
pub fn new_validity(root: &Path, previous: Option<u32>) -> io::Result<u32> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(root.join(LAST_VALIDITY))?;
    file.lock()?;
    let mut text = String::new();
    // Unreadable content counts as nothing given out: the time still moves on.
    let last = io::Read::read_to_string(&mut file, &mut text)
        .ok()
        .and_then(|_| text.trim().parse::<u32>().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let validity = next_validity(now, previous.max(last));
    file.set_len(0)?;
    io::Seek::rewind(&mut file)?;
    file.write_all(format!("{validity}\n").as_bytes())?;
    file.sync_data()?;
    Ok(validity)
}

/// `now`, or one more than `floor` when that is not below it; never 0.
fn next_validity(now: u32, floor: Option<u32>) -> u32 {
    match floor {
        Some(floor) if floor >= now => floor.wrapping_add(1).max(1),
        _ => now.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Index::load(dir.path()).unwrap(), Ok(None));
        let mut index = Index::fresh(1);
        index.uid_next = 8;
        index.keywords = vec!["$Junk".into()];
        index.highest_modseq = 9;
        index.entries = vec![entry(3, 2, "a.b,S=3:2,S"), entry(7, 9, "c.d:2,")];
        index.forget(&[5], 9);
        index.save(dir.path()).unwrap();
        let saved = std::fs::read(dir.path().join(FILE)).unwrap();
        assert!(saved.starts_with(b"posthorn-uidlist 3\n"));
        assert_eq!(Index::load(dir.path()).unwrap(), Ok(Some(index)));
    }

    /// A saved index of two entries, for damaging.
    fn saved() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::fresh(77);
        index.uid_next = 9;
        index.highest_modseq = 4;
        index.entries = vec![entry(3, 2, "a.b:2,S"), entry(7, 4, "c.d:2,")];
        index.save(dir.path()).unwrap();
        let bytes = std::fs::read(dir.path().join(FILE)).unwrap();
        (dir, bytes)
    }

    #[test]
    fn a_damaged_binary_index_is_never_misread() {
        let (dir, bytes) = saved();
        let load_with = |bytes: &[u8]| {
            std::fs::write(dir.path().join(FILE), bytes).unwrap();
            Index::load(dir.path()).unwrap()
        };
        let header = binary::MAGIC.len();
        let entries = header + 4 * 3 + 8 + 4 * 4;
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("cut short", bytes[..bytes.len() - 1].to_vec()),
            ("one octet too many", [&bytes[..], b"x"].concat()),
        ];
        let mut set = |what, at: usize, value: &[u8]| {
            let mut damaged = bytes.clone();
            damaged[at..at + value.len()].copy_from_slice(value);
            cases.push((what, damaged));
        };
        set("UIDs out of order", entries, &9u32.to_le_bytes());
        set("a UID at UIDNEXT", entries + 16, &9u32.to_le_bytes());
        set(
            "a MODSEQ above the highest",
            entries + 4,
            &5u64.to_le_bytes(),
        );
        set("a name past the area", entries + 12, &9u32.to_le_bytes());
        set("not UTF-8", bytes.len() - 1, &[0xff]);
        for (what, damaged) in cases {
            assert_eq!(load_with(&damaged), Err(Some(77)), "{what}");
        }
        assert_eq!(load_with(&bytes[..header + 2]), Err(None));
        assert!(load_with(&bytes).unwrap().is_some());
    }

    #[test]
    fn version_2_is_read_and_saved_as_version_3() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "posthorn-uidlist 2\nV 99 N 5 R 2 M 7\nK $Junk\nX 6:3-3\n2 7 x.y:2,S\n4 1 z:2,\n",
        )
        .unwrap();
        let index = Index::load(dir.path()).unwrap().unwrap().unwrap();
        assert_eq!((index.uid_next, index.first_recent), (5, 2));
        assert_eq!(index.highest_modseq, 7);
        assert_eq!(index.expunged.since(5), [(3, 3)]);
        assert_eq!(index.entries, [entry(2, 7, "x.y:2,S"), entry(4, 1, "z:2,")]);
        index.save(dir.path()).unwrap();
        let saved = std::fs::read(dir.path().join(FILE)).unwrap();
        assert!(saved.starts_with(binary::MAGIC));
        assert_eq!(Index::load(dir.path()).unwrap(), Ok(Some(index)));
    }

    fn entry(uid: u32, modseq: u64, name: &str) -> Entry {
        Entry {
            uid,
            modseq,
            name: name.into(),
        }
    }

    #[test]
    fn version_1_is_read_at_modseq_1() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "posthorn-uidlist 1\nV 99 N 5 R 1\nK $Junk\n2 x.y\n4 z\n",
        )
        .unwrap();
        let index = Index::load(dir.path()).unwrap().unwrap().unwrap();
        assert_eq!(index.highest_modseq, 1);
        assert_eq!(index.entries, [entry(2, 1, "x.y"), entry(4, 1, "z")]);
        assert_eq!(index.keywords, ["$Junk"]);
    }

    #[test]
    fn damage_is_reported_with_the_old_validity() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join(FILE), text).unwrap();
        write("posthorn-uidlist 1\nV 99 N 5 R 1\nK\n9 x\n");
        assert_eq!(Index::load(dir.path()).unwrap(), Err(Some(99)));
        write("posthorn-uidlist 1\nV 99 N 5 R 1\nK\n3 x\n2 y\n");
        assert_eq!(Index::load(dir.path()).unwrap(), Err(Some(99)));
        write("posthorn-uidlist 2\nV 99 N 5 R 1 M 3\nK\nX\n2 4 y\n");
        assert_eq!(
            Index::load(dir.path()).unwrap(),
            Err(Some(99)),
            "modseq above the highest"
        );
        write("posthorn-uidlist 2\nV 99 N 5 R 1 M 3\nK\n2 3 y\n");
        assert_eq!(Index::load(dir.path()).unwrap(), Err(Some(99)), "no X line");
        write("garbage");
        assert_eq!(Index::load(dir.path()).unwrap(), Err(None));
    }

    #[test]
    fn new_validities_only_increase() {
        assert_eq!(next_validity(100, None), 100);
        assert_eq!(next_validity(100, Some(99)), 100);
        assert_eq!(next_validity(100, Some(100)), 101);
        assert_eq!(next_validity(100, Some(u32::MAX - 1)), u32::MAX);
        let root = tempfile::tempdir().unwrap();
        let first = new_validity(root.path(), None).unwrap();
        let second = new_validity(root.path(), None).unwrap();
        let third = new_validity(root.path(), Some(second + 10)).unwrap();
        assert!(
            first < second && second + 10 < third,
            "{first} {second} {third}"
        );
        assert_eq!(new_validity(root.path(), None).unwrap(), third + 1);
    }
}
