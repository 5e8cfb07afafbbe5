//! The parts of a message the tests read: header fields (unfolded, RFC 2047 decoded as
//! RFC 5228 §2.7.2 asks), the size, and the body for `body` (RFC 5173).

use std::cell::OnceCell;

use base64::Engine as _;
use mail_parser::MimeHeaders as _;

/// A message as the tests see it; header field names are kept as written.
pub struct Message<'a> {
    raw: &'a [u8],
    headers: Vec<(String, String)>,
    body_start: usize,
    parts: OnceCell<Vec<BodyPart>>,
}

impl<'a> Message<'a> {
    pub fn parse(raw: &'a [u8]) -> Message<'a> {
        let (headers, body_start) = split_header(raw);
        Message {
            raw,
            headers,
            body_start,
            parts: OnceCell::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The raw (unfolded, undecoded) values of every field called `name`, in order.
    pub fn raw_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of every field called `name`, with encoded words decoded and the
    /// surrounding white space removed.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.raw_values(name)
            .map(|v| decode_words(v.trim()))
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.raw_values(name).next().is_some()
    }

    /// Everything after the blank line, undecoded (`body :raw`).
    pub fn raw_body(&self) -> String {
        String::from_utf8_lossy(self.raw.get(self.body_start..).unwrap_or_default()).into_owned()
    }

    /// The decoded text of each leaf part whose content type `wanted` selects
    /// (RFC 5173 §5.2: "" selects all, "text" every text/*, "text/plain" that type);
    /// `None` asks for the text parts (`:text`).
    pub fn body_parts(&self, wanted: Option<&[String]>) -> Vec<String> {
        let parts = self.parts.get_or_init(|| mime_parts(self.raw));
        let selects = |part: &BodyPart| match wanted {
            None => part.main == "text",
            Some(types) => types.iter().any(|t| {
                let t = t.to_ascii_lowercase();
                t.is_empty() || t == part.main || t == format!("{}/{}", part.main, part.sub)
            }),
        };
        let as_text = |part: &BodyPart| match wanted {
            // RFC 5173 §5.2: `:text` compares HTML as the text it shows.
            None if part.sub == "html" => html_to_text(&part.text),
            _ => part.text.clone(),
        };
        parts.iter().filter(|p| selects(p)).map(as_text).collect()
    }
}

/// One MIME part: its content type, lowercased, and its decoded content (for a
/// multipart, its prologue and epilogue).
struct BodyPart {
    main: String,
    sub: String,
    text: String,
}

/// The parts of a message, read once per run however many `body` tests ask: each leaf
/// with its decoded content, and each
/// multipart with its prologue and epilogue, which is what selecting a multipart type
/// compares (RFC 5173 §5.2).
fn mime_parts(raw: &[u8]) -> Vec<BodyPart> {
    let Some(parsed) = mail_parser::MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in &parsed.parts {
        let (main, sub) = match part.content_type() {
            Some(ct) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            ),
            None => ("text".to_owned(), "plain".to_owned()),
        };
        let text = match &part.body {
            mail_parser::PartType::Text(text) => text.to_string(),
            mail_parser::PartType::Html(html) => html.to_string(),
            mail_parser::PartType::Binary(bytes) | mail_parser::PartType::InlineBinary(bytes) => {
                String::from_utf8_lossy(bytes).into_owned()
            }
            mail_parser::PartType::Multipart(_) => {
                let body = raw
                    .get(part.offset_body as usize..part.offset_end as usize)
                    .unwrap_or_default();
                let boundary = part
                    .content_type()
                    .and_then(|ct| ct.attribute("boundary"))
                    .unwrap_or_default();
                outside_parts(&String::from_utf8_lossy(body), boundary)
            }
            mail_parser::PartType::Message(_) => continue,
        };
        out.push(BodyPart { main, sub, text });
    }
    out
}

/// A multipart body's prologue and epilogue: the text before the first boundary line
/// and after the closing one (RFC 2046 §5.1.1).
fn outside_parts(body: &str, boundary: &str) -> String {
    if boundary.is_empty() {
        return String::new();
    }
    let open = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let prologue = body.find(&open).map_or(body, |at| &body[..at]);
    let epilogue = body.find(&close).map_or("", |at| {
        body[at + close.len()..].trim_start_matches(['\r', '\n'])
    });
    format!("{prologue}{epilogue}")
}

/// Markup removed (and `script`/`style` content with it), the common entities
/// decoded: the words of an HTML part.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let after = &rest[open..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            Some("</script>")
        } else if lower.starts_with("<style") {
            Some("</style>")
        } else {
            None
        };
        let end = match skip_to {
            Some(closing) => after
                .to_ascii_lowercase()
                .find(closing)
                .map(|at| at + closing.len()),
            None => after.find('>').map(|at| at + 1),
        };
        match end {
            Some(end) => rest = &after[end..],
            None => return out,
        }
    }
    out.push_str(&decode_entities(rest));
    out
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let entity = after
            .find(';')
            .filter(|&end| end <= 8)
            .map(|end| (&after[..end], end));
        let decoded = entity.and_then(|(name, _)| match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => name
                .strip_prefix('#')
                .and_then(|n| match n.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                })
                .and_then(char::from_u32),
        });
        match (decoded, entity) {
            (Some(c), Some((_, end))) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The header fields, unfolded (RFC 5322 §2.2.3), and where the body starts.
fn split_header(raw: &[u8]) -> (Vec<(String, String)>, usize) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let end = raw[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| at + i + 1);
        let line = &raw[at..end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        at = end;
        if content.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(content);
        if content[0] == b' ' || content[0] == b'\t' {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(&text);
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) => fields.push((name.trim_end().to_owned(), value.to_owned())),
            // A line that is no field ends the header, as a missing blank line would.
            None => {
                at -= line.len();
                break;
            }
        }
    }
    (fields, at)
}

/// Decodes RFC 2047 encoded words; white space between two encoded words goes
/// (§6.2). Charsets other than UTF-8, US-ASCII and ISO-8859-1 are read as UTF-8.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut pending_space = String::new();
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some((decoded, len)) = rest.strip_prefix("=?").and_then(|_| encoded_word(rest)) {
            if !last_was_word {
                out.push_str(&pending_space);
            }
            pending_space.clear();
            out.push_str(&decoded);
            rest = &rest[len..];
            last_was_word = true;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        rest = &rest[c.len_utf8()..];
        if c == ' ' || c == '\t' {
            pending_space.push(c);
            continue;
        }
        out.push_str(&pending_space);
        pending_space.clear();
        out.push(c);
        last_was_word = false;
    }
    out.push_str(&pending_space);
    out
}

/// One `=?charset?enc?text?=` at the start of `s`: its text and length.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.get(2..)?;
    let (charset, after) = inner.split_once('?')?;
    let (encoding, after) = after.split_once('?')?;
    let end = after.find("?=")?;
    let text = &after[..end];
    if text.contains(' ') {
        return None;
    }
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text.trim_end_matches('='))
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('='))
            })
            .ok()?,
        "Q" | "q" => q_decode(text),
        _ => return None,
    };
    let charset = charset
        .split('*')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let decoded = if charset == "iso-8859-1" || charset == "latin1" {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some((decoded, len))
}

fn q_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: a@b.c\r\nSubject: =?UTF-8?Q?Hello_w=C3=B6rld?=\r\n =?ISO-8859-1?B?5A==?=\r\nX-Two: 1\r\nx-two: 2\r\n\r\nBody\r\n";

    #[test]
    fn header_fields_unfold_and_decode() {
        let m = Message::parse(MAIL);
        assert_eq!(m.values("subject"), vec!["Hello wörldä"]);
        assert_eq!(m.values("X-TWO"), vec!["1", "2"]);
        assert!(m.has("from") && !m.has("to"));
        assert_eq!(m.raw_body(), "Body\r\n");
        assert_eq!(m.body_parts(None), vec!["Body\r\n"]);
    }

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            html_to_text("<p>a &amp; <b>b</b>&#33;</p><style>x{}</style>&bogus;"),
            "a & b!&bogus;"
        );
        assert_eq!(
            outside_parts("pro\r\n--b\r\nx\r\n--b--\r\nepi\r\n", "b"),
            "pro\r\nepi\r\n"
        );
    }

    #[test]
    fn words_keep_plain_text() {
        assert_eq!(decode_words("a =?x?q?b?= c"), "a b c");
        assert_eq!(decode_words("=?bad"), "=?bad");
        assert_eq!(decode_words("x=?utf-8?q?=4?="), "x=4");
    }
}
