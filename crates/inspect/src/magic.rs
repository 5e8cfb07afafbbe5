//! What content is, by its magic numbers rather than its name or declared type, both of which
//! the sender chooses.

use memchr::memmem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Executable(&'static str),
    Script,
    Shortcut,
    DiskImage(&'static str),
    Zip,
    /// An archive or compressed file this crate does not open.
    OtherArchive(&'static str),
    /// An OLE2 compound file (legacy Office); whether it holds macros is a separate look.
    Ole2,
}

/// The MS-SHLLINK header: size 0x4C and the LinkCLSID 00021401-0000-0000-C000-000000000046.
const LNK: &[u8] =
    b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46";

/// ECMA-119 §8.1: volume descriptors start at sector 16 (0x8000), with "CD001" after the type
/// octet; a few sectors are tried since the first may be a boot record.
const ISO_OFFSETS: [usize; 3] = [0x8001, 0x8801, 0x9001];

pub(crate) fn sniff(data: &[u8]) -> Option<Kind> {
    let starts = |magic: &[u8]| data.starts_with(magic);
    if is_pe(data) {
        Some(Kind::Executable("PE"))
    } else if starts(b"\x7fELF") {
        Some(Kind::Executable("ELF"))
    } else if [
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    ]
    .iter()
    .any(|m| starts(*m))
    {
        Some(Kind::Executable("Mach-O"))
    } else if starts(b"\xca\xfe\xba\xbe") {
        Some(Kind::Executable("Mach-O universal or Java class"))
    } else if starts(b"#!") {
        Some(Kind::Script)
    } else if starts(LNK) {
        Some(Kind::Shortcut)
    } else if ISO_OFFSETS
        .iter()
        .any(|&o| data.get(o..o + 5) == Some(b"CD001"))
    {
        Some(Kind::DiskImage("ISO 9660"))
    } else if starts(b"vhdxfile") {
        Some(Kind::DiskImage("VHDX"))
    } else if starts(b"conectix") || footer(data, 512).is_some_and(|f| f.starts_with(b"conectix")) {
        Some(Kind::DiskImage("VHD"))
    } else if footer(data, 512).is_some_and(|f| f.starts_with(b"koly")) {
        Some(Kind::DiskImage("DMG"))
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        Some(Kind::Ole2)
    } else {
        other_archive(data).map(Kind::OtherArchive)
    }
}

fn other_archive(data: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| data.starts_with(magic);
    if starts(b"Rar!\x1a\x07") {
        Some("RAR")
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        Some("7z")
    } else if starts(b"\x1f\x8b") {
        Some("gzip")
    } else if starts(b"BZh") && data.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        Some("bzip2")
    } else if starts(b"\xfd7zXZ\x00") {
        Some("xz")
    } else if starts(b"MSCF\x00\x00\x00\x00") {
        Some("CAB")
    } else if data.get(7..14) == Some(b"**ACE**") {
        Some("ACE")
    } else {
        None
    }
}

/// MZ, and the PE signature where the DOS header's e_lfanew (offset 0x3C) points.
fn is_pe(data: &[u8]) -> bool {
    if !data.starts_with(b"MZ") {
        return false;
    }
    let Some(&[a, b, c, d]) = data.get(0x3c..0x40) else {
        return false;
    };
    let offset = u32::from_le_bytes([a, b, c, d]) as usize;
    data.get(offset..offset.saturating_add(4)) == Some(b"PE\0\0")
}

fn footer(data: &[u8], len: usize) -> Option<&[u8]> {
    data.len().checked_sub(len).map(|start| &data[start..])
}

/// Whether an OLE2 file holds a VBA project: its directory names the `_VBA_PROJECT` stream
/// (MS-OVBA §2.3.4.1), and directory entry names are UTF-16LE.
pub(crate) fn ole2_has_macros(data: &[u8]) -> bool {
    const NAME: &[u8] = b"_\0V\0B\0A\0_\0P\0R\0O\0J\0E\0C\0T\0";
    memmem::find(data, NAME).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let mut pe = vec![0u8; 0x80];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x40;
        pe[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert_eq!(sniff(&pe), Some(Kind::Executable("PE")));
        assert_eq!(sniff(b"MZ just text"), None);
        assert_eq!(sniff(b"\x7fELF\x02\x01"), Some(Kind::Executable("ELF")));
        assert_eq!(sniff(b"#!/bin/sh\n"), Some(Kind::Script));
        let mut iso = vec![0u8; 0x8800];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(sniff(&iso), Some(Kind::DiskImage("ISO 9660")));
        assert_eq!(
            sniff(b"Rar!\x1a\x07\x01\x00"),
            Some(Kind::OtherArchive("RAR"))
        );
        assert_eq!(sniff(b"%PDF-1.7"), None);
        assert_eq!(sniff(b""), None);
    }
}
