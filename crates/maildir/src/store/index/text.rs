//! The text forms of versions 1 and 2, read so that indexes written before version 3 keep
//! their UIDs; nothing writes them any more.
//!
//! ```text
//! posthorn-uidlist 2
//! V 1763900000 N 42 R 40 M 57
//! K $Forwarded $Junk
//! X 50:12-14 55:20-20
//! 17 56 1763899000.M1P2Q3.host,S=1234:2,Sa
//! ```
//!
//! Version 1 has no `M`, no `X` line, and entries `uid base-name`: its messages start at
//! MODSEQ 1.

use super::{Entry, Index};
use crate::store::modseq::Expunged;

const MAGIC: &str = "posthorn-uidlist 2";
const MAGIC_V1: &str = "posthorn-uidlist 1";

/// Reads a version 1 or 2 index; `Err(UIDVALIDITY if legible)` when it is damaged.
pub(super) fn parse(text: &str) -> Result<Index, Option<u32>> {
    let mut lines = text.lines();
    let v1 = match lines.next() {
        Some(MAGIC) => false,
        Some(MAGIC_V1) => true,
        _ => return Err(None),
    };
    let header: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let number = |key: &str| -> Option<u64> {
        let at = header.iter().position(|w| *w == key)?;
        header.get(at + 1)?.parse().ok()
    };
    let number_u32 = |key: &str| number(key).and_then(|n| u32::try_from(n).ok());
    let uid_validity = number_u32("V").filter(|v| *v > 0).ok_or(None)?;
    let damaged = Err(Some(uid_validity));
    let highest_modseq = if v1 { Some(1) } else { number("M") };
    let (Some(uid_next), Some(first_recent), Some(highest_modseq)) =
        (number_u32("N"), number_u32("R"), highest_modseq)
    else {
        return damaged;
    };
    let Some(keywords) = lines.next().and_then(|l| l.strip_prefix('K')) else {
        return damaged;
    };
    let expunged = if v1 {
        Some(Expunged::default())
    } else {
        lines
            .next()
            .and_then(|l| l.strip_prefix('X'))
            .and_then(Expunged::parse)
    };
    let Some(expunged) = expunged else {
        return damaged;
    };
    let mut index = Index {
        uid_validity,
        uid_next,
        first_recent,
        highest_modseq,
        keywords: keywords.split_whitespace().map(str::to_string).collect(),
        expunged,
        entries: Vec::new(),
    };
    for line in lines {
        match parse_entry(line, v1) {
            Some(entry) if index.may_follow(index.entries.last(), &entry) => {
                index.entries.push(entry);
            }
            _ => return damaged,
        }
    }
    Ok(index)
}

/// One entry line: `uid modseq name`, or `uid base` in version 1 (at MODSEQ 1).
fn parse_entry(line: &str, v1: bool) -> Option<Entry> {
    let (uid, rest) = line.split_once(' ')?;
    let (modseq, name) = if v1 {
        (1, rest)
    } else {
        let (modseq, name) = rest.split_once(' ')?;
        (modseq.parse().ok()?, name)
    };
    Some(Entry {
        uid: uid.parse().ok()?,
        modseq,
        name: name.into(),
    })
}
