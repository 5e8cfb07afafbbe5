//! The header section of a message (RFC 5322 §2.1): where it ends and which fields it
//! holds. The one scanner for the whole server: the SMTP session reads the section as it
//! arrives, delivery counts hops in it, notices quote it, submission and `sendmail`
//! complete it, IMAP parses the messages of a mailbox with it. Lines may end in CRLF or, as
//! in files written by Unix programs, in a bare LF: the section ends after the first empty
//! line either way.

/// The header section of a message, up to and including the empty line; all of it when
/// it has no body.
pub fn header_section(message: &[u8]) -> &[u8] {
    &message[..section_end(message).unwrap_or(message.len())]
}

/// Where the header section ends (after its empty line), once `start` holds all of it.
pub fn section_end(start: &[u8]) -> Option<usize> {
    section_end_from(start, 0)
}

/// [`section_end`] for a `start` that grows: the lines before the one holding octet
/// `scanned` were searched already, so content arriving a few octets at a time is not
/// searched again and again.
pub fn section_end_from(start: &[u8], scanned: usize) -> Option<usize> {
    let resume = start[..scanned.min(start.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let mut end = resume;
    for line in start[resume..].split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            return None;
        }
        end += line.len();
        if line == b"\n" || line == b"\r\n" {
            return Some(end);
        }
    }
    None
}

/// True when `line` starts the field `name` (`Name:`, any case).
pub fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name)
        && line[name.len()] == b':'
}

/// True when `section` (lines ending in LF or CRLF) has the field `name`.
pub fn has_field(section: &[u8], name: &[u8]) -> bool {
    section
        .split(|&b| b == b'\n')
        .any(|line| is_field(line, name))
}

/// Removes from the header section at the start of `content` every field (with its
/// continuation lines) for which `remove` says yes, given the whole field; the body is
/// left alone. Returns how many were removed.
pub fn remove_fields(content: &mut Vec<u8>, remove: impl Fn(&[u8]) -> bool) -> usize {
    let section_len = header_section(content).len();
    let mut kept = Vec::with_capacity(section_len);
    let mut removed = 0;
    let mut start = 0;
    while start < section_len {
        let end = field_end(content, start, section_len);
        let field = &content[start..end];
        if remove(field) {
            removed += 1;
        } else {
            kept.extend_from_slice(field);
        }
        start = end;
    }
    if removed > 0 {
        content.splice(..section_len, kept);
    }
    removed
}

/// The end of the header field starting at `start`: after its last continuation line.
fn field_end(content: &[u8], start: usize, limit: usize) -> usize {
    let mut end = start;
    loop {
        end = match content[end..limit].iter().position(|&b| b == b'\n') {
            Some(i) => end + i + 1,
            None => return limit,
        };
        if end >= limit || !matches!(content[end], b' ' | b'\t') {
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_removed_with_their_continuations_and_the_body_kept() {
        let mut content = b"X-Spam-Flag: YES\r\nSubject: hi\r\nX-Spam-Status: No,\r\n\ttests=A\r\n\r\nX-Spam-Flag: body\r\n".to_vec();
        let removed = remove_fields(&mut content, |field| {
            is_field(field, b"x-spam-flag") || is_field(field, b"x-spam-status")
        });
        assert_eq!(removed, 2);
        assert_eq!(content, b"Subject: hi\r\n\r\nX-Spam-Flag: body\r\n");
    }

    #[test]
    fn the_section_ends_at_the_first_empty_line_of_either_ending() {
        assert_eq!(section_end(b"A: 1\r\n\r\nbody"), Some(8));
        assert_eq!(section_end(b"A: 1\n\nbody"), Some(6));
        assert_eq!(section_end(b"A: 1\n\r\nbody"), Some(7));
        assert_eq!(section_end(b"A: 1\r\n\nbody"), Some(7));
        assert_eq!(section_end(b"\r\nbody"), Some(2));
        assert_eq!(section_end(b"\nbody"), Some(1));
        assert_eq!(
            section_end(b"A: 1\r\n\r"),
            None,
            "an empty line not yet ended"
        );
        assert_eq!(section_end(b"A: 1\r\nB: \r\n"), None);
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b"A: 1\n\nbody"), b"A: 1\n\n");
    }

    #[test]
    fn a_growing_start_is_searched_once() {
        let message = b"Subject: x\r\nTo: y\r\n\r\nbody\r\n";
        assert_eq!(section_end(message), Some(21));
        // Octet by octet, each call searching only past what the last one saw.
        let mut scanned = 0;
        let found = (1..=message.len()).find_map(|len| {
            let end = section_end_from(&message[..len], scanned);
            scanned = len;
            end
        });
        assert_eq!(found, Some(21));
        // The line `scanned` falls in is searched again: its end may have just arrived.
        assert_eq!(section_end_from(b"Subject: x\r\n\r\n", 13), Some(14));
    }

    #[test]
    fn fields_are_found_by_name_only() {
        let section = b"DATE: x\r\nX-Dated: y\r\n\tmessage-id: folded\r\nSubject:z\n";
        assert!(has_field(section, b"date"));
        assert!(has_field(section, b"subject"));
        assert!(!has_field(section, b"message-id"));
        assert!(!is_field(b"Dated: x", b"date"));
        assert!(!is_field(b"Date", b"date"));
    }
}
