//! Addresses out of header fields (RFC 5322 §3.4) and the parts `address` and
//! `envelope` compare (RFC 5228 §2.7.4, subaddress RFC 5233).

/// The separator between user and detail (RFC 5233 §4 leaves it to the site; `+` is
/// what Posthorn's delivery uses).
const DETAIL_SEPARATOR: char = '+';

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPart {
    #[default]
    All,
    LocalPart,
    Domain,
    User,
    Detail,
}

/// One mailbox: the local part unquoted, the domain as written (empty when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub local: String,
    pub domain: String,
}

impl Mailbox {
    /// Splits `local@domain` at its last `@`.
    pub fn from_spec(spec: &str) -> Mailbox {
        let spec = spec.trim();
        match spec.rfind('@') {
            Some(at) => Mailbox {
                local: unquote(spec[..at].trim()),
                domain: spec[at + 1..].trim().to_owned(),
            },
            None => Mailbox {
                local: unquote(spec),
                domain: String::new(),
            },
        }
    }

    /// The part asked for, or `None` when the address has none (RFC 5233 §4: an address
    /// without a separator has no detail, and then does not match at all).
    pub fn part(&self, part: AddressPart) -> Option<String> {
        match part {
            AddressPart::All if self.domain.is_empty() => Some(self.local.clone()),
            AddressPart::All => Some(format!("{}@{}", self.local, self.domain)),
            AddressPart::LocalPart => Some(self.local.clone()),
            AddressPart::Domain => Some(self.domain.clone()),
            AddressPart::User => Some(
                self.local
                    .split(DETAIL_SEPARATOR)
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            AddressPart::Detail => self
                .local
                .split_once(DETAIL_SEPARATOR)
                .map(|(_, detail)| detail.to_owned()),
        }
    }
}

/// The header fields the `address` test may read: RFC 5228 §5.1 requires the RFC 5322
/// ones and lets an implementation restrict the test to fields that hold addresses;
/// this is Pigeonhole's list.
pub fn is_address_field(name: &str) -> bool {
    const FIELDS: [&str; 14] = [
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "delivered-to",
        "x-original-to",
        "errors-to",
    ];
    FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// A rough RFC 5321 mailbox check for redirect targets: something on both sides of
/// an `@`, no blanks or control characters.
pub fn is_plausible_mailbox(address: &str) -> bool {
    let inner = address.trim().trim_start_matches('<').trim_end_matches('>');
    match inner.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !inner.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

fn unquote(local: &str) -> String {
    match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or('\\')
                } else {
                    c
                });
            }
            out
        }
        None => local.to_owned(),
    }
}

/// The mailboxes of an address-list header value: display names, comments, routes and
/// group names dropped; groups contribute their members.
pub fn parse_list(value: &str) -> Vec<Mailbox> {
    split_top_level(value)
        .iter()
        .filter_map(|item| mailbox_of(item))
        .collect()
}

/// Splits at commas and at the `:` / `;` of groups, outside quotes, comments and angle
/// brackets; comments are removed on the way.
fn split_top_level(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    let mut in_angle = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                current.push(c);
                while let Some(q) = chars.next() {
                    current.push(q);
                    if q == '\\' {
                        if let Some(escaped) = chars.next() {
                            current.push(escaped);
                        }
                    } else if q == '"' {
                        break;
                    }
                }
            }
            '(' => {
                let mut depth = 1;
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            chars.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                current.push(' ');
            }
            '<' => {
                in_angle = true;
                current.push(c);
            }
            '>' => {
                in_angle = false;
                current.push(c);
            }
            ',' | ';' if !in_angle => items.push(std::mem::take(&mut current)),
            ':' if !in_angle => current.clear(),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
}

fn mailbox_of(item: &str) -> Option<Mailbox> {
    let item = item.trim();
    if item.is_empty() {
        return None;
    }
    let spec = match (item.rfind('<'), item.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let inner = &item[open + 1..close];
            // An obsolete source route (`<@a,@b:user@host>`, RFC 5322 §4.4) is dropped.
            inner.rsplit_once(':').map_or(inner, |(_, addr)| addr)
        }
        _ => item,
    };
    let spec = spec.trim();
    (!spec.is_empty()).then(|| Mailbox::from_spec(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(value: &str) -> Vec<String> {
        parse_list(value)
            .iter()
            .filter_map(|m| m.part(AddressPart::All))
            .collect()
    }

    #[test]
    fn lists_groups_comments_and_quotes() {
        assert_eq!(
            all("Alice <alice@example.org>, bob@example.com (Bob)"),
            vec!["alice@example.org", "bob@example.com"]
        );
        assert_eq!(all("\"Smith, J\" <j@x.y>"), vec!["j@x.y"]);
        assert_eq!(
            all("team: a@x.y, b@x.y;, c@x.y"),
            vec!["a@x.y", "b@x.y", "c@x.y"]
        );
        assert_eq!(all("undisclosed-recipients:;"), Vec::<String>::new());
        assert_eq!(all("<@route:u@h>"), vec!["u@h"]);
        assert_eq!(all("\"odd user\"@x.y"), vec!["odd user@x.y"]);
    }

    #[test]
    fn subaddress_parts() {
        let m = Mailbox::from_spec("bob+work+x@Example.COM");
        assert_eq!(m.part(AddressPart::User).unwrap(), "bob");
        assert_eq!(m.part(AddressPart::Detail).unwrap(), "work+x");
        assert_eq!(m.part(AddressPart::Domain).unwrap(), "Example.COM");
        assert_eq!(Mailbox::from_spec("bob@x").part(AddressPart::Detail), None);
        assert_eq!(
            Mailbox::from_spec("bob+@x")
                .part(AddressPart::Detail)
                .unwrap(),
            ""
        );
    }
}
