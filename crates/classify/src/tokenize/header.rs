//! Header tokens: each field's name, and the words of its value prefixed by that name
//! (a host in `Received` is not the same evidence as the same host in `From`). Dates and
//! Message-IDs also give their shape, since spamware formats them its own way.

use mail_parser::Header;

use crate::features::{Family, Sink};
use crate::hash::{self, TokenHash};
use crate::tokenize::{kind, url, words};

/// At most this many header fields of one header section are read.
const MAX_FIELDS: usize = 128;

/// At most this many bytes of one field's value are read.
const MAX_VALUE: usize = 2048;

/// At most this many words of one field's value are taken.
const MAX_WORDS: usize = 48;

/// Fields added by spam filters (ours included) and virus scanners: a verdict must never
/// become evidence for itself, and another filter's opinion is not in every message.
const IGNORED_PREFIXES: [&str; 8] = [
    "x-spam",
    "x-posthorn",
    "x-virus",
    "x-rspamd",
    "x-dspam",
    "x-bogosity",
    "x-crm114",
    "x-spambayes",
];

/// Emits the tokens of one header section; `raw` is the message the offsets point into.
pub(crate) fn section(headers: &[Header<'_>], raw: &[u8], sink: &mut Sink) {
    let outer = sink.family(Family::Header);
    fields(headers, raw, sink);
    sink.family(outer);
}

/// The tokens of each field of a header section.
fn fields(headers: &[Header<'_>], raw: &[u8], sink: &mut Sink) {
    let mut lower = String::new();
    for header in headers.iter().take(MAX_FIELDS) {
        let name = header.name.as_str();
        let name = &name[..name.floor_char_boundary(64)];
        lower.clear();
        lower.push_str(name);
        lower.make_ascii_lowercase();
        if IGNORED_PREFIXES
            .iter()
            .any(|prefix| lower.starts_with(prefix))
        {
            continue;
        }
        sink.push(
            TokenHash::new(kind::HEADER_NAME)
                .bytes(lower.as_bytes())
                .finish(),
        );
        let start = header.offset_start as usize;
        let end = (header.offset_end as usize).min(start.saturating_add(MAX_VALUE));
        let value = raw.get(start..end).unwrap_or_default();
        let value = String::from_utf8_lossy(value);
        let field = hash::of_bytes(kind::HEADER_VALUE, lower.as_bytes());
        match lower.as_str() {
            "subject" => {
                let decoded = header.value.as_text().unwrap_or(&value);
                // What the sender wrote, not how the mail travelled.
                let outer = sink.family(Family::Content);
                words::text(kind::SUBJECT, decoded, sink);
                sink.family(outer);
            }
            "date" => shape(field, value.trim(), sink),
            "message-id" => {
                let id = value.trim().trim_matches(|c| c == '<' || c == '>');
                let (local, domain) = id.rsplit_once('@').unwrap_or((id, ""));
                shape(field, local, sink);
                sink.push(
                    TokenHash::new(field)
                        .bytes(b"@")
                        .bytes(domain.to_ascii_lowercase().as_bytes())
                        .finish(),
                );
            }
            _ => {}
        }
        value_words(field, &value, sink, &mut lower);
    }
}

/// Emits the words of a field value under the field's seed: addresses, hosts, IPv4
/// addresses (and their /24), each with its domain or network as a second token.
fn value_words(field: u64, value: &str, sink: &mut Sink, lower: &mut String) {
    let is_separator = |c: char| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '$'));
    for word in value
        .split(is_separator)
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
    {
        if word.len() > 40 {
            continue;
        }
        let token = words::lowercase_hash(field, word, lower);
        sink.push(token);
        let bytes = lower.as_bytes();
        if let Some(at) = bytes.iter().position(|&b| b == b'@') {
            sink.push(
                TokenHash::new(field)
                    .bytes(b"@")
                    .bytes(&bytes[at + 1..])
                    .finish(),
            );
        } else if bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
            if let Some(dot) = bytes.iter().rposition(|&b| b == b'.') {
                sink.push(
                    TokenHash::new(field)
                        .bytes(b"net")
                        .bytes(&bytes[..dot])
                        .finish(),
                );
            }
        } else if bytes.contains(&b'.') {
            sink.push(
                TokenHash::new(field)
                    .bytes(b"@")
                    .bytes(url::tail_labels(bytes, 2))
                    .finish(),
            );
        }
    }
}

/// Emits the shape of a value: digits as `9`, letters as `a`/`A`, the rest as is
/// ("Wed, 09 Oct 2002" becomes "Aaa, 99 Aaa 9999").
fn shape(field: u64, value: &str, sink: &mut Sink) {
    let shape: Vec<u8> = value
        .bytes()
        .take(64)
        .map(|b| match b {
            b'0'..=b'9' => b'9',
            b'a'..=b'z' => b'a',
            b'A'..=b'Z' => b'A',
            other => other,
        })
        .collect();
    sink.push(
        TokenHash::new(kind::HEADER_SHAPE)
            .bytes(&field.to_le_bytes())
            .bytes(&shape)
            .finish(),
    );
}
