//! A folder's header cache (`posthorn-cache`): per message, a few octets the IMAP server
//! would otherwise read from the message file again and again (the header fields of
//! ENVELOPE, SEARCH and HEADER.FIELDS), so that listing or searching a large folder does
//! not open every file. The cache knows nothing of what it holds: it maps a UID and a base
//! name to bytes.
//!
//! The file is a magic line and then append-only records, each `length, checksum, UID,
//! base name, bytes, length`. A record is used only when its checksum holds and its base
//! name is the message's, so a torn tail (a crash mid-append) is ignored and cut off by the
//! next append of a handle that read the file, and a UID reused after a UIDVALIDITY change
//! never finds another message's record. The trailing length lets a writer that has not
//! read the file (local delivery, APPEND) check
//! that the last record is whole before appending after it, without reading the rest.
//! Appends happen under an exclusive lock on the file (sessions of several processes
//! share it); a file mostly of records for expunged messages is rewritten to a temporary
//! file and renamed over the old one. It is only a cache: whatever goes wrong with it,
//! callers read the message file instead.
//!
//! Only an offset table (UID → where its record is) is held in memory; records are read
//! one at a time when asked for, or all in file order through a bounded buffer
//! ([`HeaderCache::for_each`], what a SEARCH over the folder uses). A table read in full
//! is shared (see [`super::shelf`]): another handle on the same file takes it over and
//! reads only the records appended since, so the next session's FETCH of a large
//! folder's newest messages finds their records at once.
//!
//! The magic names the format of the records *and* of what callers keep in them: when
//! either changes it changes, and a file with another magic is ignored, then replaced by
//! the first append (rebuilt, never misread). `PHCACHE1` had no trailing length and kept
//! raw header fields only.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use tracing::debug;

use super::shelf::Shelf;

/// The UID of a record written before its message had one (local delivery): such a
/// record is found by its base name, and given its UID when first found.
pub const NO_UID: u32 = 0;
/// The cache file, beside `posthorn-uidlist`.
pub const CACHE: &str = "posthorn-cache";
/// Where a rewrite is prepared before it is renamed over [`CACHE`].
const REWRITE: &str = "posthorn-cache.new";
/// The first octets of the file: its format.
const MAGIC: &[u8; 8] = b"PHCACHE2";
/// Length and checksum before each record's body.
const PREFIX: usize = 8;
/// The body's length again after it.
const SUFFIX: usize = 4;
/// A record's octets besides its body.
const FRAME: usize = PREFIX + SUFFIX;
/// The smallest body: UID and base name length.
const MIN_BODY: usize = 6;
/// The largest record body kept: more is no cache's business.
pub const MAX_RECORD: usize = 64 * 1024;
/// A cache file larger than this (some 2000 messages) is read only once its handle has
/// been asked for [`LAZY_ASKS`] messages: a session that fetches the 50 newest of a
/// 100 000-message folder reads their headers rather than a table of 100 000.
const EAGER_LOAD: u64 = 1 << 20;
/// See [`EAGER_LOAD`].
const LAZY_ASKS: usize = 256;
/// Octets read at a time when scanning the file: the one buffer a scan holds, large
/// enough for a whole record of [`MAX_RECORD`].
const SCAN_BUFFER: usize = 256 * 1024;
/// A rewrite is worth it only past this many dead records.
const MIN_GARBAGE: usize = 256;

/// The offset tables read in full, by cache file path.
static TABLES: LazyLock<Shelf<Table, Known>> = LazyLock::new(Shelf::default);

/// Which file, and how much of it, a shared table covers.
#[derive(Debug, Clone, Copy)]
struct Table {
    inode: u64,
    /// The end of its last record: a handle taking the table over reads on from there.
    end: u64,
}

/// Lets go of large tables unused for a while.
pub(crate) fn release_idle() {
    TABLES.release_idle();
}

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
    /// Where the records read by this handle are, besides those of `shared`.
    known: Known,
    /// The table of the file up to some point, read in full by this handle or another;
    /// a record in `known` supersedes it.
    shared: Option<Arc<Known>>,
    /// Whether the file has been read at all.
    loaded: bool,
    /// Messages asked for before it was.
    asks: usize,
}

/// Where the records read are.
#[derive(Debug, Default)]
struct Known {
    /// The newest record of each UID.
    table: HashMap<u32, Entry>,
    /// The newest record of each base name among those of [`NO_UID`].
    pending: HashMap<String, Entry>,
    /// Records read in all, superseded ones included.
    records: usize,
}

impl Known {
    /// Takes the record at `entry` as the newest of its UID (or of its base name).
    fn index(&mut self, uid: u32, base: &str, entry: Entry) {
        if uid == NO_UID {
            self.pending.insert(base.to_string(), entry);
        } else {
            self.table.insert(uid, entry);
        }
        self.records += 1;
    }
}

impl State {
    /// Where the newest record of `uid` is.
    fn entry(&self, uid: u32) -> Option<Entry> {
        self.known
            .table
            .get(&uid)
            .or_else(|| self.shared.as_ref()?.table.get(&uid))
            .copied()
    }

    /// Where the newest record of the message called `base` without a UID is.
    fn pending(&self, base: &str) -> Option<Entry> {
        self.known
            .pending
            .get(base)
            .or_else(|| self.shared.as_ref()?.pending.get(base))
            .copied()
    }

    /// Records read in all, superseded ones included.
    fn records(&self) -> usize {
        self.known.records + self.shared.as_ref().map_or(0, |shared| shared.records)
    }

    /// Every UID with the place of its newest record.
    fn newest(&self) -> HashMap<u32, Entry> {
        let mut newest = self
            .shared
            .as_ref()
            .map(|shared| shared.table.clone())
            .unwrap_or_default();
        newest.extend(&self.known.table);
        newest
    }
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
        scan(&mut state, false, &mut |_, _, _| {});
        if let Some(found) = lookup(&state, uid, base) {
            return Some(found);
        }
        let (_, bytes) = read_record(state.file.as_ref()?, state.pending(base)?)?;
        // Under its UID from now on, as other records: a compaction keeps it.
        if let Err(e) = self.append_loaded(&mut state, uid, base, &bytes) {
            debug!(error = %e, dir = %self.dir.display(), "cannot write the header cache");
        }
        Some(bytes)
    }

    /// Whether this handle has read the file: until then [`HeaderCache::put`] keeps
    /// nothing (see [`EAGER_LOAD`]), as [`HeaderCache::get`] would not find what it kept.
    pub fn is_read(&self) -> bool {
        self.state().loaded
    }

    /// Hands every intact record of the file, in file order, to `visit` (UID, base name,
    /// bytes), reading it sequentially through one bounded buffer: a later record of a UID
    /// supersedes an earlier one, so a caller keeping one answer per UID keeps the last.
    /// Records of [`NO_UID`] are to be matched by base name. The offset table is rebuilt
    /// on the way, so the file is read once. `visit` must not use this cache (its lock is
    /// held).
    pub fn for_each(&self, visit: &mut dyn FnMut(u32, &str, &[u8])) {
        let mut state = self.state();
        self.reload(&mut state, visit);
    }

    /// Caches `bytes` for the message `uid` with base name `base`. Failing is harmless
    /// (the next reader reads the message file), so errors are only logged.
    pub fn put(&self, uid: u32, base: &str, bytes: &[u8]) {
        if !fits(base, bytes) {
            return;
        }
        if let Err(e) = self.append(uid, base, bytes) {
            debug!(error = %e, dir = %self.dir.display(), "cannot write the header cache");
        }
    }

    /// Caches `bytes` for the message `uid` with base name `base` in the folder at `dir`
    /// without reading the file: for a writer that has one message in hand (APPEND, local
    /// delivery), to which loading the offset table would cost more than the record.
    pub fn add(dir: &Path, uid: u32, base: &str, bytes: &[u8]) {
        if !fits(base, bytes) {
            return;
        }
        if let Err(e) = HeaderCache::new(dir).append_unread(uid, base, bytes) {
            debug!(error = %e, dir = %dir.display(), "cannot write the header cache");
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
        let found = fs::metadata(self.path()).ok();
        if found.as_ref().is_some_and(|m| self.adopt(state, m.ino())) {
            return true;
        }
        let size = found.map_or(0, |m| m.len());
        if size > EAGER_LOAD && state.asks <= LAZY_ASKS {
            return false;
        }
        self.reload(state, &mut |_, _, _| {});
        true
    }

    /// Takes over the table another handle read of the file whose inode is `inode`, and
    /// reads the records appended since; false when there is none.
    fn adopt(&self, state: &mut State, inode: u64) -> bool {
        let Some((table, known)) = TABLES.find(&self.path(), |table| table.inode == inode) else {
            return false;
        };
        let Ok(file) = File::open(self.path()) else {
            return false;
        };
        if file.metadata().map_or(true, |m| m.ino() != inode) {
            return false;
        }
        *state = State {
            file: Some(file),
            inode,
            end: table.end,
            shared: Some(known),
            loaded: true,
            ..State::default()
        };
        scan(state, false, &mut |_, _, _| {});
        true
    }

    /// Opens the file afresh and reads its records, each handed to `visit`.
    fn reload(&self, state: &mut State, visit: &mut dyn FnMut(u32, &str, &[u8])) {
        *state = State {
            loaded: true,
            ..State::default()
        };
        let Ok(file) = File::open(self.path()) else {
            return;
        };
        state.inode = file.metadata().map_or(0, |m| m.ino());
        state.file = Some(file);
        scan(state, false, visit);
        let known = Arc::new(std::mem::take(&mut state.known));
        let table = Table {
            inode: state.inode,
            end: state.end,
        };
        TABLES.keep(&self.path(), table, &known, known.records);
        state.shared = Some(known);
    }

    /// The file opened for appending under its lock: the one now at the path, created
    /// with its magic when missing or not a cache file.
    fn locked(&self, state: &mut State) -> io::Result<Locked> {
        loop {
            // Rewritten and renamed away between our open and our lock: try the new one.
            let Some((file, inode)) = self.open_locked()? else {
                continue;
            };
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

    /// The file at the path, made when missing, opened under its exclusive lock, and its
    /// inode; `None` when a rewrite renamed another file over the path between the open
    /// and the lock.
    fn open_locked(&self) -> io::Result<Option<(Locked, u64)>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path())?;
        file.lock()?;
        let file = Locked(file);
        let inode = file.metadata()?.ino();
        let current = fs::metadata(self.path()).map(|m| m.ino())? == inode;
        Ok(current.then_some((file, inode)))
    }

    fn append(&self, uid: u32, base: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        // Appending needs the file read.
        if !self.ready(&mut state) {
            return Ok(());
        }
        self.append_loaded(&mut state, uid, base, bytes)
    }

    /// Appends a record after catching up with the file, which `state` has read.
    fn append_loaded(
        &self,
        state: &mut State,
        uid: u32,
        base: &str,
        bytes: &[u8],
    ) -> io::Result<()> {
        let file = self.locked(state)?;
        // Catch up with other appenders, cutting off a torn tail so ours is reachable.
        scan(state, true, &mut |_, _, _| {});
        let record = encode(uid, base, bytes);
        let offset = state.end;
        file.write_all_at(&record, offset)?;
        let len = record.len() as u32;
        state.end += u64::from(len);
        state.known.index(uid, base, Entry { offset, len });
        Ok(())
    }

    fn rewrite<'a>(&self, base_of: &dyn Fn(u32) -> Option<&'a str>) -> io::Result<()> {
        let mut state = self.state();
        // Judged by what this handle has read: one that was never used reads nothing.
        if state.file.is_none() || !worth_rewriting(&state, base_of) {
            return Ok(());
        }
        let file = self.locked(&mut state)?;
        scan(&mut state, true, &mut |_, _, _| {});
        if !worth_rewriting(&state, base_of) {
            return Ok(());
        }
        let mut kept = MAGIC.to_vec();
        let mut entries: Vec<(u32, Entry)> = state.newest().into_iter().collect();
        entries.sort_by_key(|(_, entry)| entry.offset);
        for (uid, entry) in entries {
            if let Some((base, bytes)) = read_record(&file, entry)
                && base_of(uid) == Some(base.as_str())
            {
                kept.extend_from_slice(&encode(uid, &base, &bytes));
            }
        }
        let temporary = self.dir.join(REWRITE);
        fs::write(&temporary, &kept)?;
        fs::rename(&temporary, self.path())?;
        drop(file);
        self.reload(&mut state, &mut |_, _, _| {});
        Ok(())
    }

    /// Appends a record without reading the file (or touching this handle's state): at
    /// its end when that is the end of a whole record (checked by the trailing length and
    /// the checksum), or as the first record of a new or foreign file. After a torn tail it
    /// writes nothing: a handle that read the file cuts the tail off on its next append.
    fn append_unread(&self, uid: u32, base: &str, bytes: &[u8]) -> io::Result<()> {
        // Rewritten and renamed away between our open and our lock: nothing is lost by
        // leaving this one record out.
        let Some((file, _)) = self.open_locked()? else {
            return Ok(());
        };
        let size = file.metadata()?.len();
        let end = if has_magic(&file) {
            size
        } else {
            file.set_len(0)?;
            file.write_all_at(MAGIC, 0)?;
            MAGIC.len() as u64
        };
        if end > MAGIC.len() as u64 && !ends_whole(&file, end) {
            return Ok(());
        }
        file.write_all_at(&encode(uid, base, bytes), end)
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
/// Records still without a UID count as dead, and a rewrite drops them: their messages
/// are read again. Judged from the table alone, so that asking costs no reading.
fn worth_rewriting<'a>(state: &State, base_of: &dyn Fn(u32) -> Option<&'a str>) -> bool {
    let own = &state.known.table;
    let taken_over = state.shared.iter().flat_map(|shared| shared.table.keys());
    let alive = own
        .keys()
        .chain(taken_over.filter(|uid| !own.contains_key(uid)))
        .filter(|uid| base_of(**uid).is_some())
        .count();
    let dead = state.records() - alive;
    dead > MIN_GARBAGE && dead > alive
}

/// The record of `uid` if it is that of the message called `base`.
fn lookup(state: &State, uid: u32, base: &str) -> Option<Vec<u8>> {
    let entry = state.entry(uid)?;
    let (found, bytes) = read_record(state.file.as_ref()?, entry)?;
    (found == base).then_some(bytes)
}

/// True if a record of `base` and `bytes` is within [`MAX_RECORD`].
fn fits(base: &str, bytes: &[u8]) -> bool {
    bytes.len() + base.len() + MIN_BODY <= MAX_RECORD && base.len() <= usize::from(u16::MAX)
}

/// True if the record that ends at `end` (past the magic) is whole and intact.
fn ends_whole(file: &File, end: u64) -> bool {
    let mut trailer = [0; SUFFIX];
    let Some(at) = end.checked_sub(SUFFIX as u64) else {
        return false;
    };
    if file.read_exact_at(&mut trailer, at).is_err() {
        return false;
    }
    let len = FRAME as u64 + u64::from(u32::from_le_bytes(trailer));
    let Some(offset) = end.checked_sub(len).filter(|o| *o >= MAGIC.len() as u64) else {
        return false;
    };
    read_record(
        file,
        Entry {
            offset,
            len: len as u32,
        },
    )
    .is_some()
}

/// True if the file starts as a cache file does.
fn has_magic(file: &File) -> bool {
    let mut magic = [0; MAGIC.len()];
    file.read_exact_at(&mut magic, 0).is_ok() && &magic == MAGIC
}

/// Reads the records after `state.end` into the table, handing each to `visit`, up to the
/// end of the file or the first record that is not whole and intact; with `truncate`
/// (under the lock) the file is cut there, as what follows is a torn append. The file is
/// read in chunks of [`SCAN_BUFFER`] octets and records are checked where they lie.
fn scan(state: &mut State, truncate: bool, visit: &mut dyn FnMut(u32, &str, &[u8])) {
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
    let mut buffer = Vec::new();
    // `buffer` holds the file from `read_from`; `used` of it are records already taken.
    let mut read_from = at;
    let mut used = 0;
    'chunks: while at < size {
        buffer.drain(..used);
        read_from += used as u64;
        used = 0;
        let have = buffer.len();
        let want = (SCAN_BUFFER - have).min((size - read_from) as usize - have);
        if want == 0 {
            break;
        }
        buffer.resize(have + want, 0);
        if file
            .read_exact_at(&mut buffer[have..], read_from + have as u64)
            .is_err()
        {
            break;
        }
        loop {
            let rest = &buffer[used..];
            let Some(body) = rest
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            else {
                continue 'chunks;
            };
            let body = body as usize;
            if !(MIN_BODY..=MAX_RECORD).contains(&body) {
                break 'chunks;
            }
            let Some(raw) = rest.get(..FRAME + body) else {
                continue 'chunks;
            };
            let Some(record) = decode(raw) else {
                break 'chunks;
            };
            visit(record.uid, record.base, record.bytes);
            let entry = Entry {
                offset: at,
                len: raw.len() as u32,
            };
            state.known.index(record.uid, record.base, entry);
            at += u64::from(entry.len);
            used += raw.len();
        }
    }
    state.end = at;
    if truncate && at < size && file.set_len(at).is_err() {
        debug!("cannot cut a torn header cache record");
    }
}

/// One record as read back.
struct Record<'a> {
    uid: u32,
    base: &'a str,
    bytes: &'a [u8],
}

/// The record at `entry`, with its bytes, None unless whole and intact.
fn read_record(file: &File, entry: Entry) -> Option<(String, Vec<u8>)> {
    let len = entry.len as usize;
    if !(FRAME + MIN_BODY..=FRAME + MAX_RECORD).contains(&len) {
        return None;
    }
    let mut raw = vec![0; len];
    file.read_exact_at(&mut raw, entry.offset).ok()?;
    let record = decode(&raw)?;
    Some((record.base.to_string(), record.bytes.to_vec()))
}

/// A record: body length and checksum, then UID, base name length, base name and bytes,
/// then the body length again.
fn encode(uid: u32, base: &str, bytes: &[u8]) -> Vec<u8> {
    let len = (MIN_BODY + base.len() + bytes.len()) as u32;
    let mut record = Vec::with_capacity(FRAME + len as usize);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&uid.to_le_bytes());
    record.extend_from_slice(&(base.len() as u16).to_le_bytes());
    record.extend_from_slice(base.as_bytes());
    record.extend_from_slice(bytes);
    let sum = checksum(&record[PREFIX..]);
    record[4..PREFIX].copy_from_slice(&sum.to_le_bytes());
    record.extend_from_slice(&len.to_le_bytes());
    record
}

/// The record in `raw` (frame included), None if its lengths or checksum are wrong.
fn decode(raw: &[u8]) -> Option<Record<'_>> {
    let len = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(raw.get(4..PREFIX)?.try_into().ok()?);
    let body = raw.get(PREFIX..raw.len().checked_sub(SUFFIX)?)?;
    let trailer = u32::from_le_bytes(raw.get(PREFIX + body.len()..)?.try_into().ok()?) as usize;
    if len != body.len() || trailer != len || checksum(body) != sum {
        return None;
    }
    let base_len = u16::from_le_bytes(body.get(4..MIN_BODY)?.try_into().ok()?) as usize;
    Some(Record {
        uid: u32::from_le_bytes(body.get(..4)?.try_into().ok()?),
        base: std::str::from_utf8(body.get(MIN_BODY..MIN_BODY + base_len)?).ok()?,
        bytes: body.get(MIN_BODY + base_len..)?,
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
    fn a_table_read_in_full_is_taken_over_by_the_next_handle() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(dir.path());
        let filler = [b'x'; 1000];
        for uid in 1..=1500 {
            cache.put(uid, &format!("b{uid}"), &filler);
        }
        // A SEARCH reads the whole file, and its table is offered to the next handles.
        cache.for_each(&mut |_, _, _| {});
        cache.put(1501, "b1501", b"appended since");
        // A large file, which a new handle would read only after many asks: this one
        // takes the table over at once and reads on from where it ends.
        let next = HeaderCache::new(dir.path());
        assert_eq!(next.get(1, "b1").unwrap(), filler);
        assert_eq!(next.get(1501, "b1501").unwrap(), b"appended since");
        // Not once the file is replaced (a rewrite by another process).
        drop(next);
        let replaced = dir.path().join("replacement");
        fs::copy(dir.path().join(CACHE), &replaced).unwrap();
        fs::rename(&replaced, dir.path().join(CACHE)).unwrap();
        assert_eq!(HeaderCache::new(dir.path()).get(1, "b1"), None);
    }

    #[test]
    fn a_record_without_uid_is_found_by_base_name_and_given_its_uid() {
        let dir = tempfile::tempdir().unwrap();
        HeaderCache::add(dir.path(), NO_UID, "delivered", b"fields");
        let mut visited = Vec::new();
        HeaderCache::new(dir.path())
            .for_each(&mut |uid, base, _| visited.push((uid, base.to_string())));
        assert_eq!(visited, [(NO_UID, "delivered".to_string())]);
        let session = HeaderCache::new(dir.path());
        assert_eq!(session.get(9, "other"), None);
        assert_eq!(session.get(9, "delivered").unwrap(), b"fields");
        let path = dir.path().join(CACHE);
        let added = MAGIC.len() + encode(NO_UID, "delivered", b"fields").len();
        assert_eq!(
            fs::read(&path).unwrap()[added..],
            encode(9, "delivered", b"fields")
        );
        assert_eq!(session.get(9, "delivered").unwrap(), b"fields");
        assert_eq!(
            fs::metadata(&path).unwrap().len() as usize,
            added + encode(9, "delivered", b"fields").len(),
            "once"
        );
    }

    #[test]
    fn a_file_of_the_old_format_is_never_read_and_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE);
        // PHCACHE1: length, checksum, UID, base name, bytes; no trailing length.
        let body = [&7u32.to_le_bytes()[..], &1u16.to_le_bytes(), b"a", b"old"].concat();
        let old = [
            &b"PHCACHE1"[..],
            &(body.len() as u32).to_le_bytes(),
            &checksum(&body).to_le_bytes(),
            &body,
        ]
        .concat();
        fs::write(&path, &old).unwrap();
        let reader = HeaderCache::new(dir.path());
        assert_eq!(reader.get(7, "a"), None);
        let mut seen = 0;
        reader.for_each(&mut |_, _, _| seen += 1);
        assert_eq!(seen, 0);
        HeaderCache::new(dir.path()).put(7, "a", b"new");
        assert!(fs::read(&path).unwrap().starts_with(MAGIC));
        assert_eq!(HeaderCache::new(dir.path()).get(7, "a").unwrap(), b"new");
    }

    #[test]
    fn after_a_torn_record_an_unread_writer_adds_nothing_and_a_reader_cuts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE);
        HeaderCache::new(dir.path()).put(1, "a", b"one");
        let whole = fs::read(&path).unwrap();
        let record = encode(2, "b", b"two");
        for cut in [1, PREFIX, record.len() - 1] {
            fs::write(&path, [&whole[..], &record[..cut]].concat()).unwrap();
            // As a handle that has not read a large file: appends only after a whole record.
            HeaderCache::new(dir.path())
                .append_unread(3, "c", b"three")
                .unwrap();
            assert_eq!(fs::read(&path).unwrap().len(), whole.len() + cut, "{cut}");
            let mut visited = Vec::new();
            HeaderCache::new(dir.path()).for_each(&mut |uid, _, _| visited.push(uid));
            assert_eq!(visited, [1], "{cut}");
        }
        let reader = HeaderCache::new(dir.path());
        assert_eq!(reader.get(1, "a").unwrap(), b"one");
        reader.put(3, "c", b"three");
        HeaderCache::new(dir.path())
            .append_unread(4, "d", b"four")
            .unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            [
                &whole[..],
                &encode(3, "c", b"three"),
                &encode(4, "d", b"four")
            ]
            .concat()
        );
    }

    #[test]
    fn for_each_visits_every_record_in_file_order_through_a_bounded_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(dir.path());
        let big = vec![b'z'; MAX_RECORD - 100];
        let mut expected = Vec::new();
        for uid in 1..=40u32 {
            let bytes = if uid % 3 == 0 {
                big.clone()
            } else {
                uid.to_string().into_bytes()
            };
            cache.put(uid, &format!("m{uid}"), &bytes);
            expected.push((uid, format!("m{uid}"), bytes));
        }
        cache.put(3, "m3", b"newer");
        expected.push((3, "m3".to_string(), b"newer".to_vec()));
        assert!(fs::metadata(dir.path().join(CACHE)).unwrap().len() > 2 * SCAN_BUFFER as u64);
        let mut visited = Vec::new();
        let fresh = HeaderCache::new(dir.path());
        fresh.for_each(&mut |uid, base, bytes| {
            visited.push((uid, base.to_string(), bytes.to_vec()))
        });
        assert_eq!(visited, expected);
        assert_eq!(
            fresh.get(3, "m3").unwrap(),
            b"newer",
            "the table is built too"
        );
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
