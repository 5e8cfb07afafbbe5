//! The header section of a message: where it ends and which fields it holds. Delivery
//! counts hops in it, notices quote it, submission and `sendmail` complete it.

/// The header section of a message, up to and including the empty line; all of it when
/// it has no body.
pub fn header_section(message: &[u8]) -> &[u8] {
    &message[..section_end(message).unwrap_or(message.len())]
}

/// Where the header section ends (after its empty line), once `start` holds all of it.
pub fn section_end(start: &[u8]) -> Option<usize> {
    if start.starts_with(b"\r\n") {
        return Some(2);
    }
    start
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
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
    fn fields_are_found_by_name_only() {
        let section = b"DATE: x\r\nX-Dated: y\r\n\tmessage-id: folded\r\nSubject:z\n";
        assert!(has_field(section, b"date"));
        assert!(has_field(section, b"subject"));
        assert!(!has_field(section, b"message-id"));
        assert!(!is_field(b"Dated: x", b"date"));
        assert!(!is_field(b"Date", b"date"));
    }
}
