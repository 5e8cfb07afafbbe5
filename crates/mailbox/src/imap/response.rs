//! How IMAP writes strings in server responses (RFC 3501 §4.3, §9): quoted when the value is
//! short printable ASCII, a literal otherwise, `NIL` for a missing value, and a bare atom for
//! mailbox names that need no quoting. Every writer appends to a byte buffer, because
//! responses carry message octets that need not be UTF-8.

use std::io::Write;

/// The longest value sent as a quoted string; longer ones go as literals, which clients
/// read without scanning for the closing quote.
pub(crate) const MAX_QUOTED: usize = 1024;

/// Appends `value` as an IMAP string: quoted (with `"` and `\` escaped) when every byte is
/// printable ASCII and it is at most 1024 octets, otherwise a literal `{n}\r\n<bytes>`,
/// the only form that can carry CR, LF and 8-bit octets.
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    if quotable(value) {
        quoted(out, value);
    } else {
        literal(out, value);
    }
}

/// Appends `NIL` for a missing value, else `value` as [`string`]: the nstring of envelope
/// and body-structure fields.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => string(out, value),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends `value` as an astring, as mailbox names appear in LIST and STATUS: a bare atom
/// when every byte is an ATOM-CHAR (`INBOX`, `Sent`), otherwise [`string`]. The word `NIL`
/// is quoted so that no client can take the name for a missing value.
pub fn astring(out: &mut Vec<u8>, value: &[u8]) {
    if is_atom(value) && !value.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(value);
    } else {
        string(out, value);
    }
}

/// True when `value` can be sent as a quoted string.
fn quotable(value: &[u8]) -> bool {
    value.len() <= MAX_QUOTED && value.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Appends the UTF-8 text `value` as an atom or a quoted string, which may carry UTF-8
/// for a client that enabled it (RFC 9051 §4.3, RFC 6855 §3); a literal only for what no
/// quoted string can hold.
pub fn utf8_astring(out: &mut Vec<u8>, value: &str) {
    let printable = value.chars().all(|c| !c.is_control());
    if value.is_ascii() || !printable || value.len() > MAX_QUOTED {
        astring(out, value.as_bytes());
    } else {
        quoted(out, value.as_bytes());
    }
}

/// Appends `value` between double quotes, escaping the two quoted-specials.
fn quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends `value` as a synchronizing literal.
fn literal(out: &mut Vec<u8>, value: &[u8]) {
    literal_start(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends the `{len}\r\n` that announces a literal of `len` octets, for a writer that
/// sends the octets themselves separately (FETCH copying them from the message file).
pub(crate) fn literal_start(out: &mut Vec<u8>, len: u64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{{len}}}\r\n");
}

/// True when `value` is a non-empty run of ATOM-CHARs: printable ASCII other than the
/// atom-specials `(`, `)`, `{`, space, `%`, `*`, `"`, `\` and `]`.
fn is_atom(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && !b"(){%*\"\\]".contains(b))
}

/// A tagged completion: OK, NO or BAD with optional response code and text.
pub(super) struct Done {
    pub(super) status: &'static str,
    pub(super) text: String,
}

impl Done {
    /// `OK text`
    pub(super) fn ok(text: impl Into<String>) -> Done {
        Done {
            status: "OK",
            text: text.into(),
        }
    }

    /// `NO text`
    pub(super) fn no(text: impl Into<String>) -> Done {
        Done {
            status: "NO",
            text: text.into(),
        }
    }

    /// `BAD text`
    pub(super) fn bad(text: impl Into<String>) -> Done {
        Done {
            status: "BAD",
            text: text.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn printable_ascii_is_quoted_with_escapes() {
        assert_eq!(written(|o| string(o, b"hello world")), "\"hello world\"");
        assert_eq!(written(|o| string(o, b"")), "\"\"");
        assert_eq!(
            written(|o| string(o, br#"say "hi" \o/"#)),
            r#""say \"hi\" \\o/""#
        );
    }

    #[test]
    fn control_eight_bit_and_long_values_are_literals() {
        assert_eq!(written(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(written(|o| string(o, b"nul\0")), "{4}\r\nnul\0");
        assert_eq!(written(|o| string(o, "Jürgen".as_bytes())), "{7}\r\nJürgen");
        let long = vec![b'x'; MAX_QUOTED + 1];
        assert!(written(|o| string(o, &long)).starts_with("{1025}\r\nxxx"));
        let limit = vec![b'x'; MAX_QUOTED];
        assert!(written(|o| string(o, &limit)).starts_with("\"xxx"));
    }

    #[test]
    fn nstring_writes_nil_for_none() {
        assert_eq!(written(|o| nstring(o, None)), "NIL");
        assert_eq!(written(|o| nstring(o, Some(b"NIL"))), "\"NIL\"");
    }

    #[test]
    fn astring_is_an_atom_only_when_it_can_be() {
        assert_eq!(written(|o| astring(o, b"INBOX")), "INBOX");
        assert_eq!(
            written(|o| astring(o, b"Lists.rust-lang")),
            "Lists.rust-lang"
        );
        assert_eq!(written(|o| astring(o, b"My Mail")), "\"My Mail\"");
        assert_eq!(written(|o| astring(o, b"a]b")), "\"a]b\"");
        assert_eq!(written(|o| astring(o, b"100%")), "\"100%\"");
        assert_eq!(written(|o| astring(o, b"nil")), "\"nil\"");
        assert_eq!(written(|o| astring(o, b"")), "\"\"");
        assert_eq!(written(|o| astring(o, b"a\"b")), r#""a\"b""#);
        assert_eq!(
            written(|o| astring(o, "Entwürfe".as_bytes())),
            "{9}\r\nEntwürfe"
        );
    }
}
