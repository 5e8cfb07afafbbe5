//! Header values between the message's form and the milter's. On the wire, folded lines
//! are separated by a bare LF (as Sendmail keeps them), and unless the filter asked for
//! SMFIP_HDR_LEADSPC the one space after the colon is left out both ways (Sendmail eats
//! one space, not a tab, after the colon).

/// A value as it follows the colon in the message, for a HEADER packet.
pub(crate) fn to_wire(value: &[u8], leading_space: bool) -> Vec<u8> {
    let value = match value {
        [b' ', rest @ ..] if !leading_space => rest,
        _ => value,
    };
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.iter().position(|&b| b == b'\r') {
        out.extend_from_slice(&rest[..at]);
        if rest.get(at + 1) != Some(&b'\n') {
            out.push(b'\r');
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// A value from the filter as it will follow the colon in the message: lines joined by
/// CRLF, and the space after the colon put back. Refused when writing it would break the
/// header section: a bare CR, or a line that does not start with a space or tab (it would
/// start a new field, or end the section if empty).
pub(crate) fn from_wire(value: &[u8], leading_space: bool) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(value.len() + 8);
    if !leading_space && !value.is_empty() {
        out.push(b' ');
    }
    let mut lines = value.split(|&b| b == b'\n').peekable();
    let mut first = true;
    while let Some(line) = lines.next() {
        let line = match line.strip_suffix(b"\r") {
            Some(line) if lines.peek().is_some() => line,
            _ => line,
        };
        if line.contains(&b'\r') {
            return Err("a header value holds a bare CR");
        }
        if !first {
            if !matches!(line.first(), Some(b' ' | b'\t')) {
                return Err("a folded header line does not start with a space or tab");
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
        first = false;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_out_without_the_first_space_and_with_bare_lf_folds() {
        assert_eq!(to_wire(b" a\r\n\tb", false), b"a\n\tb");
        assert_eq!(to_wire(b" a\r\n\tb", true), b" a\n\tb");
        assert_eq!(to_wire(b"\ttab", false), b"\ttab");
        assert_eq!(to_wire(b"  two", false), b" two");
        assert_eq!(to_wire(b" odd\rcr", false), b"odd\rcr");
    }

    #[test]
    fn values_come_back_with_the_space_and_crlf_folds() {
        assert_eq!(from_wire(b"a\n\tb", false).unwrap(), b" a\r\n\tb");
        assert_eq!(from_wire(b"a\r\n b", false).unwrap(), b" a\r\n b");
        assert_eq!(from_wire(b" a", true).unwrap(), b" a");
        assert_eq!(from_wire(b"", false).unwrap(), b"");
    }

    #[test]
    fn values_that_would_break_the_section_are_refused() {
        assert!(from_wire(b"a\nB: injected", false).is_err());
        assert!(from_wire(b"a\n\nbody", false).is_err());
        assert!(from_wire(b"a\rb", false).is_err());
        assert!(from_wire(b"a\n", false).is_err());
    }
}
