//! URL hosts, from text and from HTML attributes. The host is what a spammer cannot
//! vary freely (it must resolve to their server), so it is a strong feature; the
//! registrable-looking tail (last two labels) groups a spammer's throwaway subdomains.

use crate::features::Sink;
use crate::hash::TokenHash;
use crate::tokenize::kind;

/// At most this many URLs are taken from one text.
const MAX_URLS: usize = 64;

/// Finds `http://`, `https://` and `www.` URLs in `text` and emits their host tokens.
pub(crate) fn scan(text: &str, sink: &mut Sink) {
    let bytes = text.as_bytes();
    let mut found = 0;
    let mut at = 0;
    while at < bytes.len() && found < MAX_URLS {
        let Some(offset) = bytes[at..]
            .iter()
            .position(|&b| b == b'h' || b == b'H' || b == b'w' || b == b'W')
        else {
            return;
        };
        let start = at + offset;
        let rest = &bytes[start..];
        let skip = if starts_with_ignore_case(rest, b"https://") {
            8
        } else if starts_with_ignore_case(rest, b"http://") {
            7
        } else if starts_with_ignore_case(rest, b"www.") {
            0
        } else {
            at = start + 1;
            continue;
        };
        let host_end = host(&rest[skip..], sink);
        found += 1;
        at = start + skip + host_end.max(1);
    }
}

/// Emits the host tokens of `url` (an attribute value: absolute, or relative and then
/// without host).
pub(crate) fn attribute(url: &[u8], sink: &mut Sink) {
    let url = trim_ascii(url);
    for scheme in [&b"https://"[..], b"http://", b"//"] {
        if starts_with_ignore_case(url, scheme) {
            host(&url[scheme.len()..], sink);
            return;
        }
    }
    if starts_with_ignore_case(url, b"mailto:") {
        sink.push(TokenHash::new(kind::URL_HOST).bytes(b"mailto:").finish());
    }
}

/// Emits tokens of the host at the start of `rest` (after the scheme); returns its length.
fn host(rest: &[u8], sink: &mut Sink) -> usize {
    let end = rest
        .iter()
        .position(|&b| {
            matches!(
                b,
                b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b')' | b'(' | b'\\'
            ) || b.is_ascii_whitespace()
        })
        .unwrap_or(rest.len());
    let mut authority = &rest[..end.min(256)];
    if let Some(at) = authority.iter().rposition(|&b| b == b'@') {
        // "http://bank.example@evil.test/" hides the real host after userinfo.
        sink.push(TokenHash::new(kind::URL_HOST).bytes(b"@userinfo").finish());
        authority = &authority[at + 1..];
    }
    let host = match authority.iter().position(|&b| b == b':') {
        Some(colon) => &authority[..colon],
        None => authority,
    };
    let host: Vec<u8> = host.iter().map(u8::to_ascii_lowercase).collect();
    let host = host.strip_suffix(b".").unwrap_or(&host);
    if host.is_empty() {
        return end;
    }
    if host.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        sink.push(TokenHash::new(kind::URL_HOST).bytes(b"@ip").finish());
    }
    sink.push(TokenHash::new(kind::URL_HOST).bytes(host).finish());
    sink.push(
        TokenHash::new(kind::URL_DOMAIN)
            .bytes(tail_labels(host, 2))
            .finish(),
    );
    end
}

/// The last `count` dot-separated labels of `host`.
pub(crate) fn tail_labels(host: &[u8], count: usize) -> &[u8] {
    let mut dots = 0;
    for (i, &b) in host.iter().enumerate().rev() {
        if b == b'.' {
            dots += 1;
            if dots == count {
                return &host[i + 1..];
            }
        }
    }
    host
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.trim_ascii();
    bytes
        .strip_prefix(b"\"")
        .or_else(|| bytes.strip_prefix(b"'"))
        .unwrap_or(bytes)
}
