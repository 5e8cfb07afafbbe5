//! A folder's header cache (`posthorn-cache`): per message, a few octets the IMAP server
//! would otherwise read from the message file again and again (the header fields of
//! ENVELOPE, SEARCH and HEADER.FIELDS), so that listing or searching a large folder does
//! not open every file. The cache knows nothing of what it holds: it maps a UID and a base
//! name to bytes.
//!
//! The file is a magic line and then append-only records, each `length, checksum, UID,
//! base name, bytes`. A record is used only when its checksum holds and its base name is
//! the message's, so a torn tail (a crash mid-append) is ignored and cut off by the next
//! append, and a UID reused after a UIDVALIDITY change never finds another message's
//! record. Appends happen under an exclusive lock on the file (sessions of several
//! processes share it); a file mostly of records for expunged messages is rewritten to a
//! temporary file and renamed over the old one. It is only a cache: whatever goes wrong
//! with it, callers read the message file instead.
//!
//! Only an offset table (UID → where its record is) is held in memory; records are read
//! one at a time when asked for.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tracing::debug;

/// The cache file, beside `posthorn-uidlist`.
pub const CACHE: &str = "posthorn-cache";
/// Where a rewrite is prepared before it is renamed over [`CACHE`].
const REWRITE: &str = "posthorn-cache.new";
/// The first octets of the file: its format.
const MAGIC: &[u8; 8] = b"PHCACHE1";
/// Length and checksum before each record's body.
const PREFIX: usize = 8;
/// The largest record body kept: more is no cache's business.
pub const MAX_RECORD: usize = 64 * 1024;
/// A cache file larger than this (some 2000 messages) is read only once its handle has
/// been asked for [`LAZY_ASKS`] messages: a session that fetches the 50 newest of a
/// 100 000-message folder reads their headers rather than a table of 100 000.
const EAGER_LOAD: u64 = 1 << 20;
/// See [`EAGER_LOAD`].
const LAZY_ASKS: usize = 256;
/// Octets read at a time when scanning the file.
const SCAN_BUFFER: usize = 256 * 1024;
/// A rewrite is worth it only past this many dead records.
const MIN_GARBAGE: usize = 256;

/// Where one message's record is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    len: u32,
}

/// The open file and what is known of it.
#[derive(Debug, Default)]
struct State {
    /// The file, when it could be opened.
    file: Option<File>,
    /// Its inode: a rewrite by another process replaces it.
    inode: u64,
    /// The end of the last valid record read.
    end: u64,
    /// The newest record of each UID.
    table: HashMap<u32, Entry>,
    /// Records read in all, superseded ones included.
    records: usize,
    /// Whether the file has been read at all.
    loaded: bool,
    /// Messages asked for before it was.
    asks: usize,
}

/// The header cache of one folder.
#[derive(Debug)]
pub struct HeaderCache {
    dir: PathBuf,
    state: Mutex<State>,
}

impl HeaderCache {
    /// The cache of the folder at `dir`; nothing is read until it is used.
    pub fn new(dir: &Path) -> HeaderCache {
        HeaderCache {
            dir: dir.to_path_buf(),
            state: Mutex::new(State::default()),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(CACHE)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes cached for the message `uid` whose base name is `base`, if any. Records
    /// other sessions appended since the last look are picked up. A large file is not
    /// read for the first few messages asked for (see [`EAGER_LOAD`]).
    pub fn get(&self, uid: u32, base: &str) -> Option<Vec<u8>> {
        let mut state = self.state();
        if !state.loaded {
            state.asks += 1;
        }
        if !self.ready(&mut state) {
            return None;
        }
        if let Some(found) = lookup(&state, uid, base) {
            return Some(found);
        }
        scan(&mut state, false);
        lookup(&state, uid, base)
    }

    /// Whether this handle has read the file: until then [`HeaderCache::put`] keeps
    /// nothing (see [`EAGER_LOAD`]).
    pub fn is_read(&self) -> bool {
        self.state().loaded
    }

    /// Caches `bytes` for the message `uid` with base name `base`. Failing is harmless
    /// (the next reader reads the message file), so errors are only logged.
    pub fn put(&self, uid: u32, base: &str, bytes: &[u8]) {
        if bytes.len() + base.len() + 6 > MAX_RECORD || base.len() > usize::from(u16::MAX) {
            return;
        }
        if let Err(e) = self.append(uid, base, bytes) {
            debug!(error = %e, dir = %self.dir.display(), "cannot write the header cache");
        }
    }

    /// Rewrites the file without the records of messages no longer there (`base_of` a
    /// UID is the base name of the folder's message with that UID, if any) when they are
    /// most of it: called now and then with the folder's current messages.
    pub fn compact<'a>(&self, base_of: &dyn Fn(u32) -> Option<&'a str>) {
        if let Err(e) = self.rewrite(base_of) {
            debug!(error = %e, dir = %self.dir.display(), "cannot rewrite the header cache");
        }
    }

    /// Reads the file if not done yet, unless it is large and this handle has been asked
    /// for few messages so far (see [`EAGER_LOAD`]); true once it is read.
    fn ready(&self, state: &mut State) -> bool {
        if state.loaded {
            return true;
        }
        let size = fs::metadata(self.path()).map_or(0, |m| m.len());
        if size > EAGER_LOAD && state.asks <= LAZY_ASKS {
            return false;
        }
        self.reload(state);
        true
    }

    /// Opens the file afresh and reads its records.
    fn reload(&self, state: &mut State) {
        *state = State {
            loaded: true,
            ..State::default()
        };
        let Ok(file) = File::open(self.path()) else {
            return;
        };
        state.inode = file.metadata().map_or(0, |m| m.ino());
        state.file = Some(file);
        scan(state, false);
    }

    /// The file opened for appending under its lock: the one now at the path, created
    /// with its magic when missing or not a cache file.
    fn locked(&self, state: &mut State) -> io::Result<Locked> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.path())?;
            file.lock()?;
            let file = Locked(file);
            let inode = file.metadata()?.ino();
            // Rewritten and renamed away between our open and our lock: try the new one.
            if fs::metadata(self.path()).map(|m| m.ino())? != inode {
                continue;
            }
            if state.inode != inode || !state.loaded || state.file.is_none() {
                *state = State {
                    loaded: true,
                    inode,
                    file: Some(file.try_clone()?),
                    ..State::default()
                };
            }
            if !has_magic(&file) {
                file.set_len(0)?;
                file.write_all_at(MAGIC, 0)?;
                *state = State {
                    loaded: true,
                    inode,
                    file: Some(file.try_clone()?),
                    end: MAGIC.len() as u64,
                    ..State::default()
                };
            }
            return Ok(file);
        }
    }

    fn append(&self, uid: u32, base: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        // Appending needs the file read.
        if !self.ready(&mut state) {
            return Ok(());
        }
        let file = self.locked(&mut state)?;
        // Catch up with other appenders, cutting off a torn tail so ours is reachable.
        scan(&mut state, true);
        let record = encode(uid, base, bytes);
        let offset = state.end;
        file.write_all_at(&record, offset)?;
        let len = record.len() as u32;
        state.end += u64::from(len);
        state.records += 1;
        state.table.insert(uid, Entry { offset, len });
        Ok(())
    }

    fn rewrite<'a>(&self, base_of: &dyn Fn(u32) -> Option<&'a str>) -> io::Result<()> {
        let mut state = self.state();
        // Judged by what this handle has read: one that was never used reads nothing.
        if state.file.is_none() || !worth_rewriting(&state, base_of) {
            return Ok(());
        }
        let file = self.locked(&mut state)?;
        scan(&mut state, true);
        if !worth_rewriting(&state, base_of) {
            return Ok(());
        }
        let mut kept = MAGIC.to_vec();
        let mut entries: Vec<(u32, Entry)> = state.table.iter().map(|(u, e)| (*u, *e)).collect();
        entries.sort_by_key(|(_, entry)| entry.offset);
        for (uid, entry) in entries {
            if let Some(record) = read_record(&file, entry)
                && base_of(uid) == Some(record.base.as_str())
            {
                kept.extend_from_slice(&encode(uid, &record.base, &record.bytes));
            }
        }
        let temporary = self.dir.join(REWRITE);
        fs::write(&temporary, &kept)?;
        fs::rename(&temporary, self.path())?;
        drop(file);
        self.reload(&mut state);
        Ok(())
    }
}

/// The file while locked. The lock belongs to the open file description, which
/// `State::file` shares, so it is released explicitly rather than by closing.
struct Locked(File);

impl std::ops::Deref for Locked {
    type Target = File;

    fn deref(&self) -> &File {
        &self.0
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.0.unlock().is_err() {
            debug!("cannot unlock the header cache");
        }
    }
}

/// True when most records are dead: superseded, or of UIDs no longer in the folder.
/// Judged from the table alone, so that asking costs no reading.
fn worth_rewriting<'a>(state: &State, base_of: &dyn Fn(u32) -> Option<&'a str>) -> bool {
    let alive = state
        .table
        .keys()
        .filter(|uid| base_of(**uid).is_some())
        .count();
    let dead = state.records - alive;
    dead > MIN_GARBAGE && dead > alive
}

/// The record of `uid` if it is that of the message called `base`.
fn lookup(state: &State, uid: u32, base: &str) -> Option<Vec<u8>> {
    let entry = state.table.get(&uid)?;
    let record = read_record(state.file.as_ref()?, *entry)?;
    (record.base == base).then_some(record.bytes)
}

/// True if the file starts as a cache file does.
fn has_magic(file: &File) -> bool {
    let mut magic = [0; MAGIC.len()];
    file.read_exact_at(&mut magic, 0).is_ok() && &magic == MAGIC
}

/// Reads the records after `state.end` into the table, up to the end of the file or the
/// first record that is not whole and intact; with `truncate` (under the lock) the file
/// is cut there, as what follows is a torn append.
fn scan(state: &mut State, truncate: bool) {
    let Some(file) = state.file.as_ref() else {
        return;
    };
    let size = file.metadata().map_or(0, |m| m.len());
    if state.end == 0 {
        if !has_magic(file) {
            return;
        }
        state.end = MAGIC.len() as u64;
    }
    let mut at = state.end;
    if at >= size {
        return;
    }
    // Read sequentially: a folder of 100 000 messages is as many records.
    let mut reader = io::BufReader::with_capacity(SCAN_BUFFER, file);
    if reader.seek(io::SeekFrom::Start(at)).is_err() {
        return;
    }
    let mut raw = Vec::new();
    while at + PREFIX as u64 <= size {
        raw.resize(PREFIX, 0);
        if reader.read_exact(&mut raw).is_err() {
            break;
        }
        let body = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        if !(6..=MAX_RECORD).contains(&body) {
            break;
        }
        raw.resize(PREFIX + body, 0);
        if reader.read_exact(&mut raw[PREFIX..]).is_err() {
            break;
        }
        let Some(uid) = intact(&raw) else {
            break;
        };
        let entry = Entry {
            offset: at,
            len: (PREFIX + body) as u32,
        };
        state.table.insert(uid, entry);
        state.records += 1;
        at += u64::from(entry.len);
    }
    state.end = at;
    if truncate && at < size && file.set_len(at).is_err() {
        debug!("cannot cut a torn header cache record");
    }
}

/// One record as read back.
struct Record {
    base: String,
    bytes: Vec<u8>,
}

/// The record at `entry`, None unless whole and intact.
fn read_record(file: &File, entry: Entry) -> Option<Record> {
    let len = entry.len as usize;
    if !(PREFIX + 6..=PREFIX + MAX_RECORD).contains(&len) {
        return None;
    }
    let mut raw = vec![0; len];
    file.read_exact_at(&mut raw, entry.offset).ok()?;
    decode(&raw)
}

/// A record: body length and checksum, then UID, base name length, base name and bytes.
fn encode(uid: u32, base: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(6 + base.len() + bytes.len());
    body.extend_from_slice(&uid.to_le_bytes());
    body.extend_from_slice(&(base.len() as u16).to_le_bytes());
    body.extend_from_slice(base.as_bytes());
    body.extend_from_slice(bytes);
    let mut record = Vec::with_capacity(PREFIX + body.len());
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&checksum(&body).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

/// The UID of the record in `raw` (prefix included), None if its length or checksum is
/// wrong.
fn intact(raw: &[u8]) -> Option<u32> {
    let (prefix, body) = raw.split_at_checked(PREFIX)?;
    let len = u32::from_le_bytes(prefix.get(..4)?.try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(prefix.get(4..8)?.try_into().ok()?);
    if len != body.len() || checksum(body) != sum {
        return None;
    }
    Some(u32::from_le_bytes(body.get(..4)?.try_into().ok()?))
}

/// The record in `raw` (prefix included), None if its length or checksum is wrong.
fn decode(raw: &[u8]) -> Option<Record> {
    intact(raw)?;
    let body = raw.get(PREFIX..)?;
    let base_len = u16::from_le_bytes(body.get(4..6)?.try_into().ok()?) as usize;
    let base = std::str::from_utf8(body.get(6..6 + base_len)?).ok()?;
    Some(Record {
        base: base.to_string(),
        bytes: body.get(6 + base_len..)?.to_vec(),
    })
}

/// A checksum that tells a torn or overwritten record from a whole one, eight octets at
/// a time: loading the table of a 100 000-message folder checks some 50 MB.
fn checksum(bytes: &[u8]) -> u32 {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunks = bytes.chunks_exact(8);
    let mut hash = (bytes.len() as u64).wrapping_mul(MULTIPLIER);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        hash = (hash.rotate_left(23) ^ word).wrapping_mul(MULTIPLIER);
    }
    let mut last = [0; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    hash = (hash.rotate_left(23) ^ u64::from_le_bytes(last)).wrapping_mul(MULTIPLIER);
    (hash ^ (hash >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_match_only_their_base_name() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(dir.path());
        assert_eq!(cache.get(1, "a"), None);
        cache.put(1, "a", b"Subject: one\r\n\r\n");
        cache.put(2, "b", b"Subject: two\r\n\r\n");
        assert_eq!(cache.get(1, "a").unwrap(), b"Subject: one\r\n\r\n");
        let again = HeaderCache::new(dir.path());
        assert_eq!(again.get(2, "b").unwrap(), b"Subject: two\r\n\r\n");
        assert_eq!(again.get(2, "other"), None, "a reused UID");
        again.put(2, "other", b"Subject: new\r\n\r\n");
        assert_eq!(again.get(2, "other").unwrap(), b"Subject: new\r\n\r\n");
        assert_eq!(cache.get(2, "other").unwrap(), b"Subject: new\r\n\r\n");
    }

    #[test]
    fn a_torn_tail_is_ignored_then_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(dir.path());
        cache.put(1, "a", b"one");
        let path = dir.path().join(CACHE);
        let whole = fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&encode(2, "b", b"two")[..9]);
        fs::write(&path, &torn).unwrap();
        let reader = HeaderCache::new(dir.path());
        assert_eq!(reader.get(1, "a").unwrap(), b"one");
        assert_eq!(reader.get(2, "b"), None);
        reader.put(3, "c", b"three");
        assert_eq!(HeaderCache::new(dir.path()).get(3, "c").unwrap(), b"three");
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, {
            whole.len() + encode(3, "c", b"three").len()
        });
    }

    #[test]
    fn garbage_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CACHE), b"not a cache at all").unwrap();
        let cache = HeaderCache::new(dir.path());
        assert_eq!(cache.get(1, "a"), None);
        cache.put(1, "a", b"one");
        assert_eq!(HeaderCache::new(dir.path()).get(1, "a").unwrap(), b"one");
        let mut flipped = fs::read(dir.path().join(CACHE)).unwrap();
        *flipped.last_mut().unwrap() ^= 1;
        fs::write(dir.path().join(CACHE), &flipped).unwrap();
        assert_eq!(HeaderCache::new(dir.path()).get(1, "a"), None, "checksum");
    }

    #[test]
    fn mostly_dead_files_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(dir.path());
        let other = HeaderCache::new(dir.path());
        for uid in 1..=1000 {
            cache.put(uid, &format!("m{uid}"), b"fields");
        }
        assert_eq!(other.get(10, "m10").unwrap(), b"fields");
        let names: Vec<String> = (0..=2000).map(|uid| format!("m{uid}")).collect();
        let current = |uid: u32| (uid > 900).then(|| names[uid as usize].as_str());
        let before = fs::metadata(dir.path().join(CACHE)).unwrap().len();
        cache.compact(&current);
        let after = fs::metadata(dir.path().join(CACHE)).unwrap().len();
        assert!(after * 5 < before, "{after} of {before}");
        assert_eq!(cache.get(950, "m950").unwrap(), b"fields");
        assert_eq!(cache.get(10, "m10"), None);
        // The other session appends to the new file, not the renamed-over one.
        other.put(2000, "m2000", b"late");
        assert_eq!(cache.get(2000, "m2000").unwrap(), b"late");
        cache.compact(&current);
        assert_eq!(
            fs::metadata(dir.path().join(CACHE)).unwrap().len(),
            after + encode(2000, "m2000", b"late").len() as u64,
            "nothing to gain: left alone"
        );
    }

    #[test]
    fn a_large_file_is_read_only_after_a_few_asks() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(dir.path());
        assert_eq!(cache.get(1, "b1"), None);
        let filler = [b'x'; 1000];
        for uid in 1..=1500 {
            cache.put(uid, &format!("b{uid}"), &filler);
        }
        let fresh = HeaderCache::new(dir.path());
        fresh.put(2000, "b2000", b"skipped: the file was not read yet");
        for _ in 0..LAZY_ASKS {
            assert_eq!(fresh.get(1, "b1"), None);
        }
        assert_eq!(fresh.get(1, "b1").unwrap(), filler);
        assert_eq!(fresh.get(2000, "b2000"), None);
    }

    #[test]
    fn concurrent_appenders_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let cache = HeaderCache::new(&path);
                    for i in 0..200 {
                        let uid = t * 1000 + i;
                        cache.put(uid, &format!("b{uid}"), format!("v{uid}").as_bytes());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let cache = HeaderCache::new(dir.path());
        for t in 0..4u32 {
            for i in 0..200 {
                let uid = t * 1000 + i;
                assert_eq!(
                    cache.get(uid, &format!("b{uid}")).unwrap(),
                    format!("v{uid}").as_bytes()
                );
            }
        }
    }
}
