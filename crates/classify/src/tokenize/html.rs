//! HTML bodies: the visible text (tags removed, entities decoded, comments and scripts
//! dropped) plus a token per tag name and the hosts of link and image URLs. Inline tags
//! and comments are removed without a space, so "V<!-- -->iag<b>ra</b>" reads "Viagra".

use crate::features::Sink;
use crate::hash::TokenHash;
use crate::tokenize::{kind, url};

/// Tag names that do not break a word when removed.
const INLINE: [&[u8]; 12] = [
    b"a", b"b", b"i", b"u", b"em", b"font", b"span", b"strong", b"small", b"big", b"sub", b"sup",
];

/// Attributes whose value is a URL whose host is a feature.
const URL_ATTRIBUTES: [&[u8]; 4] = [b"href", b"src", b"action", b"background"];

/// Returns the visible text of `html`, emitting tag and URL tokens on the way.
pub(crate) fn text(html: &str, sink: &mut Sink) -> String {
    let bytes = html.as_bytes();
    let mut text = Vec::with_capacity(bytes.len() / 2);
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'<' || b == b'&') {
        text.extend_from_slice(&bytes[at..at + offset]);
        at += offset;
        if bytes[at] == b'&' {
            at += entity(&bytes[at..], &mut text);
        } else {
            at += tag(&bytes[at..], &mut text, sink);
        }
    }
    text.extend_from_slice(&bytes[at..]);
    // Only whole UTF-8 sequences were copied or pushed, so this never replaces anything
    // that was valid in `html`.
    String::from_utf8_lossy(&text).into_owned()
}

/// Handles a tag (or comment) at the start of `rest`; returns the bytes consumed.
fn tag(rest: &[u8], text: &mut Vec<u8>, sink: &mut Sink) -> usize {
    if rest.starts_with(b"<!--") {
        return find(rest, b"-->").map_or(rest.len(), |end| end + 3);
    }
    let end = rest
        .iter()
        .position(|&b| b == b'>')
        .map_or(rest.len(), |end| end + 1);
    let inside = &rest[1..end.saturating_sub(1).max(1)];
    let name_start = usize::from(inside.first() == Some(&b'/'));
    let name_len = inside[name_start..]
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(inside.len() - name_start);
    let name: Vec<u8> = inside[name_start..name_start + name_len.min(16)]
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect();
    if name.is_empty() {
        // Not a tag ("a < b"): keep the '<' as text.
        text.push(b'<');
        return 1;
    }
    sink.push(TokenHash::new(kind::HTML_TAG).bytes(&name).finish());
    if !INLINE.contains(&name.as_slice()) {
        text.push(b' ');
    }
    if name_start == 0 {
        attributes(&inside[name_len..], sink);
        if name == b"script" || name == b"style" {
            let close: &[u8] = if name == b"script" {
                b"</script"
            } else {
                b"</style"
            };
            return end + find_ignore_case(&rest[end..], close).unwrap_or(rest.len() - end);
        }
    }
    end
}

/// Emits the URL host tokens of the URL attributes in a tag's attribute text.
fn attributes(mut rest: &[u8], sink: &mut Sink) {
    while let Some(eq) = rest.iter().position(|&b| b == b'=') {
        let name_end = rest[..eq]
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let name_start = rest[..name_end]
            .iter()
            .rposition(|b| b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let name = &rest[name_start..name_end];
        let value = rest[eq + 1..].trim_ascii_start();
        let (value, next) = match value.first() {
            Some(&quote @ (b'"' | b'\'')) => {
                let close = value[1..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(value.len(), |i| i + 1);
                (&value[1..close], &value[close.min(value.len())..])
            }
            _ => {
                let close = value
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .unwrap_or(value.len());
                (&value[..close], &value[close..])
            }
        };
        if URL_ATTRIBUTES.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            url::attribute(value, sink);
        }
        rest = next.get(1..).unwrap_or_default();
    }
}

/// Decodes the character reference at the start of `rest` into `text`; returns the
/// bytes consumed (1 if it is not a reference: the '&' is kept).
fn entity(rest: &[u8], text: &mut Vec<u8>) -> usize {
    let Some(semi) = rest.iter().take(10).position(|&b| b == b';') else {
        text.push(b'&');
        return 1;
    };
    let name = &rest[1..semi];
    let decoded = match name {
        b"nbsp" => Some(' '),
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        [b'#', b'x' | b'X', hex @ ..] => number(hex, 16),
        [b'#', decimal @ ..] => number(decimal, 10),
        _ => None,
    };
    match decoded {
        Some(c) => {
            let mut buffer = [0u8; 4];
            text.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            semi + 1
        }
        None => {
            text.push(b'&');
            1
        }
    }
}

/// The character of a numeric reference, if valid.
fn number(digits: &[u8], radix: u32) -> Option<char> {
    let digits = std::str::from_utf8(digits).ok()?;
    char::from_u32(u32::from_str_radix(digits, radix).ok()?)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}
