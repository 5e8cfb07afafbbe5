//! What RFC 6409 §8 lets a submission server fix in a message: a missing `Date` or
//! `Message-ID`. Applications that build mail by hand often forget them, and receivers
//! count their absence as a spam signal.

use crate::received::rfc5322_date;
use posthorn_proto::headers::has_field;

/// Which of the two headers a message lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    /// No `Date:` header.
    pub date: bool,
    /// No `Message-ID:` header.
    pub message_id: bool,
}

impl Missing {
    /// What the header section `section` lacks.
    pub fn in_section(section: &[u8]) -> Missing {
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
    use posthorn_proto::headers::header_section;

    #[test]
    fn finds_what_is_missing() {
        let both = Missing::in_section(header_section(b"Subject: x\r\n\r\nDate: body\r\n"));
        assert_eq!(
            both,
            Missing {
                date: true,
                message_id: true
            }
        );
        let none = Missing::in_section(
            b"DATE: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <a@b>\r\n\r\n",
        );
        assert_eq!(none, Missing::default());
        let headers_only = Missing::in_section(b"Message-ID: <a@b>\r\n");
        assert_eq!(
            headers_only,
            Missing {
                date: true,
                message_id: false
            }
        );
        assert!(Missing::in_section(b"Dated: x\r\n\r\n").date);
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
