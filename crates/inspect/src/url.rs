//! URLs: finding them in text, taking their host (RFC 3986 §3.2.2), and telling names from IP
//! literals, including the forms browsers accept (`http://3232235777/`, `0x7f.1`).

use std::net::Ipv4Addr;

use memchr::memmem;

/// The host of an absolute `http`/`https` URL (or a `www.` link without a scheme),
/// lower-cased, without a trailing dot; `None` for other schemes or no host.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = match url.find("://") {
        Some(i) if matches!(url[..i].to_ascii_lowercase().as_str(), "http" | "https") => {
            &url[i + 3..]
        }
        Some(_) => return None,
        None if url.len() > 4 && url[..4].eq_ignore_ascii_case("www.") => url,
        None => return None,
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let host = host.trim_end_matches('.').to_lowercase();
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some(host)
}

/// Whether `host` is an IP literal rather than a name: IPv6, dotted IPv4, or the numeric
/// forms (one to four parts, decimal, octal or hex) that WHATWG URL parsing turns into IPv4.
pub(crate) fn is_ip(host: &str) -> bool {
    if host.contains(':') || host.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() <= 4 && parts.iter().all(|p| is_number(p))
}

fn is_number(part: &str) -> bool {
    match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// URL-like tokens in plain text: from `http://`, `https://` or a word starting `www.` up to
/// the next space or delimiter. A match inside the previous token of its kind is part of
/// it, so each pass reads each octet at most twice.
pub(crate) fn find_in_text(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut covered = 0;
    for start in memmem::find_iter(bytes, b"://") {
        let scheme_start = start.saturating_sub(5);
        let scheme_start = (scheme_start..start)
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(start);
        let scheme = &text[scheme_start..start];
        let scheme_start = start - scheme.len()
            + scheme
                .rfind(|c: char| !c.is_ascii_alphabetic())
                .map_or(0, |i| i + 1);
        if scheme_start >= covered
            && matches!(
                text[scheme_start..start].to_ascii_lowercase().as_str(),
                "http" | "https"
            )
        {
            let token = token_from(text, scheme_start);
            covered = scheme_start + token.len().max(1);
            found.push(token);
        }
    }
    covered = 0;
    let lower = text.to_ascii_lowercase();
    for start in memmem::find_iter(lower.as_bytes(), b"www.") {
        let after_word_break = start == 0
            || !matches!(bytes[start - 1], b'/' | b'.' | b'@')
                && !bytes[start - 1].is_ascii_alphanumeric();
        if after_word_break && start >= covered {
            let token = token_from(text, start);
            covered = start + token.len().max(1);
            found.push(token);
        }
    }
    found
}

/// Longest URL token taken from text; bounds the work per match, so a text of nothing but
/// `http://http://...` stays linear.
const MAX_URL_LEN: usize = 2048;

fn token_from(text: &str, start: usize) -> &str {
    let mut limit = (start + MAX_URL_LEN).min(text.len());
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    let window = &text[start..limit];
    let end = window
        .find(|c: char| c.is_whitespace() || "<>\"'()[]{}|^`".contains(c))
        .unwrap_or(window.len());
    window[..end].trim_end_matches(['.', ',', ';', ':', '!', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            host_of("https://user:pw@WWW.Example.com.:8080/x?y").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            host_of("http://[2001:db8::1]/").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            host_of("www.example.org/path").as_deref(),
            Some("www.example.org")
        );
        assert_eq!(host_of("mailto:a@b.example"), None);
        assert_eq!(host_of("javascript:alert(1)"), None);
        assert_eq!(host_of("/relative"), None);
    }

    #[test]
    fn ip_literals() {
        for ip in [
            "192.0.2.1",
            "3232235777",
            "0x7f.1",
            "2001:db8::1",
            "0300.0250.0.1",
        ] {
            assert!(is_ip(ip), "{ip}");
        }
        for name in ["example.com", "1.example", "a1b2.c3", ""] {
            assert!(!is_ip(name), "{name}");
        }
    }

    #[test]
    fn urls_in_text() {
        let text = "See https://a.example/x, www.b.example. and (http://c.example) not xwww.d.example or ftp://e.example";
        assert_eq!(
            find_in_text(text),
            ["https://a.example/x", "http://c.example", "www.b.example"]
        );
    }
}
