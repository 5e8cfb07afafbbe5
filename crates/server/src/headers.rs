//! The header section of a message: where it ends and which fields it holds. Delivery
//! counts hops in it, notices quote it, submission and `sendmail` complete it.

/// The header section of a message, up to and including the empty line; all of it when
/// it has no body.
pub fn header_section(message: &[u8]) -> &[u8] {
    &message[..section_end(message).unwrap_or(message.len())]
}

/// Where the header section ends (after its empty line), once `start` holds all of it.
pub fn section_end(start: &[u8]) -> Option<usize> {
    section_end_from(start, 0)
}

/// [`section_end`] for a `start` that grows: the octets before `scanned` were searched
/// already, so content arriving a few octets at a time is not searched again and again.
pub fn section_end_from(start: &[u8], scanned: usize) -> Option<usize> {
    if start.starts_with(b"\r\n") {
        return Some(2);
    }
    let from = scanned.saturating_sub(3).min(start.len());
    start[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(section_end_from(b"\r\nbody", 5), Some(2));
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
