//! Content inspection: one message's bytes in, named symbols out (rspamd style). The server
//! maps each symbol to a score or a refusal; nothing here does I/O, keeps state between
//! messages, or learns.
//!
//! Every pass is bounded: work is linear in the message size (times the small nesting
//! limits) and memory a few times the message plus `Limits::max_archive_bytes`, so hostile
//! content (MIME bombs, zip bombs, megabyte header lines) yields a symbol, not a stall.

mod archive;
mod content;
mod domain;
mod encoding;
mod filename;
mod format;
mod header;
mod html;
mod leaf;
mod links;
mod magic;
mod mime;
mod report;
mod spoof;
mod symbols;
mod url;
mod zip;

pub use report::{Finding, Report};
pub use symbols::{SYMBOLS, Symbol, symbol};

/// What an inspection needs to know about the receiving side.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Our domains, for spoofing and look-alike checks (compared case-insensitively).
    pub local_domains: &'a [String],
    /// Whether the message came with SMTPUTF8 (RFC 6531), which allows UTF-8 headers.
    pub smtputf8: bool,
    /// The current time in Unix seconds, for Date checks.
    pub now: i64,
    pub limits: Limits,
}

/// Bounds on the work one message may cause, and the thresholds of some checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MIME parts (every entity, multiparts included) inspected before `MIME_TOO_MANY_PARTS`.
    pub max_parts: usize,
    /// Nesting of multiparts and attached messages before `MIME_TOO_DEEP`.
    pub max_depth: usize,
    /// Distinct link domains kept in `Report::url_domains`.
    pub max_urls: usize,
    /// Entries listed per archive.
    pub max_archive_entries: usize,
    /// Octets decompressed from archives per message, all archives together.
    pub max_archive_bytes: usize,
    /// Archives within archives opened (1: an attached zip's entries are read, but a zip
    /// inside it is only listed if the depth allows).
    pub max_archive_depth: usize,
    /// Uncompressed-to-compressed ratio above which a large entry is a bomb.
    pub max_compression_ratio: u64,
    /// Declared uncompressed size of one archive above which it is a bomb.
    pub max_archive_declared: u64,
    /// Longest header line in octets, line end excluded (RFC 5322 §2.1.1: 998).
    pub max_header_line: usize,
    /// How far Date may be ahead of `now`, in seconds.
    pub max_date_future: i64,
    /// How far Date may be behind `now`, in seconds.
    pub max_date_past: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_parts: 1000,
            max_depth: 20,
            max_urls: 100,
            max_archive_entries: 1000,
            max_archive_bytes: 32 << 20,
            max_archive_depth: 3,
            max_compression_ratio: 100,
            max_archive_declared: 1 << 30,
            max_header_line: 998,
            max_date_future: 86_400,
            max_date_past: 30 * 86_400,
        }
    }
}

/// Inspects `message`, the whole message as received (header section and body, CRLF or LF
/// line ends).
pub fn inspect(message: &[u8], context: &Context) -> Report {
    let mut scan = Scan::new(context);
    let entity = header::split(message);
    let fields = header::fields(entity.header);
    let parsed = mail_parser::MessageParser::new().parse_headers(entity.header);
    format::check(&mut scan, &entity, &fields, parsed.as_ref());
    spoof::check(&mut scan, parsed.as_ref());
    mime::walk(&mut scan, message);
    scan.finish()
}

/// The state of one inspection, passed to every check.
pub(crate) struct Scan<'c> {
    pub(crate) context: &'c Context<'c>,
    pub(crate) report: Report,
    pub(crate) domains: report::DomainSet,
    /// Octets still allowed to be decompressed from archives.
    pub(crate) archive_budget: usize,
}

impl<'c> Scan<'c> {
    fn new(context: &'c Context<'c>) -> Self {
        Self {
            context,
            report: Report::default(),
            domains: report::DomainSet::default(),
            archive_budget: context.limits.max_archive_bytes,
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.context.limits
    }

    pub(crate) fn add(&mut self, symbol: &'static str, detail: impl Into<String>) {
        self.report.add(symbol, detail);
    }

    fn finish(mut self) -> Report {
        if self.domains.overflowed {
            let max = self.context.limits.max_urls;
            self.add(symbols::URL_TOO_MANY, format!("more than {max}"));
        }
        self.report.url_domains = self.domains.into_vec();
        self.report
    }
}
