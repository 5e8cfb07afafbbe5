//! The spool's on-disk format, versioned, and owned here rather than derived from the
//! in-memory types.
//!
//! The envelope and the state files are written and read through record types of their
//! own (`v1`), never through `Envelope` or the protocol types it holds: those change with
//! the code, and a field renamed in `posthorn-proto` would otherwise rename a key in every
//! new queue file and leave every old one unreadable. The conversions to and from the
//! records name every field and every variant, so a change of `Envelope` or of a protocol
//! type stops the build there instead of changing the format.
//!
//! Where the version lives:
//! - A message file carries it in its footer: the magic `PHQ1` … `1QHP` is the version 1
//!   of the layout `content, envelope, footer`. The footer is read before anything else,
//!   so the version decides how all the rest is read (a later version may change the
//!   envelope's encoding or the layout, not only its keys); every file written before the
//!   format was versioned already says 1 there, so no file needs a default; and releases
//!   before this one, which check the whole magic, set a file of a later version aside as
//!   damaged rather than misread it. The one thing every version keeps: a message file
//!   ends in `<version>QHP`.
//! - A state file has no footer, and version 1 has no version in it: adding either would
//!   change the bytes this release writes, which the previous release must still read if
//!   the operator goes back to it. A later version carries `"version": N` at the top of
//!   its JSON; version 1 refuses a key it does not know, and this reader names the version.
//!   (Releases before this one ignore unknown keys: a later version must also rename or
//!   retype `states` so that they fail on it rather than misread it.)
//!
//! A file of a version this release does not read is refused as `InvalidData`, which the
//! queue manager answers by setting the message aside in `corrupt/` for the operator, not
//! by crashing or deleting it: a release that reads the version can take it back.

mod v1;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::envelope::{Envelope, StateRecord};
use crate::invalid;

/// The format this release writes, and the only one it reads.
const VERSION: u8 = b'1';
const MAGIC_HEAD: [u8; 4] = [b'P', b'H', b'Q', VERSION];
const MAGIC_TAIL: [u8; 4] = [VERSION, b'Q', b'H', b'P'];
/// Octets in a version 1 footer: magic, content length, envelope length, magic.
pub(crate) const FOOTER_LEN: u64 = 24;

/// The envelope as it goes between the content and the footer.
pub(crate) fn encode_envelope(envelope: &Envelope) -> io::Result<Vec<u8>> {
    serde_json::to_vec(&v1::Envelope::from(envelope)).map_err(invalid)
}

/// The envelope read back from between the content and the footer.
pub(crate) fn decode_envelope(json: &[u8]) -> io::Result<Envelope> {
    let record: v1::Envelope = serde_json::from_slice(json).map_err(invalid)?;
    Envelope::try_from(record).map_err(invalid)
}

/// The footer that ends a message file.
pub(crate) fn footer(content_len: u64, envelope_len: u64) -> [u8; FOOTER_LEN as usize] {
    let mut footer = [0u8; FOOTER_LEN as usize];
    footer[..4].copy_from_slice(&MAGIC_HEAD);
    footer[4..12].copy_from_slice(&content_len.to_le_bytes());
    footer[12..20].copy_from_slice(&envelope_len.to_le_bytes());
    footer[20..].copy_from_slice(&MAGIC_TAIL);
    footer
}

/// Returns (content length, envelope length) of a message file after checking its footer
/// and its version.
pub(crate) fn read_footer(file: &File) -> io::Result<(u64, u64)> {
    let len = file.metadata()?.len();
    if len < FOOTER_LEN {
        return Err(invalid("spool file too short"));
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    file.read_exact_at(&mut footer, len - FOOTER_LEN)?;
    if let [version, b'Q', b'H', b'P'] = footer[20..]
        && version != VERSION
    {
        return Err(invalid(format!(
            "spool file is in format version {}; this release reads version {} only",
            char::from(version).escape_default(),
            char::from(VERSION),
        )));
    }
    let field = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&footer[range]);
        u64::from_le_bytes(bytes)
    };
    let content_len = field(4..12);
    let envelope_len = field(12..20);
    let consistent = footer[..4] == MAGIC_HEAD
        && footer[20..] == MAGIC_TAIL
        && content_len
            .checked_add(envelope_len)
            .and_then(|n| n.checked_add(FOOTER_LEN))
            == Some(len);
    if !consistent {
        return Err(invalid("spool file footer is damaged"));
    }
    Ok((content_len, envelope_len))
}

/// A state file holding the state of `envelope`'s recipients.
pub(crate) fn encode_state(envelope: &Envelope) -> io::Result<Vec<u8>> {
    serde_json::to_vec(&v1::State::of(envelope)).map_err(invalid)
}

/// A state file read back; one of a later version is refused by name.
pub(crate) fn decode_state(json: &[u8]) -> io::Result<StateRecord> {
    /// The one key every later version of a state file carries, and version 1 never.
    #[derive(serde::Deserialize)]
    struct Version {
        #[serde(rename = "version")]
        version: Option<u64>,
    }
    let Version { version } = serde_json::from_slice(json).map_err(invalid)?;
    if let Some(version) = version {
        return Err(invalid(format!(
            "state file names format version {version}; this release reads version {} only, \
             which names none",
            char::from(VERSION),
        )));
    }
    let record: v1::State = serde_json::from_slice(json).map_err(invalid)?;
    Ok(record.into())
}
