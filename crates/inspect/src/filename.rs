//! File names of attachments and archive entries: extensions Windows (or macOS) runs or
//! mounts on a double click, harmless-looking extensions in front of them, and bidirectional
//! controls that make `exe.pdf` display as something else.

use crate::Scan;
use crate::symbols::{ATTACH_BIDI_NAME, ATTACH_DANGEROUS_NAME, ATTACH_DOUBLE_EXTENSION};

/// Extensions that execute, install, or mount when opened.
const DANGEROUS: &[&str] = &[
    "ade",
    "adp",
    "app",
    "appref-ms",
    "application",
    "appx",
    "appxbundle",
    "bat",
    "cab",
    "chm",
    "cmd",
    "com",
    "cpl",
    "dll",
    "dmg",
    "exe",
    "gadget",
    "hta",
    "img",
    "inf",
    "ins",
    "iqy",
    "iso",
    "isp",
    "jar",
    "jnlp",
    "js",
    "jse",
    "ksh",
    "lnk",
    "mde",
    "msc",
    "msi",
    "msix",
    "msixbundle",
    "msp",
    "mst",
    "one",
    "pif",
    "pkg",
    "ps1",
    "ps1xml",
    "ps2",
    "psc1",
    "psd1",
    "psm1",
    "reg",
    "scf",
    "scr",
    "sct",
    "settingcontent-ms",
    "shb",
    "shs",
    "sys",
    "udl",
    "url",
    "vb",
    "vbe",
    "vbs",
    "vhd",
    "vhdx",
    "wim",
    "ws",
    "wsc",
    "wsf",
    "wsh",
    "xll",
    "xbap",
];

/// Extensions a recipient trusts: a dangerous extension after one of these is a disguise.
const HARMLESS: &[&str] = &[
    "avi", "bmp", "csv", "doc", "docx", "gif", "htm", "html", "jpeg", "jpg", "mov", "mp3", "mp4",
    "odp", "ods", "odt", "pdf", "png", "ppt", "pptx", "rtf", "tif", "tiff", "txt", "wav", "xls",
    "xlsx", "zip",
];

/// Unicode bidirectional formatting characters (UAX #9 §2): embeddings, overrides, isolates
/// and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks one file name; `shown` is what details call it (an archive path, say).
pub(crate) fn check(scan: &mut Scan, name: &str, shown: &str) {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    if base.chars().any(is_bidi_control) {
        scan.add(ATTACH_BIDI_NAME, shown.escape_unicode_bidi());
    }
    // What Windows would use: controls dropped, trailing dots and spaces ignored.
    let cleaned: String = base.chars().filter(|&c| !is_bidi_control(c)).collect();
    let cleaned = cleaned.trim_end_matches(['.', ' ']).to_lowercase();
    let Some((stem, extension)) = cleaned.rsplit_once('.') else {
        return;
    };
    if !DANGEROUS.contains(&extension) {
        return;
    }
    scan.add(ATTACH_DANGEROUS_NAME, shown.escape_unicode_bidi());
    // `invoice.pdf.exe`, and `invoice.pdf      .exe` whose padding pushes the real
    // extension out of a narrow column.
    let disguise = stem.trim_end().rsplit_once('.').map(|(_, e)| e);
    if disguise.is_some_and(|e| HARMLESS.contains(&e)) {
        scan.add(ATTACH_DOUBLE_EXTENSION, shown.escape_unicode_bidi());
    }
}

/// Shows bidi controls in details as escapes, so a log line cannot be reordered by them.
trait EscapeBidi {
    fn escape_unicode_bidi(&self) -> String;
}

impl EscapeBidi for str {
    fn escape_unicode_bidi(&self) -> String {
        self.chars()
            .map(|c| {
                if is_bidi_control(c) {
                    format!("<U+{:04X}>", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    }
}
