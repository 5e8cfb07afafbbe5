//! Checks of content by what it is (its magic numbers), shared by attachments and archive
//! entries.

use crate::magic::{Kind, ole2_has_macros, sniff};
use crate::symbols::*;
use crate::{Scan, archive};

/// Where content came from, for details and archive depth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The attachment's name (or type) or the archive path.
    pub(crate) label: &'a str,
    /// Archives around this content: 0 for an attachment.
    pub(crate) depth: usize,
}

pub(crate) fn check(scan: &mut Scan, data: &[u8], origin: Origin) {
    let label = origin.label;
    match sniff(data) {
        Some(Kind::Executable(kind)) => scan.add(ATTACH_EXECUTABLE, format!("{label} ({kind})")),
        Some(Kind::Script) => scan.add(ATTACH_SCRIPT, label),
        Some(Kind::Shortcut) => scan.add(ATTACH_SHORTCUT, label),
        Some(Kind::DiskImage(kind)) => scan.add(ATTACH_DISK_IMAGE, format!("{label} ({kind})")),
        Some(Kind::Zip) => archive::zip(scan, data, label, origin.depth + 1),
        Some(Kind::OtherArchive(kind)) => scan.add(ARCHIVE_UNLISTABLE, format!("{label} ({kind})")),
        Some(Kind::Ole2) if ole2_has_macros(data) => scan.add(OFFICE_MACRO, label),
        Some(Kind::Ole2) | None => {}
    }
}

/// Whether a file name says zip, so an archive entry is worth decompressing whole.
pub(crate) fn archive_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".zip")
}
