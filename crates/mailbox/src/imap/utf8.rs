//! What UTF8=ACCEPT (RFC 6855 §4) asks of APPEND: a message whose header fields carry
//! 8-bit octets is taken only from a client that enabled UTF-8 (IMAP4rev2 counts: its
//! names and strings are UTF-8 already), and the `UTF8 (~{n})` data item only once
//! UTF8=ACCEPT is on.

use super::command::AppendMessage;
use super::enabled::Enabled;
use super::response::Done;

/// The refusal an APPEND of `messages` deserves in a session with `enabled`, if any.
pub(super) fn append_refusal(messages: &[AppendMessage], enabled: Enabled) -> Option<Done> {
    if messages.iter().any(|m| m.utf8) && !enabled.utf8_accept {
        return Some(Done::bad("UTF8 needs ENABLE UTF8=ACCEPT"));
    }
    let eight_bit = messages
        .iter()
        .any(|m| header(&m.message).iter().any(|b| *b >= 0x80));
    (eight_bit && !enabled.utf8_names()).then(|| {
        Done::no("8-bit octets in the header fields need ENABLE UTF8=ACCEPT (RFC 6855 section 4)")
    })
}

/// The header section of `message`, up to its blank line.
fn header(message: &[u8]) -> &[u8] {
    let end = posthorn_proto::headers::section_end(message).unwrap_or(message.len());
    message.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(message: &[u8], utf8: bool) -> Vec<AppendMessage> {
        vec![AppendMessage {
            flags: Vec::new(),
            date: None,
            message: message.to_vec(),
            binary: utf8,
            utf8,
        }]
    }

    #[test]
    fn eight_bit_headers_need_utf8() {
        let rev1 = Enabled::default();
        let accept = Enabled {
            utf8_accept: true,
            ..Enabled::default()
        };
        let headers = "Subject: café\r\n\r\nbody\r\n".as_bytes();
        let body = "Subject: x\r\n\r\ncafé\r\n".as_bytes();
        let refused = append_refusal(&append(headers, false), rev1).map(|d| d.status);
        assert_eq!(refused, Some("NO"));
        assert!(append_refusal(&append(body, false), rev1).is_none());
        assert!(append_refusal(&append(headers, false), accept).is_none());
        assert!(append_refusal(&append(headers, true), accept).is_none());
        let refused = append_refusal(&append(body, true), rev1).map(|d| d.status);
        assert_eq!(refused, Some("BAD"));
    }
}
