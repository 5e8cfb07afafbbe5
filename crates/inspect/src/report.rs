//! What an inspection found. Findings are deduplicated and capped per symbol, so a message
//! with ten thousand bad parts yields a handful of findings, not ten thousand.

use std::collections::HashSet;

/// How many findings (distinct details) one symbol keeps; the server scores a symbol once,
/// the details only explain it.
const MAX_FINDINGS_PER_SYMBOL: usize = 8;

/// The longest detail kept, in characters; details quote peer-controlled text.
const MAX_DETAIL_CHARS: usize = 200;

/// One symbol with what triggered it, e.g. `("ATTACH_DOUBLE_EXTENSION", "invoice.pdf.exe")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub symbol: &'static str,
    pub detail: String,
}

/// The result of [`crate::inspect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In the order found, at most a few per symbol.
    pub findings: Vec<Finding>,
    /// Distinct registrable domains of link hosts (IP hosts excluded), at most
    /// `Limits::max_urls`, for RHSBL lookups.
    pub url_domains: Vec<String>,
    /// The domain of the (first) From address, lower-cased.
    pub from_domain: Option<String>,
    /// Leaf MIME parts inspected.
    pub parts: usize,
}

impl Report {
    /// Whether `symbol` was found.
    pub fn has(&self, symbol: &str) -> bool {
        self.findings.iter().any(|f| f.symbol == symbol)
    }

    /// The distinct symbols found, in the order first found.
    pub fn symbols(&self) -> Vec<&'static str> {
        let mut seen = Vec::new();
        for f in &self.findings {
            if !seen.contains(&f.symbol) {
                seen.push(f.symbol);
            }
        }
        seen
    }

    pub(crate) fn add(&mut self, symbol: &'static str, detail: impl Into<String>) {
        debug_assert!(
            crate::symbols::symbol(symbol).is_some(),
            "undeclared {symbol}"
        );
        let mut detail: String = detail.into();
        if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
            detail.truncate(cut);
        }
        let same_symbol = self.findings.iter().filter(|f| f.symbol == symbol);
        let mut count = 0;
        for f in same_symbol {
            if f.detail == detail {
                return;
            }
            count += 1;
        }
        if count < MAX_FINDINGS_PER_SYMBOL {
            self.findings.push(Finding { symbol, detail });
        }
    }
}

/// Collects distinct registrable domains up to a bound, remembering whether it overflowed.
#[derive(Debug, Default)]
pub(crate) struct DomainSet {
    seen: HashSet<String>,
    ordered: Vec<String>,
    pub(crate) overflowed: bool,
}

impl DomainSet {
    pub(crate) fn insert(&mut self, domain: &str, max: usize) {
        if self.seen.contains(domain) {
            return;
        }
        if self.ordered.len() >= max {
            self.overflowed = true;
            return;
        }
        self.seen.insert(domain.to_owned());
        self.ordered.push(domain.to_owned());
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.ordered
    }
}
