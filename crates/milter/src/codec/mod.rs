//! The milter wire format, sans-IO: packets, the MTA's commands and the filter's replies.
//!
//! Every packet is a 4-octet big-endian length, then that many octets: a one-octet code
//! and its data. Strings in the data end in NUL; numbers are 32-bit (16-bit for a port)
//! big-endian. The format is Sendmail's milter protocol version 6 as libmilter 8.14 and
//! later speak it (described in the `milter-protocol.txt` notes that filter libraries
//! ship). Both directions are here, so a test can play the filter with the same code.
//!
//! Decoding never trusts a length: a packet longer than [`MAX_PACKET`] is refused before
//! anything is buffered, and no input makes it panic.

mod command;
mod fields;
mod flags;
mod reply;

pub use command::{Command, ConnectAddress};
pub use flags::{Actions, MacroStage, Negotiation, Protocol, VERSION};
pub use reply::{Reply, SmtpReply};

use thiserror::Error;

/// Octets of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// The largest body chunk one BODY packet carries (libmilter's `MILTER_CHUNK_SIZE`).
pub const MAX_BODY_CHUNK: usize = 65535;

/// The largest packet accepted (code and data): 1 MiB of data plus a body chunk. Bounds
/// what one packet from a misbehaving peer can make us allocate.
pub const MAX_PACKET: usize = 1024 * 1024 + MAX_BODY_CHUNK;

/// Why octets are not a well-formed packet.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A length of 0: not even a code.
    #[error("packet of length 0")]
    Empty,
    /// A length above [`MAX_PACKET`].
    #[error("packet of {0} octets is longer than the {MAX_PACKET} allowed")]
    TooLong(usize),
    /// A code this side does not know.
    #[error("unknown packet code {0:#04x}")]
    UnknownCode(u8),
    /// The data ends before its fields do.
    #[error("packet {0:?} is too short for its fields")]
    Truncated(char),
    /// Octets left over after the last field.
    #[error("packet {0:?} has data after its last field")]
    TrailingData(char),
    /// A field holds something it may not.
    #[error("packet {code:?}: {what}")]
    BadValue {
        /// The packet's code.
        code: char,
        /// What is wrong.
        what: &'static str,
    },
}

/// One packet: its code and data, borrowed from the buffer it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The command or reply code.
    pub code: u8,
    /// Everything after the code.
    pub data: &'a [u8],
}

/// The length a packet's prefix announces (code and data), checked against
/// [`MAX_PACKET`]; what a reader must read next.
pub fn packet_len(prefix: [u8; LENGTH_PREFIX]) -> Result<usize, DecodeError> {
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    match len {
        0 => Err(DecodeError::Empty),
        len if len > MAX_PACKET => Err(DecodeError::TooLong(len)),
        len => Ok(len),
    }
}

/// Splits the first packet off `buf`: the packet and the octets it took, or `None` until
/// `buf` holds all of it.
pub fn split_packet(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<LENGTH_PREFIX>() else {
        return Ok(None);
    };
    let len = packet_len(*prefix)?;
    let Some((body, _)) = rest.split_at_checked(len) else {
        return Ok(None);
    };
    let (&code, data) = body.split_first().ok_or(DecodeError::Empty)?;
    Ok(Some((Packet { code, data }, LENGTH_PREFIX + len)))
}

/// Builds one packet in `out`: the length is patched in once the data is written.
struct PacketWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> PacketWriter<'a> {
    fn new(out: &'a mut Vec<u8>, code: u8) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; LENGTH_PREFIX]);
        out.push(code);
        PacketWriter { out, start }
    }

    fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn u16(&mut self, value: u16) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn byte(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    /// A string and its NUL. A NUL inside `value` would end the field early on the other
    /// side, so the string is cut there.
    fn cstr(&mut self, value: &[u8]) -> &mut Self {
        let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        self.out.extend_from_slice(&value[..end]);
        self.out.push(0);
        self
    }

    fn raw(&mut self, value: &[u8]) -> &mut Self {
        self.out.extend_from_slice(value);
        self
    }
}

impl Drop for PacketWriter<'_> {
    fn drop(&mut self) {
        let len = self.out.len() - self.start - LENGTH_PREFIX;
        let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
        self.out[self.start..self.start + LENGTH_PREFIX].copy_from_slice(&len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_split_once_it_is_complete() {
        let buf = [0, 0, 0, 3, b'L', b'a', 0, 0xff];
        assert_eq!(split_packet(&buf[..6]), Ok(None));
        assert_eq!(split_packet(&buf[..2]), Ok(None));
        let (packet, used) = split_packet(&buf).unwrap().unwrap();
        assert_eq!(used, 7);
        assert_eq!(
            packet,
            Packet {
                code: b'L',
                data: b"a\0"
            }
        );
    }

    #[test]
    fn empty_and_oversized_lengths_are_refused_before_buffering() {
        assert_eq!(split_packet(&[0, 0, 0, 0]), Err(DecodeError::Empty));
        assert_eq!(
            split_packet(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::TooLong(0xffff_ffff))
        );
        let just_too_long = u32::try_from(MAX_PACKET + 1).unwrap().to_be_bytes();
        assert!(matches!(
            packet_len(just_too_long),
            Err(DecodeError::TooLong(_))
        ));
        let largest = u32::try_from(MAX_PACKET).unwrap().to_be_bytes();
        assert_eq!(packet_len(largest), Ok(MAX_PACKET));
    }

    #[test]
    fn a_nul_inside_a_string_ends_it() {
        let mut out = Vec::new();
        PacketWriter::new(&mut out, b'H').cstr(b"a\0b");
        assert_eq!(out, [0, 0, 0, 3, b'H', b'a', 0]);
    }
}

#[cfg(test)]
mod wire_tests;
