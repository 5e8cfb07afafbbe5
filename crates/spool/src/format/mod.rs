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
//! - A message file carries it in its footer: the magic `PHQ<v>` … `<v>QHP` names the
//!   layout `content, envelope, footer`. The footer is read before anything else, so the
//!   version decides how all the rest is read (a later version may change the envelope's
//!   encoding or the layout, not only its keys); every file written before the format was
//!   versioned already says 1 there, so no file needs a default; and a release that does
//!   not know a file's version sets it aside as damaged rather than misread it (going back
//!   to a release before version 2 sets the messages queued since aside in `corrupt/`,
//!   whence a later release takes them back). The one thing every version keeps: a message
//!   file ends in `<version>QHP`.
//!   - Version 1: magic, content length, envelope length, magic (24 octets).
//!   - Version 2 adds a CRC-32 of the content and envelope (28 octets). A message
//!     received into a spool file named before it arrived (`pool`) is durable with a single
//!     data sync, so after a crash a torn write could leave a file of the right length
//!     whose middle never reached the disk; the checksum tells it from a message. The
//!     envelope's encoding is version 1's.
//!   - Version 3 is version 2 with a gap: octets that mean nothing between the envelope
//!     and the footer, which still ends the file. A pool file may be a delivered message's
//!     file, reused so that the next message overwrites blocks already on disk and its
//!     data sync changes no metadata (`pool`); a shorter message leaves the end of the
//!     file as it was, and its footer goes at the end. A file without a gap is written as
//!     version 2, which the releases before this one read.
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

/// The message layout this release writes when the envelope ends where the footer begins;
/// it reads this one, version 1 and [`GAP_VERSION`].
const VERSION: u8 = b'2';
/// The layout it writes when octets that mean nothing lie between envelope and footer.
const GAP_VERSION: u8 = b'3';
/// The state files' version, the only one this release reads and writes.
const STATE_VERSION: u8 = b'1';
/// Octets in a version 1 footer: magic, content length, envelope length, magic.
const FOOTER_V1_LEN: u64 = 24;
/// Octets in a version 2 footer: version 1's fields, then the checksum before the magic.
pub(crate) const FOOTER_LEN: u64 = 28;

/// What a message file's footer says.
pub(crate) struct Footer {
    pub content_len: u64,
    pub envelope_len: u64,
    /// The CRC-32 of content and envelope; version 1 has none.
    pub checksum: Option<u32>,
}

/// The envelope as it goes between the content and the footer.
pub(crate) fn encode_envelope(envelope: &Envelope) -> io::Result<Vec<u8>> {
    serde_json::to_vec(&v1::Envelope::from(envelope)).map_err(invalid)
}

/// The envelope read back from between the content and the footer.
pub(crate) fn decode_envelope(json: &[u8]) -> io::Result<Envelope> {
    let record: v1::Envelope = serde_json::from_slice(json).map_err(invalid)?;
    Envelope::try_from(record).map_err(invalid)
}

/// The footer that ends a message file; `checksum` is the CRC-32 of the content and
/// envelope, and `gap` says whether other octets lie between them and the footer.
pub(crate) fn footer(
    content_len: u64,
    envelope_len: u64,
    checksum: u32,
    gap: bool,
) -> [u8; FOOTER_LEN as usize] {
    let version = if gap { GAP_VERSION } else { VERSION };
    let mut footer = [0u8; FOOTER_LEN as usize];
    footer[..4].copy_from_slice(&[b'P', b'H', b'Q', version]);
    footer[4..12].copy_from_slice(&content_len.to_le_bytes());
    footer[12..20].copy_from_slice(&envelope_len.to_le_bytes());
    footer[20..24].copy_from_slice(&checksum.to_le_bytes());
    footer[24..].copy_from_slice(&[version, b'Q', b'H', b'P']);
    footer
}

/// Reads a message file's footer after checking its version and that its lengths add up
/// to the file's (or, in version 3, leave a gap before the footer).
pub(crate) fn read_footer(file: &File) -> io::Result<Footer> {
    let len = file.metadata()?.len();
    let mut tail = [0u8; 4];
    if len < FOOTER_V1_LEN {
        return Err(invalid("spool file too short"));
    }
    file.read_exact_at(&mut tail, len - 4)?;
    let footer_len = match tail {
        [b'1', b'Q', b'H', b'P'] => FOOTER_V1_LEN,
        [VERSION | GAP_VERSION, b'Q', b'H', b'P'] => FOOTER_LEN,
        [version, b'Q', b'H', b'P'] => {
            return Err(invalid(format!(
                "spool file is in format version {}; this release reads versions 1 to {} only",
                char::from(version).escape_default(),
                char::from(GAP_VERSION),
            )));
        }
        _ => return Err(invalid("spool file footer is damaged")),
    };
    if len < footer_len {
        return Err(invalid("spool file too short"));
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    let footer = &mut footer[..footer_len as usize];
    file.read_exact_at(footer, len - footer_len)?;
    let field = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&footer[range]);
        u64::from_le_bytes(bytes)
    };
    let content_len = field(4..12);
    let envelope_len = field(12..20);
    let checksum = (footer_len == FOOTER_LEN).then(|| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&footer[20..24]);
        u32::from_le_bytes(bytes)
    });
    let used = content_len
        .checked_add(envelope_len)
        .and_then(|n| n.checked_add(footer_len));
    let fits = match tail[0] {
        GAP_VERSION => used.is_some_and(|used| used <= len),
        _ => used == Some(len),
    };
    let consistent = footer[..3] == *b"PHQ" && footer[3] == tail[0] && fits;
    if !consistent {
        return Err(invalid("spool file footer is damaged"));
    }
    Ok(Footer {
        content_len,
        envelope_len,
        checksum,
    })
}

/// Whether the content and envelope of a message file are what its footer's checksum
/// says: false for version 1, which has none.
pub(crate) fn checksum_holds(file: &File, footer: &Footer) -> io::Result<bool> {
    let Some(expected) = footer.checksum else {
        return Ok(false);
    };
    let checksum = checksum_of(file, footer.content_len + footer.envelope_len)?;
    Ok(checksum.value() == expected)
}

/// The checksum of the first `len` octets of `file`, read back.
pub(crate) fn checksum_of(file: &File, len: u64) -> io::Result<Checksum> {
    let mut checksum = Checksum::default();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < len {
        let want = usize::try_from(len - at).map_or(buffer.len(), |n| n.min(buffer.len()));
        file.read_exact_at(&mut buffer[..want], at)?;
        checksum.update(&buffer[..want]);
        at += want as u64;
    }
    Ok(checksum)
}

/// The running CRC-32 of what a writer has written.
#[derive(Clone, Default)]
pub(crate) struct Checksum(crc32fast::Hasher);

impl Checksum {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }
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
            char::from(STATE_VERSION),
        )));
    }
    let record: v1::State = serde_json::from_slice(json).map_err(invalid)?;
    Ok(record.into())
}
