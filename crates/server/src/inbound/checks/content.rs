//! Content inspection (`posthorn_inspect`) as symbols.

use super::symbols::{Scores, Symbol};

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

/// Inspects `content`.
pub fn inspect(
    _content: &[u8],
    _local_domains: &[String],
    _smtputf8: bool,
    _scores: &Scores,
) -> Report {
    Report::default()
}

/// The content symbols.
pub fn symbols() -> impl Iterator<Item = &'static str> {
    std::iter::empty()
}

/// True for a format symbol.
pub fn is_format_symbol(_name: &str) -> bool {
    false
}

/// What content symbol `name` means.
pub fn describe(_name: &str) -> Option<&'static str> {
    None
}
