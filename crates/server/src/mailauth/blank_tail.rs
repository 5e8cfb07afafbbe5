//! A workaround for mail-auth 0.13.3, whose relaxed body canonicalization keeps
//! whitespace-only lines at the end of a body as empty lines, where RFC 6376 §3.4.4 drops
//! them (`"a\r\n \r\n"` must hash as `"a\r\n"`). Every other verifier follows the RFC, so
//! such a body would make our signatures fail everywhere and theirs fail here.
//!
//! Removing those lines changes nothing in the relaxed canonical form, so a copy without
//! them hashes right under mail-auth: we sign such copies, and verify relaxed-body
//! signatures and ARC sets on them. (Simple canonicalization keeps the lines, and
//! mail-auth gets it right, so simple-body signatures are verified on the original.)

use posthorn_proto::headers::header_section;

/// The length of the message without the whitespace-only lines (and the empty lines
/// among them) that end its body, when it has any; `None` when nothing needs removing.
/// What is kept is always a prefix, so no copy is needed.
pub fn without_blank_tail(message: &[u8]) -> Option<usize> {
    let body_start = header_section(message).len();
    let body = &message[body_start..];
    // The end of the last line holding something other than whitespace.
    let keep = match body
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        Some(last) => match body[last..].iter().position(|&b| b == b'\n') {
            Some(newline) => last + newline + 1,
            None => return None,
        },
        None => 0,
    };
    let tail = &body[keep..];
    if !tail.iter().any(|b| matches!(b, b' ' | b'\t')) {
        return None;
    }
    Some(body_start + keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_only_last_lines_are_removed() {
        assert_eq!(
            without_blank_tail(b"Subject: x\r\n\r\nSee you,\r\nAnn\r\n  \r\n\t\r\n\r\n"),
            Some(b"Subject: x\r\n\r\nSee you,\r\nAnn\r\n".len())
        );
        assert_eq!(
            without_blank_tail(b"Subject: x\r\n\r\n \r\n"),
            Some(b"Subject: x\r\n\r\n".len())
        );
    }

    #[test]
    fn other_bodies_are_left_alone() {
        // Empty last lines alone are handled right by mail-auth.
        assert_eq!(
            without_blank_tail(b"Subject: x\r\n\r\nAnn\r\n\r\n\r\n"),
            None
        );
        // Whitespace inside the body, or at the end of a line with text, is fine too.
        assert_eq!(
            without_blank_tail(b"Subject: x\r\n\r\na\r\n \r\nb  \r\n"),
            None
        );
        assert_eq!(without_blank_tail(b"Subject: x\r\n\r\n"), None);
        assert_eq!(without_blank_tail(b"Subject: x\r\n\r\nno newline  "), None);
    }
}
