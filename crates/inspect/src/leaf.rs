//! One leaf MIME part: decoded per its transfer encoding, then its name, links and content
//! are checked.

use std::borrow::Cow;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{ContentType, HeaderName, Message};

use crate::content::{self, Origin};
use crate::symbols::ATTACH_HTML;
use crate::{Scan, encoding, filename, links};

/// What a leaf part's header fields say about it.
#[derive(Debug)]
pub(crate) struct Part {
    /// Lower-cased type and subtype.
    pub(crate) main: String,
    pub(crate) sub: String,
    pub(crate) charset: Option<String>,
    /// From Content-Disposition's filename, else Content-Type's name (RFC 2183 §2.3; 2231
    /// and 2047 encodings decoded by mail-parser).
    pub(crate) filename: Option<String>,
    /// Content-Disposition: attachment.
    pub(crate) attachment: bool,
    pub(crate) encoding: Option<String>,
}

impl Part {
    pub(crate) fn new(
        parsed: Option<&Message>,
        main: String,
        sub: String,
        content_type: Option<&ContentType>,
    ) -> Self {
        let header = |name| parsed.and_then(|m| m.header(name));
        let disposition = header(HeaderName::ContentDisposition).and_then(|v| v.as_content_type());
        let filename = disposition
            .and_then(|d| d.attribute("filename"))
            .or_else(|| content_type.and_then(|ct| ct.attribute("name")))
            .map(str::to_owned);
        Self {
            main,
            sub,
            charset: content_type
                .and_then(|ct| ct.attribute("charset"))
                .map(str::to_owned),
            filename,
            attachment: disposition.is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment")),
            encoding: header(HeaderName::ContentTransferEncoding)
                .and_then(|v| v.as_text())
                .map(str::to_owned),
        }
    }

    fn is_html(&self) -> bool {
        let by_name = self.filename.as_deref().is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            [".htm", ".html", ".xhtml", ".shtml"]
                .iter()
                .any(|e| n.ends_with(e))
        });
        (self.main == "text" && self.sub == "html") || by_name
    }

    fn is_file(&self) -> bool {
        self.attachment || self.filename.is_some()
    }

    /// How details name this part.
    fn label(&self) -> String {
        self.filename
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.main, self.sub))
    }
}

pub(crate) fn check(scan: &mut Scan, part: &Part, body: &[u8]) {
    let label = part.label();
    let decoded = encoding::decode(part.encoding.as_deref(), body);
    if let Some(problem) = decoded.problem {
        scan.add(problem, label.clone());
    }
    if let Some(name) = &part.filename {
        filename::check(scan, name, name);
    }
    if part.is_html() {
        if part.is_file() {
            scan.add(ATTACH_HTML, label.clone());
        }
        links::in_html(scan, &text(part, &decoded.data));
    } else if part.main == "text" && !part.is_file() {
        links::in_text(scan, &text(part, &decoded.data));
    }
    if part.is_file() || part.main != "text" {
        content::check(
            scan,
            &decoded.data,
            Origin {
                label: &label,
                depth: 0,
            },
        );
    }
}

/// The part as text, through its charset when mail-parser knows it.
fn text<'a>(part: &Part, data: &'a [u8]) -> Cow<'a, str> {
    match part
        .charset
        .as_deref()
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        Some(decode) => Cow::Owned(decode(data)),
        None => String::from_utf8_lossy(data),
    }
}
