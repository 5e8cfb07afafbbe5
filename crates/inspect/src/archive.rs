//! Zip archives: their entries' names from the central directory, then their content,
//! decompressed only within the message's budget and sniffed like an attachment. Declared
//! sizes are claims: they flag bombs but never size an allocation.

use std::io::Read;

use flate2::bufread::DeflateDecoder;

use crate::content::{self, Origin};
use crate::magic::{Kind, sniff};
use crate::symbols::*;
use crate::zip::{self, Entry};
use crate::{Scan, filename};

/// Below this an entry's compression ratio is no evidence: small files of zeros are fine.
const BOMB_MIN_SIZE: u64 = 1 << 20;

/// Octets of an entry decompressed to sniff it; a disk image's marker is the furthest in
/// (ISO 9660 at 0x9001). Entries that are archives themselves are read whole.
const SNIFF_PREFIX: u64 = 64 << 10;

const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// Inspects the zip `data`, known to the report as `label`, `depth` archives deep (1 for an
/// attached zip).
pub(crate) fn zip(scan: &mut Scan, data: &[u8], label: &str, depth: usize) {
    let Some(listing) = zip::list(data, scan.limits().max_archive_entries) else {
        scan.add(
            ARCHIVE_UNLISTABLE,
            format!("{label}: zip without a readable central directory"),
        );
        return;
    };
    if listing.truncated {
        let max = scan.limits().max_archive_entries;
        scan.add(
            ARCHIVE_TOO_MANY_ENTRIES,
            format!("{label}: more than {max}"),
        );
    }
    if let Some(reason) = declared_bomb(scan, data, &listing.entries) {
        scan.add(ARCHIVE_BOMB, format!("{label}: {reason}"));
        return;
    }
    for entry in &listing.entries {
        let path = format!("{label}/{}", entry.name);
        filename::check(scan, &entry.name, &path);
        if entry.name.to_ascii_lowercase().ends_with("vbaproject.bin") {
            scan.add(OFFICE_MACRO, path.clone());
        }
        if entry.encrypted {
            scan.add(ARCHIVE_ENCRYPTED, path);
            continue;
        }
        if entry.name.ends_with('/') || entry.uncompressed == 0 {
            continue;
        }
        if scan.archive_budget == 0 {
            break;
        }
        entry_content(scan, data, entry, &path, depth);
    }
    if scan.archive_budget == 0 {
        budget_spent(scan, data, &listing.entries, label);
    }
}

/// The budget ran out in this archive: a bomb if it claims to expand far beyond its size
/// (many entries each too small to be evidence alone), else merely not fully checked.
fn budget_spent(scan: &mut Scan, data: &[u8], entries: &[Entry], label: &str) {
    let declared: u64 = entries
        .iter()
        .map(|e| e.uncompressed)
        .fold(0, u64::saturating_add);
    let ratio = declared / data.len().max(1) as u64;
    if ratio > scan.limits().max_compression_ratio {
        scan.add(
            ARCHIVE_BOMB,
            format!("{label}: expands {ratio}x, past the decompression budget"),
        );
    } else {
        scan.add(
            ARCHIVE_UNCHECKED,
            format!("{label}: decompression budget spent"),
        );
    }
}

/// A reason to call the archive a bomb from its directory alone: a huge declared size, a
/// huge ratio on a large entry, or entries sharing data (overlapping local ranges make a
/// small archive expand many times, as in Fifield's non-recursive zip bomb).
fn declared_bomb(scan: &Scan, data: &[u8], entries: &[Entry]) -> Option<String> {
    let limits = scan.limits();
    let total: u64 = entries
        .iter()
        .map(|e| e.uncompressed)
        .fold(0, u64::saturating_add);
    if total > limits.max_archive_declared {
        return Some(format!("declares {total} octets"));
    }
    if let Some(e) = entries.iter().find(|e| {
        e.uncompressed >= BOMB_MIN_SIZE
            && e.uncompressed / e.compressed.max(1) > limits.max_compression_ratio
    }) {
        return Some(format!(
            "{} declares {} from {} octets",
            e.name, e.uncompressed, e.compressed
        ));
    }
    let mut ranges: Vec<_> = entries
        .iter()
        .filter_map(|e| zip::data_range(data, e))
        .collect();
    ranges.sort_unstable_by_key(|r| r.start);
    ranges
        .windows(2)
        .any(|w| w[1].start < w[0].end)
        .then(|| "entries overlap".to_owned())
}

/// Decompresses (within the budget), sniffs, and opens nested archives.
fn entry_content(scan: &mut Scan, data: &[u8], entry: &Entry, path: &str, depth: usize) {
    let Some(range) = zip::data_range(data, entry) else {
        scan.add(ARCHIVE_UNLISTABLE, format!("{path}: entry data missing"));
        return;
    };
    let compressed = &data[range];
    let nested_by_name = content::archive_name(&entry.name);
    let wanted = if nested_by_name {
        entry.uncompressed
    } else {
        entry.uncompressed.min(SNIFF_PREFIX)
    };
    let Some(mut content) = decompress(scan, compressed, entry, wanted) else {
        return;
    };
    let kind = sniff(&content);
    let nested = matches!(kind, Some(Kind::Zip));
    if nested && !nested_by_name && (content.len() as u64) < entry.uncompressed {
        let Some(whole) = decompress(scan, compressed, entry, entry.uncompressed) else {
            return;
        };
        content = whole;
    }
    if let Some(Kind::OtherArchive(other)) = kind {
        scan.add(ARCHIVE_NESTED, format!("{path} ({other})"));
    }
    if nested {
        scan.add(ARCHIVE_NESTED, path.to_owned());
        if depth >= scan.limits().max_archive_depth {
            scan.add(ARCHIVE_TOO_DEEP, path.to_owned());
            return;
        }
    }
    content::check(scan, &content, Origin { label: path, depth });
}

/// Up to `wanted` octets of an entry, charged to the budget; `None` for methods this
/// crate does not decompress and when the budget runs out first.
fn decompress(scan: &mut Scan, compressed: &[u8], entry: &Entry, wanted: u64) -> Option<Vec<u8>> {
    let cap = wanted.min(scan.archive_budget as u64);
    let mut out = Vec::new();
    let read = match entry.method {
        STORED => {
            out.extend_from_slice(&compressed[..compressed.len().min(cap as usize)]);
            Ok(out.len())
        }
        DEFLATED => DeflateDecoder::new(compressed)
            .take(cap)
            .read_to_end(&mut out),
        _ => return None,
    };
    scan.archive_budget -= out.len();
    if read.is_err() {
        // A broken stream: what came out so far is still worth sniffing.
        return Some(out);
    }
    // Cut short by the budget (now spent): the archive reports it.
    let cut_short = cap < wanted && out.len() as u64 == cap;
    (!cut_short).then_some(out)
}
