//! Version 3 of the index: binary, so a SELECT of a 100 000-message folder reads it in
//! three `read`s and takes each number from its place instead of parsing 100 000 lines,
//! and its names land in one buffer the listing shares ([`FileName`]).
//!
//! After the first line, all numbers little-endian:
//!
//! ```text
//! posthorn-uidlist 3\n
//! UIDVALIDITY u32, UIDNEXT u32, first \Recent u32, HIGHESTMODSEQ u64,
//! keyword octets u32, expunged octets u32, entries u32, name octets u32
//! the keywords (UTF-8, separated by spaces), the expunged UIDs (as version 2's X line)
//! per entry, in UID order: UID u32, MODSEQ u64, name length u32
//! the names, one after another (UTF-8)
//! ```
//!
//! Every length must add up to the file's length exactly, and the entries must pass the
//! same checks as the text form's, or the index is damaged.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use super::{Entry, Index};
use crate::store::modseq::Expunged;
use crate::store::name::FileName;

/// The first line, naming the version.
pub(super) const MAGIC: &[u8] = b"posthorn-uidlist 3\n";
/// The octets of the numbers after [`MAGIC`].
const HEADER: usize = 3 * 4 + 8 + 4 * 4;
/// The octets of one entry's fixed part.
const ENTRY: usize = 4 + 8 + 4;

/// The whole file.
pub(super) fn encode(index: &Index) -> Vec<u8> {
    let keywords = index.keywords.join(" ");
    let expunged = index.expunged.render();
    let names: usize = index.entries.iter().map(|e| e.name.len()).sum();
    let mut out = Vec::with_capacity(
        MAGIC.len()
            + HEADER
            + keywords.len()
            + expunged.len()
            + index.entries.len() * ENTRY
            + names,
    );
    out.extend_from_slice(MAGIC);
    for number in [index.uid_validity, index.uid_next, index.first_recent] {
        out.extend_from_slice(&number.to_le_bytes());
    }
    out.extend_from_slice(&index.highest_modseq.to_le_bytes());
    for length in [keywords.len(), expunged.len(), index.entries.len(), names] {
        out.extend_from_slice(&length_u32(length).to_le_bytes());
    }
    out.extend_from_slice(keywords.as_bytes());
    out.extend_from_slice(expunged.as_bytes());
    for entry in &index.entries {
        out.extend_from_slice(&entry.uid.to_le_bytes());
        out.extend_from_slice(&entry.modseq.to_le_bytes());
        out.extend_from_slice(&length_u32(entry.name.len()).to_le_bytes());
    }
    for entry in &index.entries {
        out.extend_from_slice(entry.name.as_bytes());
    }
    out
}

/// A length as the file holds it. Names are file names (at most 255 octets) and a folder
/// holds fewer than 2^32 messages, so no length reaches the limit; were one to, the
/// file's lengths would not add up and it would be rebuilt, not misread.
fn length_u32(length: usize) -> u32 {
    u32::try_from(length).unwrap_or(u32::MAX)
}

/// Reads what follows [`MAGIC`] in `file`: the numbers in one read, the names in another
/// straight into the buffer the listing's names share. `Ok(Err(UIDVALIDITY if legible))`
/// when it is damaged; the lengths are checked against the file's before anything is
/// allocated for them.
pub(super) fn read(file: &mut File) -> io::Result<Result<Index, Option<u32>>> {
    let length = file.metadata()?.len();
    let mut header = [0; HEADER];
    if !read_all(file, &mut header)? {
        return Ok(Err(None));
    }
    let mut numbers = Input(&header);
    let Some(uid_validity) = numbers.u32().filter(|v| *v > 0) else {
        return Ok(Err(None));
    };
    let damaged = Ok(Err(Some(uid_validity)));
    let Some(header) = Header::read(uid_validity, numbers) else {
        return damaged;
    };
    let fixed =
        header.keywords as u64 + header.expunged as u64 + header.count as u64 * ENTRY as u64;
    if (MAGIC.len() + HEADER) as u64 + fixed + header.names as u64 != length {
        return damaged;
    }
    let mut rest = vec![0; usize::try_from(fixed).unwrap_or(usize::MAX)];
    let mut names = vec![0; header.names];
    if !read_all(file, &mut rest)? || !read_all(file, &mut names)? {
        return damaged;
    }
    let Ok(names) = String::from_utf8(names) else {
        return damaged;
    };
    Ok(decode(&header, &rest, &Arc::new(names)).ok_or(Some(uid_validity)))
}

/// Fills `buffer` from `file`; false if the file ends first.
fn read_all(file: &mut File, buffer: &mut [u8]) -> io::Result<bool> {
    match file.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The numbers after [`MAGIC`].
struct Header {
    uid_validity: u32,
    uid_next: u32,
    first_recent: u32,
    highest_modseq: u64,
    keywords: usize,
    expunged: usize,
    count: usize,
    names: usize,
}

impl Header {
    fn read(uid_validity: u32, mut numbers: Input<'_>) -> Option<Header> {
        Some(Header {
            uid_validity,
            uid_next: numbers.u32()?,
            first_recent: numbers.u32()?,
            highest_modseq: numbers.u64()?,
            keywords: numbers.u32()? as usize,
            expunged: numbers.u32()? as usize,
            count: numbers.u32()? as usize,
            names: numbers.u32()? as usize,
        })
    }
}

/// The index from its numbers, the keywords, expunged UIDs and entries that follow them
/// (`rest`), and the names.
fn decode(header: &Header, rest: &[u8], names: &Arc<String>) -> Option<Index> {
    let mut input = Input(rest);
    let keywords = input.text(header.keywords)?;
    let expunged = Expunged::parse(input.text(header.expunged)?)?;
    let mut index = Index {
        uid_validity: header.uid_validity,
        uid_next: header.uid_next,
        first_recent: header.first_recent,
        highest_modseq: header.highest_modseq,
        keywords: keywords.split_whitespace().map(str::to_string).collect(),
        expunged,
        entries: Vec::with_capacity(header.count),
    };
    let mut at = 0;
    for _ in 0..header.count {
        let (uid, modseq) = (input.u32()?, input.u64()?);
        let end = at + input.u32()? as usize;
        let entry = Entry {
            uid,
            modseq,
            name: FileName::within(names, at..end)?,
        };
        if !index.may_follow(index.entries.last(), &entry) {
            return None;
        }
        index.entries.push(entry);
        at = end;
    }
    (at == names.len()).then_some(index)
}

/// The part of the file not yet read.
struct Input<'b>(&'b [u8]);

impl<'b> Input<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self, n: usize) -> Option<&'b str> {
        std::str::from_utf8(self.take(n)?).ok()
    }
}
