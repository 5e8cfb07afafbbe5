//! Content inspection (`posthorn_inspect`: format, MIME structure, attachments, archives,
//! links) as scored symbols. The built-in scores follow rspamd's and SpamAssassin's
//! weights for the same findings: a formatting slip costs a point or two, a dangerous
//! attachment or a look-alike of our own domain is enough for Junk on its own, and only
//! the sum of several findings, a DNS list or a hard error refuses a message.

use posthorn_inspect::{Context, Limits};

use super::symbols::{Scores, Symbol};

/// Link domains handed to the DNS lists at most, per message.
const MAX_URL_DOMAINS: usize = 20;

/// Built-in score of every content symbol.
pub const SCORES: &[(&str, f64)] = &[
    ("MISSING_FROM", 2.0),
    ("MISSING_DATE", 1.0),
    ("MISSING_MESSAGE_ID", 0.5),
    ("MISSING_RECIPIENTS", 1.0),
    ("MISSING_SUBJECT", 1.0),
    ("DUPLICATE_HEADER", 3.0),
    ("FROM_UNPARSABLE", 3.0),
    ("FROM_MULTIPLE_NO_SENDER", 2.0),
    ("TO_UNPARSABLE", 1.0),
    ("HEADER_LINE_TOO_LONG", 2.0),
    ("HEADER_8BIT_NO_SMTPUTF8", 1.0),
    ("HEADER_INVALID_UTF8", 1.5),
    ("DATE_UNPARSABLE", 1.5),
    ("DATE_IN_FUTURE", 2.0),
    ("DATE_IN_PAST", 1.0),
    ("MIME_MISSING_VERSION", 0.5),
    ("MIME_NO_BOUNDARY", 2.0),
    ("MIME_BOUNDARY_NOT_FOUND", 2.0),
    ("MIME_NO_CLOSING_BOUNDARY", 0.5),
    ("MIME_BAD_BASE64", 1.0),
    ("MIME_BAD_QP", 0.5),
    ("MIME_UNKNOWN_CTE", 1.0),
    // Whatever lies beyond the limits is not inspected: enough for Junk on its own, so
    // nothing can be hidden behind a thousand empty parts.
    ("MIME_TOO_DEEP", 7.0),
    ("MIME_TOO_MANY_PARTS", 7.0),
    // The stage's FROM_LOCAL_UNAUTHENTICATED scores a From in our domains that no
    // signature of ours proves; being in our domain is no fault by itself.
    ("FROM_LOCAL_DOMAIN", 0.0),
    ("FROM_LOOKALIKE_LOCAL", 6.0),
    ("FROM_NAME_HAS_ADDRESS", 2.0),
    ("FROM_NAME_LOCAL_ADDRESS", 6.0),
    ("ATTACH_DANGEROUS_NAME", 8.0),
    ("ATTACH_DOUBLE_EXTENSION", 8.0),
    ("ATTACH_BIDI_NAME", 8.0),
    ("ATTACH_EXECUTABLE", 8.0),
    ("ATTACH_SCRIPT", 4.0),
    ("ATTACH_SHORTCUT", 8.0),
    ("ATTACH_DISK_IMAGE", 4.0),
    ("ATTACH_HTML", 1.0),
    ("OFFICE_MACRO", 5.0),
    ("HTML_PASSWORD_FORM", 4.0),
    ("ARCHIVE_ENCRYPTED", 3.0),
    ("ARCHIVE_NESTED", 1.0),
    ("ARCHIVE_TOO_DEEP", 3.0),
    ("ARCHIVE_BOMB", 8.0),
    ("ARCHIVE_TOO_MANY_ENTRIES", 2.0),
    ("ARCHIVE_UNCHECKED", 1.0),
    ("ARCHIVE_UNLISTABLE", 0.5),
    ("PHISH_LINK_MISMATCH", 4.0),
    ("URL_BARE_IP", 2.0),
    ("URL_LOOKALIKE_LOCAL", 6.0),
    ("URL_MIXED_SCRIPT", 3.0),
    ("URL_TOO_MANY", 0.5),
];

/// What inspecting the content found.
#[derive(Debug, Default)]
pub struct Report {
    /// Its symbols.
    pub symbols: Vec<Symbol>,
    /// Domains of links, for the DNS lists.
    pub url_domains: Vec<String>,
}

impl Report {
    /// A report of one symbol.
    pub fn with(symbol: Symbol) -> Report {
        Report {
            symbols: vec![symbol],
            url_domains: Vec::new(),
        }
    }
}

/// Inspects `content`: one symbol per finding name, its details joined.
pub fn inspect(
    content: &[u8],
    local_domains: &[String],
    smtputf8: bool,
    scores: &Scores,
) -> Report {
    let context = Context {
        local_domains,
        smtputf8,
        now: i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX),
        limits: Limits {
            max_urls: MAX_URL_DOMAINS,
            ..Limits::default()
        },
    };
    let report = posthorn_inspect::inspect(content, &context);
    let mut symbols: Vec<Symbol> = Vec::new();
    for finding in report.findings {
        match symbols.iter_mut().find(|s| s.name == finding.symbol) {
            Some(symbol) => {
                if !finding.detail.is_empty() {
                    if !symbol.detail.is_empty() {
                        symbol.detail.push_str(", ");
                    }
                    symbol.detail.push_str(&finding.detail);
                }
            }
            None => symbols.push(scores.symbol(finding.symbol, finding.detail)),
        }
    }
    Report {
        symbols,
        url_domains: report.url_domains,
    }
}

/// The content symbols.
pub fn symbols() -> impl Iterator<Item = &'static str> {
    posthorn_inspect::SYMBOLS.iter().map(|s| s.name)
}

/// True for a format symbol, refused with `550 5.6.0` when it is a hard error.
pub fn is_format_symbol(name: &str) -> bool {
    posthorn_inspect::symbol(name).is_some_and(|s| s.format_error)
}

/// What content symbol `name` means.
pub fn describe(name: &str) -> Option<&'static str> {
    posthorn_inspect::symbol(name).map(|s| s.description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Checks;

    #[test]
    fn every_content_symbol_has_exactly_one_score() {
        for name in symbols() {
            let entries = SCORES.iter().filter(|(n, _)| *n == name).count();
            assert_eq!(entries, 1, "{name}");
        }
        for (name, _) in SCORES {
            assert!(
                posthorn_inspect::symbol(name).is_some(),
                "{name} is no symbol"
            );
        }
    }

    #[test]
    fn findings_of_one_name_are_one_symbol() {
        let message = b"From: a@far.test\r\nTo: b@ours.test\r\nSubject: s\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\nMessage-ID: <1@far.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=\"a.exe\"\r\n\r\nx\r\n--b\r\nContent-Type: application/octet-stream; name=\"b.scr\"\r\n\r\ny\r\n--b--\r\n";
        let scores = Scores::new(&Checks::default());
        let report = inspect(message, &["ours.test".to_string()], false, &scores);
        let dangerous: Vec<&Symbol> = report
            .symbols
            .iter()
            .filter(|s| s.name == "ATTACH_DANGEROUS_NAME")
            .collect();
        assert_eq!(dangerous.len(), 1, "{:?}", report.symbols);
        assert!(dangerous[0].detail.contains("a.exe") && dangerous[0].detail.contains("b.scr"));
        assert_eq!(dangerous[0].score, 8.0);
    }
}
