//! The FETCH response of one message (RFC 3501 §7.4.2), built as pieces the session
//! writes in turn: small items rendered in memory, and the octets of BODY[], RFC822,
//! TEXT and part sections as byte ranges of the open message file, which the session
//! copies to the socket a chunk at a time. So a client that fetches a large message and
//! does not read costs a chunk, not the message.
//!
//! Items that need the MIME structure (ENVELOPE, BODYSTRUCTURE, sections other than the
//! whole message) need the message in memory for mail-parser: that is done under a byte
//! budget shared by all sessions, and only for as long as it takes to find the offsets.
//! Items that need only header fields (ENVELOPE, HEADER, HEADER.FIELDS) are answered from
//! the header section alone, or from the folder's header cache without opening the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use posthorn_maildir::store::Message;

use crate::budget::{Held, MemoryBudget};

use super::binary::{self, Encoding};
use super::command::{FetchAttribute, Section, SectionText};
use super::headers;
use super::message::Parsed;
use super::response::{self, MAX_QUOTED};
use super::view::View;
use crate::blocking;

/// Octets copied from a message file at a time.
pub(super) const CHUNK: usize = 64 * 1024;

/// One part of a FETCH response.
pub(super) enum Piece {
    /// Rendered octets.
    Bytes(Vec<u8>),
    /// Octets `start..start + len` of the message file, announced already.
    File { start: u64, len: u64 },
    /// Decoded octets of a part of the message file (BINARY), announced already.
    Decoded(binary::Stream),
}

/// The FETCH response of one message, ready to write.
pub(super) struct Reply {
    /// The message, for the `File` pieces.
    pub(super) file: Option<File>,
    pub(super) pieces: Vec<Piece>,
    /// A share of the parse budget, held while rendered pieces larger than a chunk (the
    /// envelope of a message with a huge header, say) wait to be written.
    pub(super) _budget: Option<Held>,
}

/// What FETCH reads of a message.
pub(super) enum Source {
    /// The message file.
    File {
        file: File,
        len: u64,
        /// The items need mail-parser's view of it.
        parse: bool,
    },
    /// Header fields only, for items that need nothing else: the header section, or
    /// the cached fields when those are all the items need (see [`headers`]).
    Header(Vec<u8>),
}

/// What opening a message gave: its source, `None` when no content is needed;
/// `Err(None)` when it has been expunged.
pub(super) type Opened = Result<Option<Source>, Option<io::Error>>;

/// Messages a FETCH opens in one blocking stretch (see [`open_batch`]).
const OPEN_AT_ONCE: usize = 32;

/// Octets of header fields a blocking stretch reads before it ends.
const OPEN_OCTETS: usize = 256 * 1024;

/// Opens the messages at the start of `indexes`, as [`open`] does, in one stretch on a
/// thread that may block: at most [`OPEN_AT_ONCE`], fewer once [`OPEN_OCTETS`] of header
/// fields are read. `block_in_place` for each message handed the worker's other tasks to
/// another thread ten times per FETCH of ten envelopes, and the thread switches cost more
/// than the envelopes. Returns each index opened with what [`open`] gave.
pub(super) fn open_batch(
    view: &View,
    indexes: &[usize],
    items: &[FetchAttribute],
) -> Vec<(usize, Opened)> {
    blocking(|| {
        let mut opened = Vec::new();
        let mut octets = 0;
        for &index in indexes.iter().take(OPEN_AT_ONCE) {
            let source = open(view, index, items);
            if let Ok(Some(Source::Header(fields))) = &source {
                octets += fields.len();
            }
            opened.push((index, source));
            if octets >= OPEN_OCTETS {
                break;
            }
        }
        opened
    })
}

/// Opens the message at `index` if `items` need its content, reading only its header
/// fields when that is all they need. `Ok(None)` when no content is needed, `Err(None)`
/// when it has been expunged since the session last looked. It may block.
fn open(view: &View, index: usize, items: &[FetchAttribute]) -> Opened {
    let needed: Vec<&FetchAttribute> = items.iter().filter(|a| needs_content(a)).collect();
    if needed.is_empty() {
        return Ok(None);
    }
    let m = view.messages.get(index).ok_or(None)?;
    if needed.iter().all(|a| in_cache(a)) {
        let fields = headers::cached(view, m).map_err(Some)?;
        return Ok(Some(Source::Header(fields.ok_or(None)?)));
    }
    let file = view.folder.open(&m.file).map_err(Some)?.ok_or(None)?;
    if needed.iter().all(|a| in_header(a)) {
        let section = headers::read_header(&file).map_err(Some)?;
        if section.whole {
            return Ok(Some(Source::Header(section.bytes)));
        }
    }
    let len = file.metadata().map_err(Some)?.len();
    Ok(Some(Source::File {
        file,
        len,
        parse: items.iter().any(needs_structure),
    }))
}

/// The share of the budget for whole messages that parsing a message of `source` takes,
/// waited for; none when its structure is not needed. With mail-parser's decoded copies a
/// parse costs a small multiple of the message, so N sessions fetching the structure of N
/// large messages wait for each other instead. A header alone is bounded and small.
pub(super) async fn budget(budget: &MemoryBudget, source: Option<&Source>) -> Option<Held> {
    match source? {
        Source::File {
            len, parse: true, ..
        } => Some(budget.hold(*len).await),
        _ => None,
    }
}

/// The FETCH response of the message at `index`, with the UID first for UID FETCH and
/// FLAGS last when the fetch has just set \Seen (RFC 3501 §6.4.5).
pub(super) fn reply(
    view: &View,
    uid: bool,
    index: usize,
    items: &[FetchAttribute],
    source: Option<Source>,
    budget: Option<Held>,
) -> io::Result<Option<Reply>> {
    let Some(m) = view.messages.get(index) else {
        return Ok(None);
    };
    let (file, len, raw, parse) = match source {
        Some(Source::File { file, len, parse }) => {
            let raw = if parse {
                blocking(|| read_range(&file, 0, len))?
            } else {
                Vec::new()
            };
            (Some(file), len, raw, parse)
        }
        Some(Source::Header(bytes)) => (None, bytes.len() as u64, bytes, true),
        None => (None, 0, Vec::new(), false),
    };
    let parsed = Parsed::new(&raw);
    let mut builder = Builder {
        file: file.as_ref(),
        len,
        parsed: parse.then_some(&parsed),
        pieces: Vec::new(),
        current: format!("* {} FETCH (", index + 1).into_bytes(),
    };
    let marks_seen = !view.read_only && items.iter().any(sets_seen);
    // Setting \Seen changes the flags: a CONDSTORE client hears of them with UID and MODSEQ
    // (RFC 7162 §3.1).
    let condstore_seen = marks_seen && view.enabled.condstore;
    let mut rendered = Vec::new();
    if (uid || condstore_seen) && !items.contains(&FetchAttribute::Uid) {
        rendered.push(&FetchAttribute::Uid);
    }
    rendered.extend(items);
    if marks_seen && !items.contains(&FetchAttribute::Flags) {
        rendered.push(&FetchAttribute::Flags);
    }
    if condstore_seen && !items.contains(&FetchAttribute::ModSeq) {
        rendered.push(&FetchAttribute::ModSeq);
    }
    for (i, attribute) in rendered.into_iter().enumerate() {
        if i > 0 {
            builder.current.push(b' ');
        }
        builder.render(view, m, attribute)?;
    }
    builder.current.extend_from_slice(b")\r\n");
    let mut pieces = builder.pieces;
    pieces.push(Piece::Bytes(builder.current));
    let in_memory: usize = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Bytes(bytes) => bytes.len(),
            Piece::File { .. } | Piece::Decoded(_) => 0,
        })
        .sum();
    Ok(Some(Reply {
        file,
        pieces,
        _budget: budget.filter(|_| in_memory > CHUNK),
    }))
}

/// Octets `start..start + len` of `file`; an error if the file is shorter, as a message
/// file never changes.
pub(super) fn read_range(file: &File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, start)?;
    Ok(bytes)
}

/// Collects the pieces of one response.
struct Builder<'a> {
    file: Option<&'a File>,
    /// The file's length.
    len: u64,
    /// The message as mail-parser sees it, when an item needs that.
    parsed: Option<&'a Parsed<'a>>,
    /// The pieces complete so far.
    pieces: Vec<Piece>,
    /// What has been rendered since the last of them.
    current: Vec<u8>,
}

/// Where the octets of a section are.
enum Octets<'a> {
    /// A range of the message file.
    Stored { start: u64, len: u64 },
    /// Elsewhere: built, or decoded by mail-parser.
    Memory(&'a [u8]),
}

impl<'a> Builder<'a> {
    /// One FETCH data item.
    fn render(&mut self, view: &View, m: &Message, attribute: &FetchAttribute) -> io::Result<()> {
        let parsed = self.parsed;
        let out = &mut self.current;
        match attribute {
            FetchAttribute::Flags => {
                let recent = view.recent.contains(&m.uid);
                out.extend_from_slice(format!("FLAGS ({})", m.flags.to_imap(recent)).as_bytes());
            }
            FetchAttribute::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
            FetchAttribute::ModSeq => {
                out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes());
            }
            FetchAttribute::InternalDate => {
                let date = internal_date(view.folder.internal_date(&m.file));
                out.extend_from_slice(format!("INTERNALDATE \"{date}\"").as_bytes());
            }
            FetchAttribute::Rfc822Size => {
                out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes());
            }
            FetchAttribute::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                out.extend_from_slice(&parsed.map(Parsed::envelope).unwrap_or_default());
            }
            FetchAttribute::Body => {
                out.extend_from_slice(b"BODY ");
                let structure = parsed.map(|p| p.body_structure(false));
                out.extend_from_slice(&structure.unwrap_or_default());
            }
            FetchAttribute::BodyStructure => {
                out.extend_from_slice(b"BODYSTRUCTURE ");
                let structure = parsed.map(|p| p.body_structure(true));
                out.extend_from_slice(&structure.unwrap_or_default());
            }
            FetchAttribute::Rfc822 => {
                out.extend_from_slice(b"RFC822 ");
                self.section(&Section::default(), None)?;
            }
            FetchAttribute::Rfc822Header => {
                out.extend_from_slice(b"RFC822.HEADER ");
                self.section(&section(SectionText::Header), None)?;
            }
            FetchAttribute::Rfc822Text => {
                out.extend_from_slice(b"RFC822.TEXT ");
                self.section(&section(SectionText::Text), None)?;
            }
            FetchAttribute::BodySection {
                section, partial, ..
            } => {
                out.extend_from_slice(format!("BODY[{}]", section_name(section)).as_bytes());
                match partial {
                    Some((origin, _)) => out.extend_from_slice(format!("<{origin}> ").as_bytes()),
                    None => out.push(b' '),
                }
                self.section(section, *partial)?;
            }
            FetchAttribute::Binary { part, partial, .. } => {
                out.extend_from_slice(format!("BINARY[{}]", part_name(part)).as_bytes());
                match partial {
                    Some((origin, _)) => out.extend_from_slice(format!("<{origin}> ").as_bytes()),
                    None => out.push(b' '),
                }
                self.binary(part, *partial)?;
            }
            FetchAttribute::BinarySize { part } => {
                let size = self.binary_content(part)?.map_or(0, |(encoded, encoding)| {
                    binary::measure(encoded, encoding).0
                });
                self.current.extend_from_slice(
                    format!("BINARY.SIZE[{}] {size}", part_name(part)).as_bytes(),
                );
            }
        }
        Ok(())
    }

    /// The stored octets of `part` (the whole message when empty) and their encoding; None
    /// when there is no such part, an error when its encoding is unknown.
    fn binary_content(&self, part: &[u32]) -> io::Result<Option<(&'a [u8], Encoding)>> {
        let Some((encoded, cte)) = self.parsed.and_then(|parsed| parsed.encoded_part(part)) else {
            return Ok(None);
        };
        let encoding = Encoding::of(cte.as_deref()).map_err(io::Error::other)?;
        Ok(Some((encoded, encoding)))
    }

    /// Writes BINARY[part] (or its `<origin.length>` part): NIL for a part that does not
    /// exist, a literal8 when the content holds a NUL (RFC 3516 §4.2), else a literal.
    /// Up to a chunk is decoded now; more is decoded from the file as it is written.
    fn binary(&mut self, part: &[u32], partial: Option<(u32, u32)>) -> io::Result<()> {
        let Some((encoded, encoding)) = self.binary_content(part)? else {
            self.current.extend_from_slice(b"NIL");
            return Ok(());
        };
        let (size, nul) = binary::measure(encoded, encoding);
        let (from, to) = partial.map_or((0, size), |range| cut(range, size));
        if nul {
            self.current.push(b'~');
        }
        response::literal_start(&mut self.current, to - from);
        let stored = self
            .parsed
            .and_then(|parsed| offset_in(parsed.raw(), encoded));
        match stored {
            Some(start) if to - from > CHUNK as u64 => {
                let start = start as u64;
                let stored = start..start + encoded.len() as u64;
                let rendered = std::mem::take(&mut self.current);
                self.pieces.push(Piece::Bytes(rendered));
                let stream = binary::Stream::new(encoding, stored, from..to);
                self.pieces.push(Piece::Decoded(stream));
            }
            _ => {
                let decoded = binary::decode(encoded, encoding, from..to);
                self.current.extend_from_slice(&decoded);
            }
        }
        Ok(())
    }

    /// Writes BODY[section] (or its `<origin.length>` part) as a string.
    fn section(&mut self, section: &Section, partial: Option<(u32, u32)>) -> io::Result<()> {
        let whole;
        let octets = match self.parsed {
            _ if section.part.is_empty() && section.text.is_none() => Octets::Stored {
                start: 0,
                len: self.len,
            },
            Some(parsed) => {
                whole = parsed.section(section);
                // Only a file read whole can be sliced: a header in memory is written
                // from there.
                match offset_in(parsed.raw(), &whole).filter(|_| self.file.is_some()) {
                    Some(start) => Octets::Stored {
                        start: start as u64,
                        len: whole.len() as u64,
                    },
                    None => Octets::Memory(&whole),
                }
            }
            None => Octets::Memory(&[]),
        };
        let (from, to) = match (partial, &octets) {
            (Some(range), Octets::Stored { len, .. }) => cut(range, *len),
            (Some(range), Octets::Memory(bytes)) => cut(range, bytes.len() as u64),
            (None, Octets::Stored { len, .. }) => (0, *len),
            (None, Octets::Memory(bytes)) => (0, bytes.len() as u64),
        };
        match octets {
            Octets::Memory(bytes) => {
                let bytes = bytes.get(from as usize..to as usize).unwrap_or_default();
                response::string(&mut self.current, bytes);
            }
            Octets::Stored { start, .. } => self.stored(start + from, to - from)?,
        }
        Ok(())
    }

    /// Writes octets of the file as a string: short ones are read now (they may go as a
    /// quoted string), longer ones are announced and left to the writer.
    fn stored(&mut self, start: u64, len: u64) -> io::Result<()> {
        if len <= MAX_QUOTED as u64 {
            let bytes = match (self.parsed, self.file) {
                (Some(parsed), _) => parsed
                    .raw()
                    .get(start as usize..(start + len) as usize)
                    .unwrap_or_default()
                    .to_vec(),
                (None, Some(file)) => blocking(|| read_range(file, start, len))?,
                (None, None) => Vec::new(),
            };
            response::string(&mut self.current, &bytes);
        } else {
            response::literal_start(&mut self.current, len);
            let rendered = std::mem::take(&mut self.current);
            self.pieces.push(Piece::Bytes(rendered));
            self.pieces.push(Piece::File { start, len });
        }
        Ok(())
    }
}

/// Where `part` starts within `whole`, if it is a slice of it: mail-parser hands out
/// slices of the stored message, except for encapsulated messages it had to decode.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let whole_start = whole.as_ptr() as usize;
    let part_start = part.as_ptr() as usize;
    let offset = part_start.checked_sub(whole_start)?;
    (offset.checked_add(part.len())? <= whole.len()).then_some(offset)
}

/// The `<origin.length>` part of `len` octets (RFC 3501 §6.4.5): from the origin, or
/// empty when it is past the end, for at most `length` octets.
fn cut((origin, length): (u32, u32), len: u64) -> (u64, u64) {
    let start = u64::from(origin).min(len);
    (start, start.saturating_add(u64::from(length)).min(len))
}

/// True for the items that mark a message \Seen when fetched.
pub(super) fn sets_seen(attribute: &FetchAttribute) -> bool {
    matches!(
        attribute,
        FetchAttribute::Rfc822
            | FetchAttribute::Rfc822Text
            | FetchAttribute::BodySection { peek: false, .. }
            | FetchAttribute::Binary { peek: false, .. }
    )
}

/// True for the items that need the message's text.
fn needs_content(attribute: &FetchAttribute) -> bool {
    !matches!(
        attribute,
        FetchAttribute::Flags
            | FetchAttribute::Uid
            | FetchAttribute::InternalDate
            | FetchAttribute::Rfc822Size
    )
}

/// True for the items the cached header fields answer exactly as the message would:
/// ENVELOPE, and HEADER.FIELDS of the message's own header when every field named is one
/// the cache keeps.
fn in_cache(attribute: &FetchAttribute) -> bool {
    match attribute {
        FetchAttribute::Envelope => true,
        FetchAttribute::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(&section.text, Some(SectionText::HeaderFields { not: false, fields })
                    if fields.iter().all(|name| headers::is_cached(name)))
        }
        _ => false,
    }
}

/// True for the items the header section alone answers: those of the cache, HEADER,
/// HEADER.FIELDS (.NOT) and RFC822.HEADER of the message's own header.
fn in_header(attribute: &FetchAttribute) -> bool {
    match attribute {
        FetchAttribute::Rfc822Header => true,
        FetchAttribute::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(
                    section.text,
                    Some(SectionText::Header | SectionText::HeaderFields { .. })
                )
        }
        other => in_cache(other),
    }
}

/// True for the items that need the MIME structure, not just the stored octets.
fn needs_structure(attribute: &FetchAttribute) -> bool {
    match attribute {
        FetchAttribute::Rfc822 => false,
        FetchAttribute::BodySection { section, .. } => {
            !section.part.is_empty() || section.text.is_some()
        }
        other => needs_content(other),
    }
}

fn section(text: SectionText) -> Section {
    Section {
        part: Vec::new(),
        text: Some(text),
    }
}

/// Part numbers as a section names them: `1.2`.
fn part_name(part: &[u32]) -> String {
    let parts: Vec<String> = part.iter().map(u32::to_string).collect();
    parts.join(".")
}

/// The section as the response names it: `1.2.HEADER.FIELDS (FROM TO)`.
fn section_name(section: &Section) -> String {
    let mut parts: Vec<String> = section.part.iter().map(u32::to_string).collect();
    match &section.text {
        None => {}
        Some(SectionText::Header) => parts.push("HEADER".into()),
        Some(SectionText::Text) => parts.push("TEXT".into()),
        Some(SectionText::Mime) => parts.push("MIME".into()),
        Some(SectionText::HeaderFields { not, fields }) => parts.push(format!(
            "HEADER.FIELDS{} ({})",
            if *not { ".NOT" } else { "" },
            fields.join(" ")
        )),
    }
    parts.join(".")
}

/// INTERNALDATE as IMAP writes it (`17-Jul-1996 02:44:25 +0000`), in UTC.
fn internal_date(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = mail_parser::DateTime::from_timestamp(unix);
    let month = MONTHS
        .get(usize::from(t.month).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{:02}-{month}-{:04} {:02}:{:02}:{:02} +0000",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_section_names() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_000_000_000), "09-Sep-2001 01:46:40 +0000");
        let fields = Section {
            part: vec![1, 2],
            text: Some(SectionText::HeaderFields {
                not: true,
                fields: vec!["FROM".into(), "TO".into()],
            }),
        };
        assert_eq!(section_name(&fields), "1.2.HEADER.FIELDS.NOT (FROM TO)");
        assert_eq!(section_name(&Section::default()), "");
    }

    #[test]
    fn partial_ranges_and_slices() {
        assert_eq!(cut((0, 10), 100), (0, 10));
        assert_eq!(cut((95, 10), 100), (95, 100));
        assert_eq!(cut((200, 10), 100), (100, 100));
        assert_eq!(cut((5, u32::MAX), 100), (5, 100));
        let whole = b"header\r\n\r\nbody";
        assert_eq!(offset_in(whole, &whole[10..]), Some(10));
        assert_eq!(offset_in(whole, &whole[..0]), Some(0));
        assert_eq!(offset_in(whole, b"body".to_vec().as_slice()), None);
    }
}
