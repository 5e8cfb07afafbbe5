//! Mail addresses as RFC 5321 §4.1.2 spells them, with the UTF-8 extensions of RFC 6531 §3.3.
//!
//! Parsing is strict about the grammar (it is the first line of defence against relay tricks)
//! and lenient only where every deployed server is: angle brackets may be omitted and a space
//! may follow `FROM:`/`TO:`. Source routes (`<@a,@b:user@c>`) are accepted and dropped as
//! RFC 5321 Appendix C asks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest local part in octets we take. RFC 5321 §4.5.3.1.1's 64 is what every server
/// must accept, and §4.5.3.1 asks for no limit where possible: forwarding addresses
/// (SRS, with the original address inside) often run longer, and Postfix takes them.
/// The path limit bounds it on the wire.
pub const MAX_LOCAL_PART: usize = 200;
/// Longest domain in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path including the angle brackets (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// A mailbox `local@domain`. The local part is held unquoted; `Display` quotes it again
/// when it is not a dot-string, so the wire form is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mailbox {
    /// The local part without surrounding quotes or quoted-pair backslashes.
    pub local: String,
    /// A domain name as given, or an address literal in brackets (`[192.0.2.1]`,
    /// `[IPv6:2001:db8::1]`).
    pub domain: String,
}

impl Mailbox {
    /// True when the whole address is ASCII; otherwise SMTPUTF8 is needed to carry it.
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }

    /// The IP address of an address-literal domain, if the domain is one.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        parse_address_literal(&self.domain)
    }

    /// The domain lower-cased, the form used for every lookup (domains are case-insensitive).
    pub fn domain_key(&self) -> String {
        self.domain.to_lowercase()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// The argument of MAIL FROM: a mailbox, or the null path `<>` used by bounces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReversePath {
    /// `<>`: the message is a notification and must never be bounced.
    Null,
    /// An ordinary sender.
    Mailbox(Mailbox),
}

impl ReversePath {
    /// The mailbox, unless this is the null path.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
}

impl fmt::Display for ReversePath {
    /// The address without brackets; the null path is the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// The argument of RCPT TO: a mailbox, or the bare `<Postmaster>` that every server must
/// accept without a domain (RFC 5321 §4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ForwardPath {
    /// `<Postmaster>` with no domain: the postmaster of this server.
    Postmaster,
    /// An ordinary recipient.
    Mailbox(Mailbox),
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("Postmaster"),
            ForwardPath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// Why an address did not parse; the text goes into the 501 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressError(pub &'static str);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for AddressError {}

/// Parses the path after `MAIL FROM:`; returns it and the rest of the line (the parameters).
pub fn parse_reverse_path(input: &str) -> Result<(ReversePath, &str), AddressError> {
    let input = input.trim_start_matches(' ');
    if let Some(rest) = input.strip_prefix("<>") {
        return Ok((ReversePath::Null, rest));
    }
    let (mailbox, rest) = parse_path(input)?;
    Ok((ReversePath::Mailbox(mailbox), rest))
}

/// Parses the path after `RCPT TO:`; returns it and the rest of the line (the parameters).
pub fn parse_forward_path(input: &str) -> Result<(ForwardPath, &str), AddressError> {
    let input = input.trim_start_matches(' ');
    if let Some(rest) = strip_prefix_ignore_case(input, "<postmaster>") {
        return Ok((ForwardPath::Postmaster, rest));
    }
    let (mailbox, rest) = parse_path(input)?;
    Ok((ForwardPath::Mailbox(mailbox), rest))
}

/// Parses a whole string as one mailbox `local@domain`, as configuration files hold them.
pub fn parse_mailbox(input: &str) -> Result<Mailbox, AddressError> {
    let mut cursor = Cursor::new(input);
    let mailbox = cursor.mailbox()?;
    if !cursor.at_end() {
        return Err(AddressError("Unexpected characters after address"));
    }
    Ok(mailbox)
}

/// Parses `<[A-d-l:]mailbox>` or a bare mailbox; returns the mailbox and what follows.
fn parse_path(input: &str) -> Result<(Mailbox, &str), AddressError> {
    let mut cursor = Cursor::new(input);
    let bracketed = cursor.eat(b'<');
    if bracketed && cursor.peek() == Some(b'@') {
        cursor.source_route()?;
    }
    let mailbox = cursor.mailbox()?;
    if bracketed && !cursor.eat(b'>') {
        return Err(AddressError("Missing '>' after address"));
    }
    let used = cursor.pos;
    if used > MAX_PATH {
        return Err(AddressError("Path too long"));
    }
    let rest = &input[used..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(AddressError("Unexpected characters after address"));
    }
    Ok((mailbox, rest))
}

/// True when `local` can be written without quotes (RFC 5321 Dot-string).
pub fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// atext of RFC 5322 §3.2.3, extended with every non-ASCII UTF-8 octet (RFC 6531 §3.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// Parses `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn parse_address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match strip_prefix_ignore_case(inner, "IPv6:") {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// True when `domain` is a syntactically valid domain name (RFC 5321 `Domain`), with U-labels
/// allowed (RFC 6531).
pub fn is_valid_domain(domain: &str) -> bool {
    let mut cursor = Cursor::new(domain);
    cursor.domain_name().is_ok() && cursor.at_end()
}

/// True when `name` may follow EHLO/HELO: a Domain or an address-literal (RFC 5321
/// §4.1.1.1). Like Postfix, we tolerate what real clients send that the grammar does not
/// allow but that breaks nothing: underscores in labels (Windows host names) and one
/// trailing dot. Nothing accepted can break the Received header it is recorded in.
pub fn is_valid_hello_name(name: &str) -> bool {
    let host = name.strip_suffix('.').unwrap_or(name);
    // An underscore is allowed wherever a letter is.
    is_valid_domain(&host.replace('_', "u")) || parse_address_literal(name).is_some()
}

/// `text` without `prefix`, compared ASCII-case-insensitively; safe on any UTF-8 input.
pub fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A byte cursor over the argument text.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `@dom1,@dom2:` — parsed for syntax, then forgotten.
    fn source_route(&mut self) -> Result<(), AddressError> {
        loop {
            if !self.eat(b'@') {
                return Err(AddressError("Bad source route"));
            }
            self.domain()?;
            if self.eat(b':') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(AddressError("Bad source route"));
            }
        }
    }

    fn mailbox(&mut self) -> Result<Mailbox, AddressError> {
        let local = if self.peek() == Some(b'"') {
            self.quoted_string()?
        } else {
            self.dot_string()?
        };
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError("Local part too long"));
        }
        if !self.eat(b'@') {
            return Err(AddressError("Address needs a domain (local@domain)"));
        }
        let domain = self.domain()?;
        Ok(Mailbox { local, domain })
    }

    fn dot_string(&mut self) -> Result<String, AddressError> {
        let start = self.pos;
        loop {
            let atom_start = self.pos;
            while self.peek().is_some_and(is_atext) {
                self.pos += 1;
            }
            if self.pos == atom_start {
                return Err(AddressError("Bad local part"));
            }
            if !self.eat(b'.') {
                break;
            }
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn quoted_string(&mut self) -> Result<String, AddressError> {
        self.pos += 1;
        let mut value = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(AddressError("Unterminated quoted local part"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => match self.peek() {
                    Some(b) if (32..=126).contains(&b) => {
                        self.pos += 1;
                        value.push(b as char);
                    }
                    _ => return Err(AddressError("Bad quoted pair in local part")),
                },
                ' '..='~' => value.push(c),
                c if !c.is_ascii() && !c.is_control() => value.push(c),
                _ => return Err(AddressError("Bad character in quoted local part")),
            }
        }
        if value.is_empty() {
            return Err(AddressError("Empty local part"));
        }
        Ok(value)
    }

    /// Domain or address literal.
    fn domain(&mut self) -> Result<String, AddressError> {
        if self.peek() == Some(b'[') {
            let start = self.pos;
            let Some(len) = self.text[start..].find(']') else {
                return Err(AddressError("Unterminated address literal"));
            };
            let literal = &self.text[start..start + len + 1];
            if parse_address_literal(literal).is_none() {
                return Err(AddressError("Bad address literal"));
            }
            self.pos += len + 1;
            return Ok(literal.to_string());
        }
        self.domain_name()
    }

    /// `sub-domain *("." sub-domain)` where sub-domain = Let-dig [Ldh-str].
    fn domain_name(&mut self) -> Result<String, AddressError> {
        let start = self.pos;
        loop {
            let label_start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
            {
                self.pos += 1;
            }
            let label = &self.text[label_start..self.pos];
            if label.is_empty() || label.starts_with('-') || label.ends_with('-') {
                return Err(AddressError("Bad domain"));
            }
            if label.len() > 63 {
                return Err(AddressError("Domain label too long"));
            }
            if !(self.peek() == Some(b'.')
                && self
                    .text
                    .as_bytes()
                    .get(self.pos + 1)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b >= 0x80))
            {
                break;
            }
            self.pos += 1;
        }
        let domain = &self.text[start..self.pos];
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError("Domain too long"));
        }
        Ok(domain.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn plain_path() {
        let (path, rest) = parse_reverse_path("<a.b@example.com> SIZE=10").unwrap();
        assert_eq!(path, ReversePath::Mailbox(mailbox("a.b", "example.com")));
        assert_eq!(rest, " SIZE=10");
    }

    #[test]
    fn null_path() {
        assert_eq!(parse_reverse_path("<>").unwrap().0, ReversePath::Null);
    }

    #[test]
    fn quoted_local_part_is_unquoted_and_requoted() {
        let (path, _) = parse_forward_path(r#"<"john \"j\" doe"@example.com>"#).unwrap();
        let ForwardPath::Mailbox(m) = path else {
            panic!("not a mailbox")
        };
        assert_eq!(m.local, r#"john "j" doe"#);
        assert_eq!(m.to_string(), r#""john \"j\" doe"@example.com"#);
    }

    #[test]
    fn quoted_dot_string_is_written_plain() {
        let (path, _) = parse_forward_path(r#"<"john"@example.com>"#).unwrap();
        assert_eq!(path.to_string(), "john@example.com");
    }

    #[test]
    fn source_route_is_stripped() {
        let (path, _) = parse_forward_path("<@a.example,@b.example:user@c.example>").unwrap();
        assert_eq!(path, ForwardPath::Mailbox(mailbox("user", "c.example")));
    }

    #[test]
    fn address_literals() {
        let (path, _) = parse_forward_path("<u@[192.0.2.1]>").unwrap();
        let ForwardPath::Mailbox(m) = path else {
            panic!()
        };
        assert_eq!(m.literal_ip(), Some("192.0.2.1".parse().unwrap()));
        let (path, _) = parse_forward_path("<u@[IPv6:2001:db8::1]>").unwrap();
        let ForwardPath::Mailbox(m) = path else {
            panic!()
        };
        assert_eq!(m.literal_ip(), Some("2001:db8::1".parse().unwrap()));
        assert!(parse_forward_path("<u@[300.1.1.1]>").is_err());
        assert!(parse_forward_path("<u@[tag:stuff]>").is_err());
    }

    #[test]
    fn hello_names() {
        for good in [
            "client.test",
            "x",
            "mail-1.example.com",
            "[192.0.2.1]",
            "[IPv6:::1]",
            "DESKTOP_7.example.com",
            "under_score",
            "dot.",
        ] {
            assert!(is_valid_hello_name(good), "{good}");
        }
        for bad in [
            "fake.example.com([10.0.0.1])by=trusted;",
            "a;b",
            "(comment)",
            "dot..",
            ".",
            "-lead.example",
            "[10.0.0.1",
            "[tag:stuff]",
            "192.0.2.1]",
            "a\"b",
        ] {
            assert!(!is_valid_hello_name(bad), "{bad}");
        }
    }

    #[test]
    fn bare_postmaster_any_case() {
        assert_eq!(
            parse_forward_path("<POSTMASTER>").unwrap().0,
            ForwardPath::Postmaster
        );
        assert!(matches!(
            parse_forward_path("<postmaster@example.com>").unwrap().0,
            ForwardPath::Mailbox(_)
        ));
    }

    #[test]
    fn missing_brackets_are_tolerated() {
        let (path, rest) = parse_reverse_path(" a@example.com BODY=8BITMIME").unwrap();
        assert_eq!(path, ReversePath::Mailbox(mailbox("a", "example.com")));
        assert_eq!(rest, " BODY=8BITMIME");
    }

    #[test]
    fn utf8_addresses_parse() {
        let (path, _) = parse_forward_path("<用户@例子.广告>").unwrap();
        let ForwardPath::Mailbox(m) = path else {
            panic!()
        };
        assert!(!m.is_ascii());
        assert_eq!(m.domain, "例子.广告");
    }

    #[test]
    fn bad_syntax_is_refused() {
        for bad in [
            "<a@>",
            "<@example.com>",
            "<a@example.com",
            "<a..b@example.com>",
            "<.a@example.com>",
            "<a.@example.com>",
            "<a@example.com.>",
            "<a@-example.com>",
            "<a@exa_mple.com>",
            "<a b@example.com>",
            "<a@b@example.com>",
            "<\"unterminated@example.com>",
            "<a@example.com>junk",
            "<a>",
            "",
        ] {
            assert!(parse_forward_path(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn length_limits() {
        let long_local = "a".repeat(201);
        assert!(parse_forward_path(&format!("<{long_local}@example.com>")).is_err());
        let ok_local = "a".repeat(200);
        assert!(parse_forward_path(&format!("<{ok_local}@example.com>")).is_ok());
        let long_label = "b".repeat(64);
        assert!(parse_forward_path(&format!("<a@{long_label}.com>")).is_err());
    }

    #[test]
    fn domain_validity() {
        assert!(is_valid_domain("mail.example.com"));
        assert!(!is_valid_domain("mail..example.com"));
        assert!(!is_valid_domain("mail.example.com."));
        assert!(!is_valid_domain(""));
    }

    #[test]
    fn parse_mailbox_needs_whole_input() {
        assert_eq!(
            parse_mailbox("x@example.com").unwrap(),
            mailbox("x", "example.com")
        );
        assert!(parse_mailbox("x@example.com more").is_err());
    }
}
