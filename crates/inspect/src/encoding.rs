//! Content-Transfer-Encoding (RFC 2045 §6): decoding a part's body the way tolerant mail
//! clients do, so what is checked is what a recipient would see, while noting where the
//! encoding was broken.

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::symbols::{MIME_BAD_BASE64, MIME_BAD_QP, MIME_UNKNOWN_CTE};

/// Decodes after padding and stray characters were dropped, as clients do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// A decoded body and, when the encoding was broken or unknown, the symbol saying so.
pub(crate) struct Decoded<'a> {
    pub(crate) data: Cow<'a, [u8]>,
    pub(crate) problem: Option<&'static str>,
}

/// Decodes `body` per the part's Content-Transfer-Encoding (absent means 7bit). An unknown
/// encoding is reported and the body kept as is.
pub(crate) fn decode<'a>(encoding: Option<&str>, body: &'a [u8]) -> Decoded<'a> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("7bit" | "8bit" | "binary") => Decoded {
            data: Cow::Borrowed(body),
            problem: None,
        },
        Some("base64") => base64(body),
        Some("quoted-printable") => quoted_printable(body),
        Some(_) => Decoded {
            data: Cow::Borrowed(body),
            problem: Some(MIME_UNKNOWN_CTE),
        },
    }
}

/// RFC 2045 §6.8: the alphabet, line breaks, and `=` padding only at the end to a multiple
/// of four. Other characters are ignored when decoding ("must be ignored", same section),
/// but a body made of them is still reported.
fn base64(body: &[u8]) -> Decoded<'static> {
    let mut symbols = Vec::with_capacity(body.len() / 4 * 3 + 4);
    let (mut padding, mut broken) = (0usize, false);
    for &b in body {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                broken |= padding > 0;
                symbols.push(b);
            }
            b'=' => padding += 1,
            b'\r' | b'\n' | b' ' | b'\t' => {}
            _ => broken = true,
        }
    }
    broken |= padding > 2 || (symbols.len() + padding) % 4 != 0;
    if symbols.len() % 4 == 1 {
        // A lone trailing character carries no whole octet.
        symbols.pop();
    }
    let data = LENIENT.decode(&symbols).unwrap_or_default();
    Decoded {
        data: Cow::Owned(data),
        problem: broken.then_some(MIME_BAD_BASE64),
    }
}

/// RFC 2045 §6.7: `=` followed by two hex digits (lower case tolerated, as rule 1's note
/// allows), or by optional white space and a line end (a soft line break).
fn quoted_printable(body: &[u8]) -> Decoded<'static> {
    let mut out = Vec::with_capacity(body.len());
    let mut broken = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = body
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            out.push(value);
            i += 3;
            continue;
        }
        let mut j = i + 1;
        while matches!(body.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        match body.get(j) {
            Some(b'\n') => i = j + 1,
            Some(b'\r') if body.get(j + 1) == Some(&b'\n') => i = j + 2,
            None => i = j,
            Some(_) => {
                broken = true;
                out.push(b'=');
                i += 1;
            }
        }
    }
    Decoded {
        data: Cow::Owned(out),
        problem: broken.then_some(MIME_BAD_QP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_valid_and_broken() {
        let ok = decode(Some("Base64"), b"aGVs\r\nbG8=\r\n");
        assert_eq!((&*ok.data, ok.problem), (&b"hello"[..], None));
        let bad = decode(Some("base64"), b"aGVs*bG8=\r\n");
        assert_eq!(
            (&*bad.data, bad.problem),
            (&b"hello"[..], Some(MIME_BAD_BASE64))
        );
        assert_eq!(
            decode(Some("base64"), b"aGVsbG8").problem,
            Some(MIME_BAD_BASE64)
        );
        assert_eq!(
            decode(Some("base64"), b"aGVs=bG8=").problem,
            Some(MIME_BAD_BASE64)
        );
        assert_eq!(&*decode(Some("base64"), b"aGVsbG8hx").data, b"hello!");
    }

    #[test]
    fn quoted_printable_valid_and_broken() {
        let ok = decode(Some("quoted-printable"), b"caf=C3=A9 =\r\nau lait=3d\r\n");
        assert_eq!(
            (&*ok.data, ok.problem),
            ("café au lait=\r\n".as_bytes(), None)
        );
        let bad = decode(Some("quoted-printable"), b"100=% sure");
        assert_eq!(
            (&*bad.data, bad.problem),
            (&b"100=% sure"[..], Some(MIME_BAD_QP))
        );
    }

    #[test]
    fn identity_and_unknown() {
        assert!(decode(None, b"x").problem.is_none());
        assert!(decode(Some(" 8BIT "), b"x").problem.is_none());
        assert_eq!(
            decode(Some("x-uuencode"), b"x").problem,
            Some(MIME_UNKNOWN_CTE)
        );
    }
}
