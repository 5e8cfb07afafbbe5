//! A small HTML scanner, enough for the checks: links with their visible text, forms with
//! password inputs, and the visible text. One forward pass; it never builds a tree, so
//! malformed or hostile markup cannot make it do more than read each octet a few times.

use memchr::{memchr, memmem};

/// Visible text kept per link; enough to show a domain or URL.
const MAX_LINK_TEXT: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) href: String,
    pub(crate) text: String,
}

#[derive(Debug, Default)]
pub(crate) struct Html {
    pub(crate) links: Vec<Link>,
    pub(crate) has_form: bool,
    pub(crate) has_password_input: bool,
    /// The text outside tags, entities decoded.
    pub(crate) text: String,
}

pub(crate) fn scan(html: &str) -> Html {
    let lower = html.to_ascii_lowercase();
    let (bytes, lower_bytes) = (html.as_bytes(), lower.as_bytes());
    let mut out = Html::default();
    let mut open_link: Option<Link> = None;
    let mut at = 0;
    while at < bytes.len() {
        let Some(lt) = memchr(b'<', &bytes[at..]).map(|i| at + i) else {
            text(&mut out, &mut open_link, &html[at..]);
            break;
        };
        text(&mut out, &mut open_link, &html[at..lt]);
        if lower_bytes[lt..].starts_with(b"<!--") {
            at = memmem::find(&bytes[lt + 4..], b"-->").map_or(bytes.len(), |i| lt + 4 + i + 3);
            continue;
        }
        let Some(tag) = parse_tag(html, lt) else {
            text(&mut out, &mut open_link, "<");
            at = lt + 1;
            continue;
        };
        at = tag.end;
        // Tags separate words (`<td>a</td><td>b</td>`).
        out.text.push(' ');
        match (tag.name.as_str(), tag.closing) {
            ("a", false) => {
                finish_link(&mut out, &mut open_link);
                open_link = tag.attribute("href").map(|href| Link {
                    href,
                    text: String::new(),
                });
            }
            ("a", true) => finish_link(&mut out, &mut open_link),
            ("form", false) => out.has_form = true,
            ("input", false)
                if tag
                    .attribute("type")
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("password")) =>
            {
                out.has_password_input = true;
            }
            ("script" | "style", false) => {
                let close = format!("</{}", tag.name);
                at = memmem::find(&lower_bytes[at..], close.as_bytes())
                    .map_or(bytes.len(), |i| at + i);
            }
            _ => {}
        }
    }
    finish_link(&mut out, &mut open_link);
    out
}

fn text(out: &mut Html, open_link: &mut Option<Link>, raw: &str) {
    if raw.is_empty() {
        return;
    }
    let decoded = decode_entities(raw);
    if let Some(link) = open_link
        && link.text.len() < MAX_LINK_TEXT
    {
        link.text.push_str(&decoded);
    }
    out.text.push_str(&decoded);
}

fn finish_link(out: &mut Html, open_link: &mut Option<Link>) {
    if let Some(link) = open_link.take() {
        out.links.push(link);
    }
}

struct Tag {
    name: String,
    closing: bool,
    attributes: Vec<(String, String)>,
    /// Offset just after the closing `>`.
    end: usize,
}

impl Tag {
    fn attribute(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// The tag starting at `html[lt] == '<'`, or `None` when what follows is not a tag (then the
/// `<` is text, as in HTML's tokenizer).
fn parse_tag(html: &str, lt: usize) -> Option<Tag> {
    let bytes = html.as_bytes();
    let mut i = lt + 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attributes = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => {
                return Some(Tag {
                    name,
                    closing,
                    attributes,
                    end: bytes.len(),
                });
            }
            Some(b'>') => {
                return Some(Tag {
                    name,
                    closing,
                    attributes,
                    end: i + 1,
                });
            }
            Some(_) => {}
        }
        let attr_start = i;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let attr_name = html[attr_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let (start, end, next) = match bytes.get(i) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let end = memchr(quote, &bytes[i + 1..]).map_or(bytes.len(), |j| i + 1 + j);
                    (i + 1, end, (end + 1).min(bytes.len()))
                }
                _ => {
                    let mut end = i;
                    while end < bytes.len()
                        && !bytes[end].is_ascii_whitespace()
                        && bytes[end] != b'>'
                    {
                        end += 1;
                    }
                    (i, end, end)
                }
            };
            value = decode_entities(&html[start..end]);
            i = next;
        }
        if attr_name.is_empty() {
            i += 1;
        } else {
            attributes.push((attr_name, value));
        }
    }
}

/// Decodes character references: the named ones that matter for hiding URLs and the numeric
/// forms (HTML §13.5); anything else stays as written.
pub(crate) fn decode_entities(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let reference = rest.as_bytes()[1..]
            .iter()
            .take(11)
            .position(|&b| b == b';')
            .map(|i| &rest[1..1 + i]);
        let decoded = reference.and_then(|r| {
            let c = match r {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                "period" => '.',
                "sol" => '/',
                "colon" => ':',
                _ => {
                    let number = r.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, r.len() + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_forms_and_text() {
        let h = scan(
            "<p>Hi &amp; welcome</p><!-- <a href=x>no</a> --><A HREF='https://evil.example/login'>https://bank&#46;example</a>\
             <script>var a = '<a href=\"s\">';</script><form action=x><input type = PASSWORD name=p></form> 1 < 2",
        );
        assert_eq!(h.links.len(), 1);
        assert_eq!(h.links[0].href, "https://evil.example/login");
        assert_eq!(h.links[0].text, "https://bank.example");
        assert!(h.has_form && h.has_password_input);
        assert!(h.text.contains("Hi & welcome"));
        assert!(h.text.contains("1 < 2"));
    }

    #[test]
    fn unterminated_markup_ends() {
        let h = scan("<a href=\"https://x.example");
        assert_eq!(h.links.len(), 1);
        assert!(scan("<!-- open").links.is_empty());
        assert!(!scan("<form><input type=text>").has_password_input);
    }
}
