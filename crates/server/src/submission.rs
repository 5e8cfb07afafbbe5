//! What RFC 6409 §8 lets a submission server fix in a message: a missing `Date` or
//! `Message-ID`. Applications that build mail by hand often forget them, and receivers
//! count their absence as a spam signal.

use crate::headers::has_field;
use crate::received::rfc5322_date;

/// Which of the two headers a message lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    /// No `Date:` header.
    pub date: bool,
    /// No `Message-ID:` header.
    pub message_id: bool,
}

impl Missing {
    /// Looks at the start of a message. `complete` says the whole message is in `start`;
    /// otherwise a header section that does not end within `start` is taken as having
    /// both headers (we add nothing we are not sure is missing).
    pub fn in_message(start: &[u8], complete: bool) -> Missing {
        let end = start.windows(4).position(|w| w == b"\r\n\r\n");
        let section = match end {
            Some(at) => &start[..at + 2],
            None if start.starts_with(b"\r\n") => &[][..],
            None if complete => start,
            None => return Missing::default(),
        };
        Missing {
            date: !has_field(section, b"date"),
            message_id: !has_field(section, b"message-id"),
        }
    }

    /// The header lines to prepend, each ending in CRLF.
    pub fn headers(&self, queue_id: &str, hostname: &str, time: u64) -> String {
        let mut out = String::new();
        if self.date {
            out.push_str(&format!("Date: {}\r\n", rfc5322_date(time)));
        }
        if self.message_id {
            out.push_str(&format!("Message-ID: <{queue_id}@{hostname}>\r\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_is_missing() {
        let both = Missing::in_message(b"Subject: x\r\n\r\nDate: body\r\n", true);
        assert_eq!(
            both,
            Missing {
                date: true,
                message_id: true
            }
        );
        let none = Missing::in_message(
            b"DATE: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <a@b>\r\n\r\nbody\r\n",
            true,
        );
        assert_eq!(none, Missing::default());
        let headers_only = Missing::in_message(b"Message-ID: <a@b>\r\n", true);
        assert_eq!(
            headers_only,
            Missing {
                date: true,
                message_id: false
            }
        );
        assert_eq!(
            Missing::in_message(b"Subject: long\r\nX-A: ", false),
            Missing::default(),
            "an unfinished header section adds nothing"
        );
        assert!(Missing::in_message(b"Dated: x\r\n\r\n", true).date);
    }

    #[test]
    fn headers_are_well_formed() {
        let text = Missing {
            date: true,
            message_id: true,
        }
        .headers("ABC", "mx.test", 0);
        assert!(text.starts_with("Date: Thu, 1 Jan 1970"), "{text}");
        assert!(text.ends_with("Message-ID: <ABC@mx.test>\r\n"), "{text}");
    }
}
