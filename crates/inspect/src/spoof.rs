//! Who the message claims to be from: a local From domain (the server adds the DKIM part), a
//! domain that only looks local, and display names that show another address.

use mail_parser::Message;

use crate::Scan;
use crate::domain::{is_local, lookalike_of};
use crate::symbols::*;

pub(crate) fn check(scan: &mut Scan, parsed: Option<&Message>) {
    let Some(from) = parsed.and_then(|m| m.from()).and_then(|f| f.first()) else {
        return;
    };
    let Some(address) = from.address().filter(|a| is_mailbox(a)) else {
        return;
    };
    let domain = domain_of(address).to_ascii_lowercase();
    scan.report.from_domain = Some(domain.clone());
    let locals = scan.context.local_domains;
    if is_local(&domain, locals) {
        scan.add(FROM_LOCAL_DOMAIN, domain.clone());
    } else if let Some(local) = lookalike_of(&domain, locals) {
        scan.add(FROM_LOOKALIKE_LOCAL, format!("{domain} ~ {local}"));
    }
    if let Some(name) = from.name() {
        for shown in addresses_in(name) {
            if shown.eq_ignore_ascii_case(address) {
                continue;
            }
            scan.add(FROM_NAME_HAS_ADDRESS, format!("{shown} <{address}>"));
            if is_local(domain_of(shown), locals) {
                scan.add(FROM_NAME_LOCAL_ADDRESS, shown.to_owned());
            }
        }
    }
}

/// `local@domain` with both sides non-empty and no spaces: enough to say it parsed.
pub(crate) fn is_mailbox(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !address.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Address-like tokens (`x@y.z`) in free text, such as a display name.
fn addresses_in(text: &str) -> impl Iterator<Item = &str> {
    let is_atom = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    text.match_indices('@').filter_map(move |(at, _)| {
        let start = text[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| !is_atom(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = text[at + 1..]
            .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
            .map_or(text.len(), |i| at + 1 + i);
        let token = text[start..end].trim_end_matches('.');
        let (local, domain) = token.split_once('@')?;
        (!local.is_empty() && domain.contains('.')).then_some(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_addresses_in_names() {
        let found: Vec<_> = addresses_in("CEO <ceo@our.example> (via x@y)").collect();
        assert_eq!(found, ["ceo@our.example"]);
        assert_eq!(addresses_in("Jane Doe").count(), 0);
        assert!(is_mailbox("a@b"));
        assert!(!is_mailbox("a b@c"));
        assert!(!is_mailbox("@c"));
        assert!(!is_mailbox("nobody"));
    }
}
