//! The model's binary encoding, for the server to store (atomically) and load.
//!
//! Layout, all integers little-endian:
//! `"PHCLSFY"` (7 bytes), version (1 byte, = 1), spam messages (u32), ham messages (u32),
//! token count (u32), then per token ascending by hash: hash (u64), spam (u32), ham (u32),
//! day (u32); ledger count (u32), then per entry oldest first: digest (u64), sequence
//! (u64), class (u8: 0 spam, 1 ham); finally a checksum (u64) of everything before it.
//! Sorted output makes equal models encode to equal bytes.

use crate::hash;
use crate::model::{Entry, TokenCounts};
use crate::{Class, Model};

const MAGIC: &[u8; 7] = b"PHCLSFY";
const VERSION: u8 = 1;
const TOKEN_SIZE: usize = 20;
const ENTRY_SIZE: usize = 17;
const CHECKSUM_KIND: u64 = 0x0063_6865_636b; // "check"

/// Why bytes are not a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its own counts say, or than the fixed fields.
    #[error("model is truncated")]
    Truncated,
    /// Not a Posthorn classifier model.
    #[error("not a classifier model (bad magic)")]
    Magic,
    /// Written by a version this build does not read.
    #[error("unsupported model version {0}")]
    Version(u8),
    /// The checksum does not match: the bytes were damaged.
    #[error("model checksum mismatch")]
    Checksum,
    /// Well-formed bytes with impossible content (unsorted, duplicate, bad class, extra bytes).
    #[error("model is corrupt: {0}")]
    Corrupt(&'static str),
}

impl Model {
    /// Encodes the model (versioned, with magic and checksum).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            32 + self.tokens.len() * TOKEN_SIZE + self.ledger.len() * ENTRY_SIZE,
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.spam.to_le_bytes());
        out.extend_from_slice(&self.ham.to_le_bytes());
        let mut tokens: Vec<(&u64, &TokenCounts)> = self.tokens.iter().collect();
        tokens.sort_unstable_by_key(|(token, _)| **token);
        out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        for (token, counts) in tokens {
            out.extend_from_slice(&token.to_le_bytes());
            out.extend_from_slice(&counts.spam.to_le_bytes());
            out.extend_from_slice(&counts.ham.to_le_bytes());
            out.extend_from_slice(&counts.day.to_le_bytes());
        }
        let mut entries: Vec<(&u64, &Entry)> = self.ledger.iter().collect();
        entries.sort_unstable_by_key(|(_, entry)| entry.sequence);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (digest, entry) in entries {
            out.extend_from_slice(&digest.to_le_bytes());
            out.extend_from_slice(&entry.sequence.to_le_bytes());
            out.push(match entry.class {
                Class::Spam => 0,
                Class::Ham => 1,
            });
        }
        let checksum = hash::of_bytes(CHECKSUM_KIND, &out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Decodes what [`Model::encode`] wrote; any damage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Model, DecodeError> {
        let (body, checksum) = bytes
            .split_last_chunk::<8>()
            .ok_or(DecodeError::Truncated)?;
        let mut reader = Reader(body);
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::Magic);
        }
        let version = reader.take(1)?[0];
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        if hash::of_bytes(CHECKSUM_KIND, body) != u64::from_le_bytes(*checksum) {
            return Err(DecodeError::Checksum);
        }
        let mut model = Model {
            spam: reader.u32()?,
            ham: reader.u32()?,
            ..Model::default()
        };
        let tokens = reader.u32()? as usize;
        if reader.0.len() / TOKEN_SIZE < tokens {
            return Err(DecodeError::Truncated);
        }
        model.tokens.reserve(tokens);
        let mut previous = None;
        for _ in 0..tokens {
            let token = reader.u64()?;
            let counts = TokenCounts {
                spam: reader.u32()?,
                ham: reader.u32()?,
                day: reader.u32()?,
            };
            if previous.is_some_and(|previous| previous >= token) {
                return Err(DecodeError::Corrupt("tokens not in ascending order"));
            }
            if counts.spam == 0 && counts.ham == 0 {
                return Err(DecodeError::Corrupt("token without counts"));
            }
            previous = Some(token);
            model.tokens.insert(token, counts);
        }
        let entries = reader.u32()? as usize;
        if reader.0.len() / ENTRY_SIZE < entries {
            return Err(DecodeError::Truncated);
        }
        let mut previous = None;
        for _ in 0..entries {
            let digest = reader.u64()?;
            let sequence = reader.u64()?;
            let class = match reader.take(1)?[0] {
                0 => Class::Spam,
                1 => Class::Ham,
                _ => return Err(DecodeError::Corrupt("unknown class")),
            };
            if previous.is_some_and(|previous| previous >= sequence) {
                return Err(DecodeError::Corrupt("ledger not in training order"));
            }
            previous = Some(sequence);
            if model
                .ledger
                .insert(digest, Entry { class, sequence })
                .is_some()
            {
                return Err(DecodeError::Corrupt("message twice in the ledger"));
            }
            model.order.insert(sequence, digest);
        }
        if !reader.0.is_empty() {
            return Err(DecodeError::Corrupt("bytes after the ledger"));
        }
        Ok(model)
    }
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < count {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }
}
