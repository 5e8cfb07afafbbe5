//! Checks that a new mailbox name is valid modified UTF-7 (RFC 3501 §5.1.3). Names are
//! stored as the client sends them, so a name that no client can decode, or that two
//! spellings could name (`&AGE-` for `a`), must be refused before it reaches the disk.
//! A client that speaks UTF-8 names (RFC 6855, RFC 9051) has its names [`encode`]d to this
//! stored form and [`decode`]d from it.

/// Why a name is not modified UTF-7, fit for the NO text.
pub type Invalid = &'static str;

/// Checks `name`: printable US-ASCII stands for itself except `&`; `&-` is `&`; and
/// `&...-` is modified base64 of UTF-16 that encodes no printable US-ASCII, ends on a
/// whole code unit (leftover bits zero) and pairs its surrogates.
pub fn check(name: &str) -> Result<(), Invalid> {
    let mut rest = name.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        rest = after;
        match b {
            b'&' => {
                let end = rest
                    .iter()
                    .position(|&b| b == b'-')
                    .ok_or("unterminated & sequence")?;
                let (encoded, after) = rest.split_at(end);
                if !encoded.is_empty() {
                    check_shifted(encoded)?;
                }
                rest = after.get(1..).unwrap_or_default();
            }
            0x20..=0x7e => {}
            _ => return Err("8-bit or control character; use modified UTF-7"),
        }
    }
    Ok(())
}

/// Checks the modified base64 between `&` and `-`.
fn check_shifted(encoded: &[u8]) -> Result<(), Invalid> {
    let mut units = Vec::new();
    let mut bits: u32 = 0;
    let mut count = 0;
    for &c in encoded {
        let value = sextet(c).ok_or("bad character in modified base64")?;
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 16 {
            count -= 16;
            units.push(((bits >> count) & 0xffff) as u16);
            bits &= (1 << count) - 1;
        }
    }
    if count >= 6 || bits != 0 {
        return Err("modified base64 does not end on a whole character");
    }
    for c in char::decode_utf16(units) {
        let c = c.map_err(|_| "unpaired UTF-16 surrogate")?;
        if (' '..='~').contains(&c) {
            return Err("printable US-ASCII must not be encoded");
        }
    }
    Ok(())
}

/// The stored (modified UTF-7) form of the UTF-8 name `name`: printable US-ASCII as it
/// is but `&` as `&-`, every run of other characters as `&`, modified base64 of its
/// UTF-16, `-` (RFC 3501 §5.1.3).
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            shift_out(&mut run, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    shift_out(&mut run, &mut out);
    out
}

/// Writes a run of UTF-16 units as `&...-` and empties it.
fn shift_out(run: &mut Vec<u16>, out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    if run.is_empty() {
        return;
    }
    out.push('&');
    let (mut bits, mut count) = (0u32, 0);
    for unit in run.drain(..) {
        bits = (bits << 16) | u32::from(unit);
        count += 16;
        while count >= 6 {
            count -= 6;
            out.push(char::from(ALPHABET[((bits >> count) & 0x3f) as usize]));
        }
        bits &= (1 << count) - 1;
    }
    if count > 0 {
        out.push(char::from(
            ALPHABET[((bits << (6 - count)) & 0x3f) as usize],
        ));
    }
    out.push('-');
}

/// The UTF-8 form of the stored name `name`; None when it is not valid modified UTF-7
/// (a name from before the check, shown as it is).
pub fn decode(name: &str) -> Option<String> {
    check(name).ok()?;
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let mut units = Vec::new();
            let (mut bits, mut count) = (0u32, 0);
            for c in encoded.bytes() {
                bits = (bits << 6) | u32::from(sextet(c)?);
                count += 6;
                if count >= 16 {
                    count -= 16;
                    units.push(((bits >> count) & 0xffff) as u16);
                    bits &= (1 << count) - 1;
                }
            }
            out.extend(char::decode_utf16(units).map(|c| c.unwrap_or('\u{fffd}')));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The value of a modified base64 character (RFC 3501 uses `,` where base64 has `/`).
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in [
            "INBOX",
            "Work.2024",
            "Entw&APw-rfe",
            "&-",
            "Tom &- Jerry",
            "&ZeVnLIqe-",
            "&2D3eAA-",
            "a b~!",
        ] {
            assert_eq!(check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn utf8_names_round_trip() {
        for (utf8, stored) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("台北", "&U,BTFw-"),
            ("😀.x", "&2D3eAA-.x"),
            ("INBOX", "INBOX"),
        ] {
            assert_eq!(encode(utf8), stored);
            assert_eq!(check(stored), Ok(()), "{stored}");
            assert_eq!(decode(stored).as_deref(), Some(utf8));
        }
        assert_eq!(decode("Entwürfe"), None);
    }

    #[test]
    fn invalid_names() {
        for name in [
            "a&-&&--b",
            "&&",
            "&",
            "a&",
            "&AGE",
            "&AGE-",
            "&APw",
            "&AP-",
            "&APx-",
            "&2D0-",
            "&3gA-",
            "&A/w-",
            "Entwürfe",
            "tab\there",
        ] {
            assert!(check(name).is_err(), "{name:?}");
        }
    }
}
