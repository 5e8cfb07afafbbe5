//! Allow and block lists (`[checks.allow]`, `[checks.block]`, and each account's
//! `allow_senders` / `block_senders`): senders by address or domain, clients by network.

use std::net::IpAddr;

use posthorn_proto::Mailbox;

use crate::accounts::directory::{Directory, SenderPattern};
use crate::config::{Invalid, Lists};

/// One list, parsed.
#[derive(Debug, Clone, Default)]
pub struct SenderList {
    senders: Vec<SenderPattern>,
    networks: Vec<ipnet::IpNet>,
}

impl SenderList {
    /// Parses `lists`, whose key in the configuration is `key`.
    pub fn new(key: &str, lists: &Lists) -> Result<SenderList, Invalid> {
        let senders = lists
            .senders
            .iter()
            .enumerate()
            .map(|(i, text)| {
                SenderPattern::parse(text.get_ref())
                    .map_err(|e| Invalid::at(format!("{key}.senders[{i}]"), text, e))
            })
            .collect::<Result<_, _>>()?;
        Ok(SenderList {
            senders,
            networks: lists.networks.clone(),
        })
    }

    /// True when the client at `ip` is in one of the networks.
    pub fn has_client(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// True when `domain`, or a domain above it, is listed as a whole (`@domain`).
    pub fn has_domain(&self, domain: &str) -> bool {
        self.senders
            .iter()
            .any(|p| matches!(p, SenderPattern::Domain(d) if is_within(domain, d)))
    }

    /// True when one of `senders` (MAIL FROM, the From header's addresses) is listed.
    pub fn has_sender(&self, directory: &Directory, senders: &[Mailbox]) -> bool {
        senders.iter().any(|sender| {
            directory.matches_any(&self.senders, sender) || self.has_domain(&sender.domain)
        })
    }
}

/// True when `domain` is `parent` (lower case) or below it: `@example.org` in
/// `[checks.allow]` and `[checks.block]` also covers `mail.example.org`.
fn is_within(domain: &str, parent: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_lowercase();
    domain == parent || domain.ends_with(&format!(".{parent}"))
}

/// True when every recipient account of `accounts` allows one of `senders`: the message
/// skips scoring only when no recipient wants it scored.
pub fn all_recipients_allow(
    directory: &Directory,
    accounts: &[String],
    senders: &[Mailbox],
) -> bool {
    !accounts.is_empty()
        && accounts.iter().all(|name| {
            directory.account(name).is_some_and(|account| {
                senders
                    .iter()
                    .any(|sender| directory.matches_any(&account.allow_senders, sender))
            })
        })
}

/// True when the account `name` blocks `sender`.
pub fn account_blocks(directory: &Directory, name: &str, sender: &Mailbox) -> bool {
    directory
        .account(name)
        .is_some_and(|account| directory.matches_any(&account.block_senders, sender))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Spanned;

    #[test]
    fn a_listed_domain_covers_its_subdomains_only() {
        let lists = Lists {
            senders: vec![Spanned::new(0..0, "@Example.org".to_string())],
            networks: Vec::new(),
        };
        let list = SenderList::new("checks.block", &lists).unwrap();
        for covered in ["example.org", "MAIL.example.org", "a.b.example.org."] {
            assert!(list.has_domain(covered), "{covered}");
        }
        for other in ["notexample.org", "example.org.test", "org"] {
            assert!(!list.has_domain(other), "{other}");
        }
    }
}
