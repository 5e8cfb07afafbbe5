//! DNS block and allow lists (RFC 5782): the client's address in IP lists, names (HELO,
//! MAIL FROM and From domains, link domains) in domain lists. All lookups of a message
//! run at once through the server's one resolver, whose cache remembers answers.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use tokio::task::JoinSet;

use super::symbols::{Scores, Symbol};
use crate::config::{DnsList, Lookup};
use crate::dns::Dns;

/// What a message offers the lists to look up.
#[derive(Debug, Default)]
pub struct Subjects {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The HELO name, when it is a domain.
    pub helo: Option<String>,
    /// The MAIL FROM domain.
    pub sender: Option<String>,
    /// The From header's domain.
    pub from: Option<String>,
    /// Domains of links in the message.
    pub urls: Vec<String>,
}

/// The configured lists.
#[derive(Clone)]
pub struct DnsLists {
    lists: Vec<DnsList>,
    dns: Dns,
}

impl DnsLists {
    /// `lists`, asked through `dns`.
    pub fn new(lists: Vec<DnsList>, dns: Dns) -> DnsLists {
        DnsLists { lists, dns }
    }

    /// True when no list is configured.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Asks every list about every subject it looks up; one symbol per list that lists
    /// something (its highest score), and `DNSBL_ERROR` for lists that could not be asked.
    pub async fn check(&self, subjects: &Subjects, scores: &Scores) -> Vec<Symbol> {
        let mut queries = JoinSet::new();
        for (index, list) in self.lists.iter().enumerate() {
            let zone = list.zone.get_ref().trim_end_matches('.');
            for name in names(list, subjects) {
                let dns = self.dns.clone();
                let query = format!("{}.{zone}", name.query);
                queries.spawn(async move { (index, name.shown, dns.ipv4(&query).await) });
            }
        }
        let mut best: Vec<Option<(f64, String)>> = vec![None; self.lists.len()];
        let mut failed = BTreeSet::new();
        while let Some(done) = queries.join_next().await {
            let Ok((index, shown, answer)) = done else {
                continue;
            };
            let list = &self.lists[index];
            match answer {
                Ok(addresses) => {
                    for address in addresses {
                        match score_of(list, address) {
                            Answer::Listed(score) => {
                                let better = best[index]
                                    .as_ref()
                                    .is_none_or(|(s, _)| score.abs() > s.abs());
                                if better {
                                    best[index] = Some((score, format!("{shown} {address}")));
                                }
                            }
                            Answer::Refused => {
                                failed.insert(list.zone.get_ref().clone());
                            }
                            Answer::Ignored => {}
                        }
                    }
                }
                Err(_) => {
                    failed.insert(list.zone.get_ref().clone());
                }
            }
        }
        let mut symbols: Vec<Symbol> = best
            .into_iter()
            .zip(&self.lists)
            .filter_map(|(found, list)| {
                found.map(|(score, detail)| scores.scored(list.symbol.get_ref(), score, detail))
            })
            .collect();
        if !failed.is_empty() {
            let zones: Vec<String> = failed.into_iter().collect();
            symbols.push(scores.symbol("DNSBL_ERROR", zones.join(" ")));
        }
        symbols
    }
}

/// One name to look up: what goes before the zone, and what the log shows.
struct Name {
    query: String,
    shown: String,
}

/// The names `list` looks up for `subjects`.
fn names(list: &DnsList, subjects: &Subjects) -> Vec<Name> {
    let mut names = Vec::new();
    let mut seen = BTreeSet::new();
    let mut domain = |names: &mut Vec<Name>, domain: &str| {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !domain.is_empty() && seen.insert(domain.clone()) {
            names.push(Name {
                query: domain.clone(),
                shown: domain,
            });
        }
    };
    for lookup in &list.lookups {
        match lookup {
            Lookup::Ip => {
                if let Some(ip) = subjects.ip {
                    names.push(Name {
                        query: reversed(ip),
                        shown: ip.to_string(),
                    });
                }
            }
            Lookup::Helo => subjects.helo.iter().for_each(|d| domain(&mut names, d)),
            Lookup::Sender => subjects.sender.iter().for_each(|d| domain(&mut names, d)),
            Lookup::From => subjects.from.iter().for_each(|d| domain(&mut names, d)),
            Lookup::Url => subjects.urls.iter().for_each(|d| domain(&mut names, d)),
        }
    }
    names
}

/// The address as a DNS list wants it: IPv4 octets reversed (RFC 5782 §2.1), IPv6
/// nibbles reversed (§2.4).
fn reversed(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let mut nibbles = Vec::with_capacity(32);
            for byte in v6.octets().iter().rev() {
                nibbles.push(format!("{:x}", byte & 0xf));
                nibbles.push(format!("{:x}", byte >> 4));
            }
            nibbles.join(".")
        }
    }
}

/// What one answer of a list means.
#[derive(Debug, PartialEq)]
enum Answer {
    /// Listed, with this score.
    Listed(f64),
    /// The list refuses to answer us (Spamhaus answers 127.255.255.x to open resolvers
    /// and over-quota users): not a listing, but worth knowing.
    Refused,
    /// An answer `returns` does not name, or outside 127.0.0.0/8 (§2.3: not a listing).
    Ignored,
}

fn score_of(list: &DnsList, address: Ipv4Addr) -> Answer {
    let [first, second, third, _] = address.octets();
    if first != 127 {
        return Answer::Ignored;
    }
    if second == 255 && third == 255 {
        return Answer::Refused;
    }
    if list.returns.is_empty() {
        return Answer::Listed(list.score);
    }
    match list.returns.get(&address.to_string()) {
        Some(score) => Answer::Listed(*score),
        None => Answer::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Spanned;

    fn list(returns: &[(&str, f64)]) -> DnsList {
        DnsList {
            zone: Spanned::new(0..0, "bl.test".into()),
            lookups: vec![Lookup::Ip, Lookup::Url],
            symbol: Spanned::new(0..0, "BL_TEST".into()),
            score: 2.0,
            returns: returns.iter().map(|(a, s)| (a.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn addresses_are_reversed_as_rfc_5782_says() {
        assert_eq!(reversed("192.0.2.99".parse().unwrap()), "99.2.0.192");
        assert_eq!(
            reversed("2001:db8:1:2:3:4:567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
        );
        assert_eq!(reversed("::ffff:192.0.2.1".parse().unwrap()), "1.2.0.192");
    }

    #[test]
    fn answers_score_by_returns_or_the_list_score() {
        let any = list(&[]);
        assert_eq!(
            score_of(&any, Ipv4Addr::new(127, 0, 0, 2)),
            Answer::Listed(2.0)
        );
        assert_eq!(score_of(&any, Ipv4Addr::new(10, 0, 0, 2)), Answer::Ignored);
        assert_eq!(
            score_of(&any, Ipv4Addr::new(127, 255, 255, 254)),
            Answer::Refused
        );
        let coded = list(&[("127.0.0.4", 5.0)]);
        assert_eq!(
            score_of(&coded, Ipv4Addr::new(127, 0, 0, 4)),
            Answer::Listed(5.0)
        );
        assert_eq!(
            score_of(&coded, Ipv4Addr::new(127, 0, 0, 2)),
            Answer::Ignored
        );
    }

    #[test]
    fn each_subject_is_asked_once() {
        let subjects = Subjects {
            ip: Some("192.0.2.1".parse().unwrap()),
            urls: vec![
                "Example.com".into(),
                "example.com.".into(),
                "other.test".into(),
            ],
            ..Subjects::default()
        };
        let queries: Vec<String> = names(&list(&[]), &subjects)
            .into_iter()
            .map(|n| n.query)
            .collect();
        assert_eq!(queries, ["1.2.0.192", "example.com", "other.test"]);
    }
}
