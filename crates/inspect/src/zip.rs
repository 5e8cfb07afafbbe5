//! Listing a zip archive from its central directory (APPNOTE.TXT 6.3 §4.3.12-4.3.16, Zip64
//! §4.3.14-4.3.15, §4.5.3) without decompressing anything. Every read is bounds-checked
//! against the archive; sizes are the archive's claims, which callers treat as such.

/// One central directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    /// General purpose flag bit 0 (§4.4.4), or the AES method 99 (APPNOTE appendix E).
    pub(crate) encrypted: bool,
    pub(crate) method: u16,
    pub(crate) compressed: u64,
    pub(crate) uncompressed: u64,
    /// Where its local header is, already adjusted for data prepended to the archive.
    pub(crate) local_offset: u64,
}

#[derive(Debug)]
pub(crate) struct Listing {
    pub(crate) entries: Vec<Entry>,
    /// The directory had more entries than the caller's limit.
    pub(crate) truncated: bool,
}

const EOCD: u32 = 0x0605_4b50;
const EOCD64_LOCATOR: u32 = 0x0706_4b50;
const EOCD64: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const MAX_COMMENT: usize = 0xffff;

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The end of central directory record: the last signature within the comment's reach.
fn find_eocd(data: &[u8]) -> Option<usize> {
    let last = data.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(MAX_COMMENT);
    (first..=last)
        .rev()
        .find(|&at| u32_at(data, at) == Some(EOCD))
}

/// Lists at most `max_entries` entries; `None` when there is no readable central directory.
pub(crate) fn list(data: &[u8], max_entries: usize) -> Option<Listing> {
    let eocd = find_eocd(data)?;
    let mut count = u64::from(u16_at(data, eocd + 10)?);
    let mut size = u64::from(u32_at(data, eocd + 12)?);
    let mut offset = u64::from(u32_at(data, eocd + 16)?);
    let mut directory_end = eocd;
    if let Some(locator) = eocd.checked_sub(20)
        && u32_at(data, locator) == Some(EOCD64_LOCATOR)
    {
        let record = usize::try_from(u64_at(data, locator + 8)?).ok()?;
        if u32_at(data, record) == Some(EOCD64) {
            count = u64_at(data, record + 32)?;
            size = u64_at(data, record + 40)?;
            offset = u64_at(data, record + 48)?;
            directory_end = record;
        }
    }
    // Self-extracting archives and other prefixed data shift every offset: the directory
    // really ends where the end record starts (§4.3.6 order).
    let start = directory_end.checked_sub(usize::try_from(size).ok()?)?;
    let shift = (start as u64).checked_sub(offset)?;
    if u32_at(data, start) != Some(CENTRAL) && count > 0 {
        return None;
    }
    let mut entries = Vec::new();
    let mut at = start;
    let mut truncated = false;
    for _ in 0..count {
        if entries.len() >= max_entries {
            truncated = true;
            break;
        }
        let (entry, next) = central_entry(data, at, shift)?;
        entries.push(entry);
        at = next;
    }
    Some(Listing { entries, truncated })
}

/// The central directory file header at `at` (§4.3.12) and where the next one starts.
fn central_entry(data: &[u8], at: usize, shift: u64) -> Option<(Entry, usize)> {
    if u32_at(data, at)? != CENTRAL {
        return None;
    }
    let flags = u16_at(data, at + 8)?;
    let method = u16_at(data, at + 10)?;
    let mut compressed = u64::from(u32_at(data, at + 20)?);
    let mut uncompressed = u64::from(u32_at(data, at + 24)?);
    let name_len = usize::from(u16_at(data, at + 28)?);
    let extra_len = usize::from(u16_at(data, at + 30)?);
    let comment_len = usize::from(u16_at(data, at + 32)?);
    let mut local = u64::from(u32_at(data, at + 42)?);
    let name = data.get(at + 46..at + 46 + name_len)?;
    let extra = data.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
    // §4.5.3: Zip64 values appear, in this order, only for fields that hold 0xFFFFFFFF.
    if let Some(mut zip64) = extra_field(extra, 0x0001) {
        for field in [&mut uncompressed, &mut compressed, &mut local] {
            if *field == 0xffff_ffff {
                *field = u64_at(zip64, 0)?;
                zip64 = zip64.get(8..)?;
            }
        }
    }
    let entry = Entry {
        name: String::from_utf8_lossy(name).into_owned(),
        encrypted: flags & 1 != 0 || method == 99,
        method,
        compressed,
        uncompressed,
        local_offset: local.checked_add(shift)?,
    };
    Some((entry, at + 46 + name_len + extra_len + comment_len))
}

/// The data of the extra field with header `id` (§4.5.1).
fn extra_field(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let (tag, len) = (u16_at(extra, 0)?, usize::from(u16_at(extra, 2)?));
        let data = extra.get(4..4 + len)?;
        if tag == id {
            return Some(data);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// Where an entry's compressed data lies: after its local header (§4.3.7), whose name and
/// extra lengths may differ from the central copy.
pub(crate) fn data_range(data: &[u8], entry: &Entry) -> Option<std::ops::Range<usize>> {
    let at = usize::try_from(entry.local_offset).ok()?;
    if u32_at(data, at)? != LOCAL {
        return None;
    }
    let name_len = usize::from(u16_at(data, at + 26)?);
    let extra_len = usize::from(u16_at(data, at + 28)?);
    let start = at.checked_add(30 + name_len + extra_len)?;
    let end = start.checked_add(usize::try_from(entry.compressed).ok()?)?;
    (end <= data.len()).then_some(start..end)
}
