//! What the remote server offers, from its EHLO reply (RFC 5321 §4.1.1.1).

use crate::reply::Reply;

/// The extensions of a remote server that change how we send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The name in the first line of the EHLO (or HELO) reply.
    pub name: String,
    /// True after EHLO; false when we had to fall back to HELO.
    pub esmtp: bool,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` means no fixed limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// SASL mechanisms of AUTH (RFC 4954), upper-cased.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads an EHLO reply.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut lines = reply.text.split('\n');
        let mut caps = Capabilities {
            name: first_word(lines.next().unwrap_or("")),
            esmtp: true,
            ..Capabilities::default()
        };
        for line in lines {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "CHUNKING" => caps.chunking = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => caps.auth = words.map(str::to_ascii_uppercase).collect(),
                _ => {}
            }
        }
        caps
    }

    /// Capabilities after a HELO: nothing but the name.
    pub fn from_helo(reply: &Reply) -> Self {
        Capabilities {
            name: first_word(reply.text.split('\n').next().unwrap_or("")),
            ..Capabilities::default()
        }
    }

    /// True when the server takes a message of `size` octets, as far as SIZE says.
    pub fn accepts_size(&self, size: u64) -> bool {
        match self.size {
            Some(limit) if limit > 0 => size <= limit,
            _ => true,
        }
    }
}

fn first_word(line: &str) -> String {
    line.split_whitespace().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_reply_is_understood() {
        let reply = Reply::plain(
            250,
            "mx.example.net Hello\nPIPELINING\nSIZE 35882577\n8BITMIME\nAUTH LOGIN plain\nSTARTTLS\nDSN\nCHUNKING\nSMTPUTF8\nENHANCEDSTATUSCODES",
        );
        let caps = Capabilities::from_ehlo(&reply);
        assert_eq!(caps.name, "mx.example.net");
        assert!(caps.pipelining && caps.eight_bit_mime && caps.starttls && caps.dsn);
        assert!(caps.chunking && caps.smtputf8 && caps.esmtp);
        assert_eq!(caps.size, Some(35882577));
        assert_eq!(caps.auth, ["LOGIN", "PLAIN"]);
        assert!(caps.accepts_size(35882577) && !caps.accepts_size(35882578));
    }

    #[test]
    fn size_without_number_means_no_limit() {
        let caps = Capabilities::from_ehlo(&Reply::plain(250, "mx\nSIZE"));
        assert_eq!(caps.size, Some(0));
        assert!(caps.accepts_size(u64::MAX));
    }
}
