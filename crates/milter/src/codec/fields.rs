//! Reading the fields of a packet's data, each read checked against what is left.

use super::{DecodeError, Packet};

/// A cursor over one packet's data.
pub(super) struct Fields<'a> {
    code: char,
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn new(packet: Packet<'a>) -> Self {
        Fields {
            code: char::from(packet.code),
            rest: packet.data,
        }
    }

    pub(super) fn bad(&self, what: &'static str) -> DecodeError {
        DecodeError::BadValue {
            code: self.code,
            what,
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated(self.code))?;
        self.rest = rest;
        Ok(*head)
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.take::<2>().map(u16::from_be_bytes)
    }

    pub(super) fn byte(&mut self) -> Result<u8, DecodeError> {
        self.take::<1>().map(|[b]| b)
    }

    /// A NUL-terminated string, without its NUL.
    pub(super) fn cstr(&mut self) -> Result<&'a [u8], DecodeError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated(self.code))?;
        let value = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        Ok(value)
    }

    /// A NUL-terminated string that must be UTF-8.
    pub(super) fn text(&mut self) -> Result<String, DecodeError> {
        let value = self.cstr()?;
        String::from_utf8(value.to_vec()).map_err(|_| self.bad("text is not UTF-8"))
    }

    /// A NUL-terminated UTF-8 string if any data is left.
    pub(super) fn optional_text(&mut self) -> Result<Option<String>, DecodeError> {
        if self.is_empty() {
            Ok(None)
        } else {
            self.text().map(Some)
        }
    }

    /// Everything left.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails if anything is left: a packet with more data than its fields is malformed.
    pub(super) fn end(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingData(self.code))
        }
    }
}
