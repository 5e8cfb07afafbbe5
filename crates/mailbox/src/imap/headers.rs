//! Header fields without the message: the header section read alone from the file, and
//! the few fields clients ask for again and again kept in the folder's header cache
//! (posthorn-maildir's `store::cache`), so that ENVELOPE, HEADER.FIELDS, header SEARCH
//! keys, SORT and THREAD need not open, read and parse each message.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use posthorn_maildir::store::Message;
use posthorn_maildir::store::cache::HeaderCache;

use super::folded::{self, Record};
use super::message::{Node, header_fields, parse};
use super::view::View;

/// The most octets of a header section read; a longer one is cut at a line end.
const MAX_HEADER: usize = 256 * 1024;
/// Octets read from a message file at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The fields the cache keeps: those of ENVELOPE (RFC 3501 §7.4.2), of SORT and THREAD
/// (RFC 5256), and those Thunderbird (`From To Cc Bcc Subject Date Message-ID Priority
/// X-Priority References Newsgroups In-Reply-To Content-Type Reply-To`) and K-9 Mail
/// (adding `X-K9mail-Identity` and `Chat-Version`) fetch for their message lists, with
/// the list fields mail clients show.
const CACHED: [&str; 20] = [
    "Date",
    "Subject",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "In-Reply-To",
    "Message-ID",
    "References",
    "Content-Type",
    "List-Id",
    "List-Post",
    "Priority",
    "X-Priority",
    "Importance",
    "Newsgroups",
    "X-K9mail-Identity",
    "Chat-Version",
];

/// True if the cache keeps the field called `name`.
pub(super) fn is_cached(name: &str) -> bool {
    CACHED
        .iter()
        .any(|cached| cached.eq_ignore_ascii_case(name))
}

/// A header section as read from a message file.
pub(super) struct HeaderSection {
    /// Up to and with the blank line; the whole file when it has none.
    pub(super) bytes: Vec<u8>,
    /// False when the section was longer than [`MAX_HEADER`] and has been cut after its
    /// last whole line (and given a blank line): answers from it may differ from the
    /// message's.
    pub(super) whole: bool,
}

/// The header section of an open message file, read a chunk at a time up to its blank
/// line.
pub(super) fn read_header(file: &File) -> io::Result<HeaderSection> {
    let mut header = Vec::new();
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        let scanned = header.len();
        let n = file.read_at(&mut chunk, scanned as u64)?;
        header.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = posthorn_proto::headers::section_end_from(&header, scanned) {
            header.truncate(end);
            return Ok(HeaderSection {
                bytes: header,
                whole: true,
            });
        }
        if n == 0 {
            return Ok(HeaderSection {
                bytes: header,
                whole: true,
            });
        }
        if header.len() >= MAX_HEADER {
            header.truncate(MAX_HEADER);
            let end = header
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            header.truncate(end);
            header.extend_from_slice(b"\r\n");
            return Ok(HeaderSection {
                bytes: header,
                whole: false,
            });
        }
    }
}

/// The cached fields of the message `m`, as stored and in order, with a blank line after
/// them: a header section mail-parser reads as it reads the message's for these fields.
/// Taken from the cache, or else from the file and then cached; while the cache keeps
/// nothing (a large one not read yet) the whole header section. None if the message has
/// been expunged.
pub(super) fn cached(view: &View, m: &Message) -> io::Result<Option<Vec<u8>>> {
    if let Some(hit) = view.cache.get(m.uid, m.base())
        && let Some(record) = Record::split(&hit)
    {
        return Ok(Some(record.fields.to_vec()));
    }
    let Some(header) = header(view, m)? else {
        return Ok(None);
    };
    // Not to be kept: the whole header answers the same, without picking fields.
    if !view.cache.is_read() {
        return Ok(Some(header));
    }
    let (fields, record) = record_of(&header);
    view.cache.put(m.uid, m.base(), &record);
    Ok(Some(fields))
}

/// Caches the message `uid` ([`NO_UID`] when it has none yet) with base name `base` in
/// the folder at `dir`, without reading the cache file: for APPEND and local delivery,
/// which have the message in hand. `content` is the message (`whole`) or its start;
/// nothing is cached unless it holds the whole header section.
///
/// [`NO_UID`]: posthorn_maildir::store::cache::NO_UID
pub fn fill(dir: &Path, uid: u32, base: &str, content: &[u8], whole: bool) {
    let header = match posthorn_proto::headers::section_end_from(content, 0) {
        Some(end) => content.get(..end).unwrap_or(content),
        // As [`read_header`] reads a message without a blank line: all of it.
        None if whole => content,
        None => return,
    };
    HeaderCache::add(dir, uid, base, &record_of(header).1);
}

/// The cached fields of a header section and the cache record of them (the fields and
/// their folded search texts, see [`super::folded`]), from one parse of it.
fn record_of(header: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let message = parse(header);
    let root = Node::root(&message);
    let fields = root.map_or_else(
        || b"\r\n".to_vec(),
        |root| header_fields(root, &CACHED, false),
    );
    let record = folded::record(root, &fields);
    (fields, record)
}

/// The lines of the fields called `names` in `fields` (raw header lines, as the cache
/// keeps them), continuation lines included, then the blank line: a SEARCH on Subject
/// then parses one field per message rather than every cached one.
pub(super) fn pick(fields: &[u8], names: &[&str]) -> Vec<u8> {
    let mut picked = Vec::new();
    let mut keep = false;
    for line in fields.split_inclusive(|b| *b == b'\n') {
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|b| *b == b':').next().unwrap_or_default();
            keep = line.contains(&b':')
                && names.iter().any(|wanted| {
                    wanted
                        .as_bytes()
                        .eq_ignore_ascii_case(name.trim_ascii_end())
                });
        }
        if keep {
            picked.extend_from_slice(line);
        }
    }
    picked.extend_from_slice(b"\r\n");
    picked
}

/// The header section of the message `m`, or the whole message when its header is too
/// large to read alone. None if the message has been expunged.
pub(super) fn header(view: &View, m: &Message) -> io::Result<Option<Vec<u8>>> {
    let Some(file) = view.folder.open(&m.file)? else {
        return Ok(None);
    };
    let section = read_header(&file)?;
    if section.whole {
        return Ok(Some(section.bytes));
    }
    view.folder.read(&m.file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::{SearchKey, Section, SectionText};
    use crate::imap::message::{Parsed, section};
    use crate::imap::search::{Candidate, matches};
    use posthorn_maildir::store::Flags;

    /// Messages whose cached answers must be the message's, octet for octet.
    const MESSAGES: [&[u8]; 9] = [
        b"From: Alice <alice@example.org>\r\nX-Other: between\r\nTo: Team: bob@example.org,\r\n \
          =?utf-8?q?J=C3=BCrgen?= <juergen@example.net>;\r\nCc: carol@example.com\r\n\
          Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the\r\n\tlake\r\n\
          Date: Mon, 31 Dec 2018 23:30:00 -0500\r\nMessage-ID: <unique@example.org>\r\n\
          References: <a@x>\r\n <b@x>\r\nIn-Reply-To: <b@x>\r\nX-Priority: 1\r\n\
          Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nbody\r\n--b--\r\n",
        b"Subject: no addresses at all\r\n\r\nbody\r\n",
        b"From: \xc3\x9cml\xc3\xa4ut <u@example.org>\r\nSubject: 8-bit \xc3\xa9t\xc3\xa9\r\n\
          Reply-To: group:;, other: (comment) ;\r\nSender:\r\n\r\nbody\r\n",
        b"Subject: first\r\nSubject: second\r\nFrom: a@example.org\r\nFrom: b@example.org\r\n\r\n",
        b"From: lf@example.org\nSubject: bare\n line feeds\nTo: x@example.org\n\nbody\n",
        b"no header at all, just text\r\n",
        b"\r\nbody after an empty header\r\n",
        b"Subject: no body and no blank line\r\nFrom: a@example.org\r\n",
        b"Content-Type: message/rfc822\r\nSubject: outer\r\n\r\nSubject: inner\r\nFrom: i@x\r\n\r\nx\r\n",
    ];

    fn fields(names: &[&str], not: bool) -> Section {
        Section {
            part: Vec::new(),
            text: Some(SectionText::HeaderFields {
                not,
                fields: names.iter().map(|name| name.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn cached_fields_answer_as_the_message_does() {
        let thunderbird = [
            "From",
            "To",
            "Cc",
            "Bcc",
            "Subject",
            "Date",
            "Message-ID",
            "Priority",
            "X-Priority",
            "References",
            "Newsgroups",
            "In-Reply-To",
            "Content-Type",
            "Reply-To",
        ];
        assert!(thunderbird.iter().all(|name| is_cached(name)));
        let k9 = [
            "date",
            "subject",
            "from",
            "content-type",
            "to",
            "cc",
            "reply-to",
        ];
        for raw in MESSAGES {
            let cached = record_of(raw).0;
            let shown = String::from_utf8_lossy(raw);
            assert_eq!(
                Parsed::new(&cached).envelope(),
                Parsed::new(raw).envelope(),
                "{shown}"
            );
            for names in [&thunderbird[..], &k9[..], &["SUBJECT"][..], &["X-Priority"]] {
                let wanted = fields(names, false);
                assert_eq!(
                    section(&cached, &wanted),
                    section(raw, &wanted),
                    "{names:?} of {shown}"
                );
            }
        }
    }

    #[test]
    fn the_header_section_alone_answers_as_the_message_does() {
        let dir = tempfile::tempdir().unwrap();
        for (i, raw) in MESSAGES.iter().enumerate() {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, raw).unwrap();
            let header = read_header(&File::open(&path).unwrap()).unwrap();
            assert!(header.whole);
            for wanted in [
                fields(&["Subject", "X-Other"], false),
                fields(&["Subject"], true),
                Section {
                    part: Vec::new(),
                    text: Some(SectionText::Header),
                },
            ] {
                assert_eq!(section(&header.bytes, &wanted), section(raw, &wanted));
            }
            assert_eq!(
                Parsed::new(&header.bytes).envelope(),
                Parsed::new(raw).envelope()
            );
        }
    }

    /// Message 1 of 1 with `flags`, as a SEARCH sees it.
    fn candidate(flags: &Flags) -> Candidate<'_> {
        Candidate {
            seq: 1,
            uid: 1,
            flags,
            recent: false,
            internal_date: 0,
            size: 1,
            modseq: 1,
            last_seq: 1,
            last_uid: 1,
        }
    }

    #[test]
    fn header_search_keys_match_the_cached_fields_as_the_message() {
        let flags = Flags::default();
        let candidate = candidate(&flags);
        let keys = [
            ("SUBJECT", "grüße"),
            ("SUBJECT", "from the lake"),
            ("SUBJECT", "ÉTÉ"),
            ("SUBJECT", "second"),
            ("FROM", "ümläut"),
            ("FROM", "b@example"),
            ("TO", "jürgen"),
            ("TO", "team"),
            ("REPLY-TO", "group"),
            ("CC", ""),
            ("BCC", ""),
            ("SENDER", ""),
            ("REFERENCES", "<b@x>"),
        ];
        for raw in MESSAGES {
            let cached = record_of(raw).0;
            for (name, value) in keys {
                let key = SearchKey::Header(name.into(), value.into());
                let expected = matches(&key, &candidate, Some(raw));
                // The cached fields, and the one field picked out of them as SEARCH does.
                for fields in [cached.clone(), pick(&cached, &[name])] {
                    assert_eq!(
                        matches(&key, &candidate, Some(&fields)),
                        expected,
                        "{name} {value} in {}",
                        String::from_utf8_lossy(raw)
                    );
                }
            }
        }
    }

    #[test]
    fn folded_fields_answer_search_keys_as_the_message() {
        let mut flags = Flags::default();
        flags.insert(&crate::imap::command::Flag::Seen);
        let candidate = candidate(&flags);
        let header = |name: &str, value: &str| SearchKey::Header(name.into(), value.into());
        let mut keys: Vec<SearchKey> = [
            ("SUBJECT", "grüße"),
            ("SUBJECT", "GRÜSSE"),
            ("SUBJECT", "=?utf-8?q?gr"),
            ("Subject", "from the lake"),
            ("SUBJECT", "ÉTÉ"),
            ("SUBJECT", "first"),
            ("SUBJECT", "second"),
            ("SUBJECT", "bare line feeds"),
            ("SUBJECT", ""),
            ("FROM", "ümläut"),
            ("FROM", "Alice <alice@"),
            ("FROM", "b@example"),
            ("FROM", ""),
            ("TO", "jürgen <juergen"),
            ("TO", "team"),
            ("TO", "x@example.org"),
            ("CC", ""),
            ("CC", "CAROL"),
            ("BCC", ""),
            ("SUBJECT", "inner"),
        ]
        .iter()
        .map(|(name, value)| header(name, value))
        .collect();
        keys.push(SearchKey::Not(Box::new(header("FROM", "alice"))));
        keys.push(SearchKey::Or(
            Box::new(header("TO", "team")),
            Box::new(header("SUBJECT", "bare")),
        ));
        keys.push(SearchKey::And(vec![
            SearchKey::Flag(crate::imap::command::Flag::Seen),
            header("SUBJECT", "no"),
        ]));
        for raw in MESSAGES {
            let (_, bytes) = record_of(raw);
            let record = Record::split(&bytes).unwrap();
            for key in &keys {
                let plan = folded::Plan::new(key).unwrap();
                assert_eq!(
                    plan.matches(&candidate, &record),
                    matches(key, &candidate, Some(raw)),
                    "{key:?} in {}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
        for other in [
            header("REPLY-TO", "group"),
            SearchKey::SentOn(crate::imap::command::Date {
                year: 2019,
                month: 1,
                day: 1,
            }),
            SearchKey::Body("x".into()),
        ] {
            assert!(folded::Plan::new(&other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn a_header_is_read_up_to_its_blank_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut body = b"Subject: x\r\nFrom: a@b\r\n\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'y', 1_000_000));
        std::fs::write(&path, &body).unwrap();
        let header = read_header(&File::open(&path).unwrap()).unwrap();
        assert!(header.whole);
        assert_eq!(header.bytes, b"Subject: x\r\nFrom: a@b\r\n\r\n");
    }

    #[test]
    fn a_header_without_end_is_cut_at_a_line_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut body = Vec::new();
        while body.len() < 2 * MAX_HEADER {
            body.extend_from_slice(b"X-Long: 0123456789\r\n");
        }
        std::fs::write(&path, &body).unwrap();
        let header = read_header(&File::open(&path).unwrap()).unwrap();
        assert!(!header.whole);
        assert!(header.bytes.len() <= MAX_HEADER + 2);
        assert!(header.bytes.ends_with(b"0123456789\r\n\r\n"));
    }
}
