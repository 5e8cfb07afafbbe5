//! Who receives mail here: local domains, accounts and their addresses, aliases and
//! catch-alls. Recipients are resolved at RCPT time, so an unknown user is refused during
//! the SMTP dialogue instead of bounced later (no backscatter).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use posthorn_proto::address::{self, parse_mailbox};
use posthorn_proto::{ForwardPath, Mailbox, ReversePath};
use posthorn_spool::{Recipient, Route};
use tracing::info;

use super::srs::Srs;
use crate::config::{self, Config, Invalid, SendingLimits};

/// How deep alias chains may go before we call it a loop.
const MAX_ALIAS_DEPTH: usize = 10;

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name, also its mailbox folder.
    pub name: String,
    /// Mailbox size limit in octets.
    pub quota: Option<u64>,
    /// Its argon2id password hash; `None` cannot log in.
    pub password: Option<String>,
    /// The sender addresses it may use in MAIL FROM.
    pub send_as: Vec<SenderPattern>,
    /// Its sending limits.
    pub sending: SendingLimits,
    /// Senders whose mail to it skips scoring (`[checks]`).
    pub allow_senders: Vec<SenderPattern>,
    /// Senders whose mail to it is refused at RCPT.
    pub block_senders: Vec<SenderPattern>,
}

/// One entry of an account's `send_as`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderPattern {
    /// This address (lower case; `user+tag` matches `user`).
    Address(String),
    /// Any address at this domain (lower case).
    Domain(String),
    /// Any address at all.
    Any,
}

impl SenderPattern {
    /// Parses `*`, `@domain` or an address.
    pub fn parse(text: &str) -> Result<SenderPattern, String> {
        if text == "*" {
            return Ok(SenderPattern::Any);
        }
        if let Some(domain) = text.strip_prefix('@') {
            return if address::is_valid_domain(domain) {
                Ok(SenderPattern::Domain(domain.to_lowercase()))
            } else {
                Err(format!("{domain:?} is not a domain"))
            };
        }
        parse_mailbox(text)
            .map(|m| SenderPattern::Address(lookup_key(&m)))
            .map_err(|e| format!("not a valid address ({e})"))
    }
}

impl std::fmt::Display for SenderPattern {
    /// As written in `send_as`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SenderPattern::Address(address) => f.write_str(address),
            SenderPattern::Domain(domain) => write!(f, "@{domain}"),
            SenderPattern::Any => f.write_str("*"),
        }
    }
}

/// One final destination of a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address delivered to (written as `Delivered-To`).
    pub address: Mailbox,
    /// Local account or remote.
    pub route: Route,
}

/// What a RCPT address leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Deliver to these targets (one, or several through an alias).
    Deliver(Vec<Target>),
    /// A local domain, but nobody by that name.
    UnknownUser,
    /// Not a local domain: delivering means relaying.
    Remote,
}

/// The recipient directory, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Directory {
    /// Lower-case local domain → its catch-all account.
    domains: HashMap<String, Option<String>>,
    /// The first configured domain: where bare `<Postmaster>` goes.
    primary_domain: String,
    /// Lower-case address → account name.
    addresses: HashMap<String, String>,
    /// Account name → account.
    accounts: HashMap<String, Account>,
    /// Lower-case address → its targets.
    aliases: HashMap<String, Vec<Mailbox>>,
    /// `user+tag` separator.
    delimiter: Option<char>,
    /// Root of the mailboxes.
    mail_root: PathBuf,
    /// Local Unix user → the senders it may use besides `user@hostname`.
    local_send_as: HashMap<String, Vec<SenderPattern>>,
    /// Our host name, the domain of local users' own addresses.
    hostname: String,
    /// Sender rewriting of forwarded mail, when `delivery.srs` is on.
    srs: Option<Arc<Srs>>,
}

impl Directory {
    /// Builds the directory from the configuration and the users file, refusing anything
    /// inconsistent (unknown catch-all account, an address claimed twice, an alias loop,
    /// an alias to a local nobody...). A user named like a configured account adds its
    /// password, `send_as` and limits to it; other users are new accounts.
    pub fn build_with_users(
        config: &Config,
        users: &[config::Account],
    ) -> Result<Directory, Invalid> {
        let mut accounts: Vec<(String, config::Account)> = config
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("account[{i}]"), a.clone()))
            .collect();
        for (i, user) in users.iter().enumerate() {
            match accounts
                .iter_mut()
                .find(|(_, a)| a.name.get_ref() == user.name.get_ref())
            {
                Some((_, account)) => {
                    account.password = user.password.clone().or(account.password.take());
                    account.send_as = user.send_as.clone().or(account.send_as.take());
                    account.sending = user.sending.or(account.sending);
                    account.quota = user.quota.or(account.quota);
                    account.addresses = user.addresses.clone().or(account.addresses.take());
                }
                None => accounts.push((format!("user[{i}]"), user.clone())),
            }
        }
        let mut directory = Directory {
            domains: HashMap::new(),
            primary_domain: String::new(),
            addresses: HashMap::new(),
            accounts: HashMap::new(),
            aliases: HashMap::new(),
            delimiter: config.recipient_delimiter(),
            mail_root: config.server.data_dir.join("mail"),
            local_send_as: HashMap::new(),
            hostname: config.server.hostname.get_ref().to_lowercase(),
            srs: config.delivery.srs.then(|| {
                let days = config.delivery.srs_max_age.0.as_secs() / 86_400;
                Arc::new(Srs::new(&config.server.data_dir, days))
            }),
        };
        for (user, patterns) in &config.policy.local_send_as {
            let parsed = patterns
                .iter()
                .enumerate()
                .map(|(j, text)| {
                    SenderPattern::parse(text.get_ref()).map_err(|e| {
                        Invalid::at(format!("policy.local_send_as.{user}[{j}]"), text, e)
                    })
                })
                .collect::<Result<_, _>>()?;
            directory.local_send_as.insert(user.clone(), parsed);
        }
        for (i, domain) in config.domains.iter().enumerate() {
            let name = domain.name.get_ref();
            let key = format!("domain[{i}].name");
            if !address::is_valid_domain(name) {
                return Err(Invalid::at(key, &domain.name, "not a valid domain name"));
            }
            if directory
                .domains
                .insert(name.to_lowercase(), None)
                .is_some()
            {
                return Err(Invalid::at(key, &domain.name, "domain listed twice"));
            }
        }
        directory.primary_domain = config
            .domains
            .first()
            .map(|d| d.name.get_ref().to_lowercase())
            .unwrap_or_default();

        for (prefix, account) in &accounts {
            let name = account.name.get_ref();
            let key = format!("{prefix}.name");
            if !is_safe_account_name(name) {
                return Err(Invalid::at(
                    key,
                    &account.name,
                    "account names use lower-case letters, digits, '.', '_' and '-', and do not start with '.'",
                ));
            }
            if directory.accounts.contains_key(name) {
                return Err(Invalid::at(key, &account.name, "account defined twice"));
            }
            let mut own = Vec::new();
            match &account.addresses {
                Some(addresses) => {
                    for (j, text) in addresses.iter().enumerate() {
                        let key = format!("{prefix}.addresses[{j}]");
                        let mailbox = directory.local_mailbox(&key, text)?;
                        directory.claim(&key, text, &mailbox, name)?;
                        own.push(SenderPattern::Address(lookup_key(&mailbox)));
                    }
                }
                None => {
                    let domains: Vec<String> = config
                        .domains
                        .iter()
                        .map(|d| d.name.get_ref().to_lowercase())
                        .collect();
                    for domain in domains {
                        let mailbox = Mailbox {
                            local: name.clone(),
                            domain,
                        };
                        directory.claim(&key, &account.name, &mailbox, name)?;
                        own.push(SenderPattern::Address(lookup_key(&mailbox)));
                    }
                }
            }
            let send_as = match &account.send_as {
                None => own,
                Some(patterns) => patterns
                    .iter()
                    .enumerate()
                    .map(|(j, text)| {
                        SenderPattern::parse(text.get_ref())
                            .map_err(|e| Invalid::at(format!("{prefix}.send_as[{j}]"), text, e))
                    })
                    .collect::<Result<_, _>>()?,
            };
            if let Some(hash) = &account.password
                && !crate::accounts::passwords::is_hash(hash.get_ref())
            {
                return Err(Invalid::at(
                    format!("{prefix}.password"),
                    hash,
                    "not an argon2 hash: set passwords with `posthorn user passwd`",
                ));
            }
            let patterns = |key: &str, texts: &[toml::Spanned<String>]| {
                texts
                    .iter()
                    .enumerate()
                    .map(|(j, text)| {
                        SenderPattern::parse(text.get_ref())
                            .map_err(|e| Invalid::at(format!("{prefix}.{key}[{j}]"), text, e))
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            let entry = Account {
                name: name.clone(),
                quota: account.quota.map(|q| q.0),
                password: account.password.as_ref().map(|p| p.get_ref().clone()),
                send_as,
                sending: account.sending.unwrap_or(config.sending),
                allow_senders: patterns("allow_senders", &account.allow_senders)?,
                block_senders: patterns("block_senders", &account.block_senders)?,
            };
            directory.accounts.insert(name.clone(), entry);
        }

        for (i, domain) in config.domains.iter().enumerate() {
            if let Some(catch_all) = &domain.catch_all {
                if !directory.accounts.contains_key(catch_all.get_ref()) {
                    return Err(Invalid::at(
                        format!("domain[{i}].catch_all"),
                        catch_all,
                        format!("no account named {:?}", catch_all.get_ref()),
                    ));
                }
                directory.domains.insert(
                    domain.name.get_ref().to_lowercase(),
                    Some(catch_all.get_ref().clone()),
                );
            }
        }

        directory.add_aliases(&config.aliases)?;
        Ok(directory)
    }

    fn add_aliases(
        &mut self,
        aliases: &BTreeMap<toml::Spanned<String>, Vec<toml::Spanned<String>>>,
    ) -> Result<(), Invalid> {
        for (source, targets) in aliases {
            let key = format!("aliases.{:?}", source.get_ref());
            let mailbox = self.local_mailbox(&key, source)?;
            let lookup = lookup_key(&mailbox);
            if self.addresses.contains_key(&lookup) || self.aliases.contains_key(&lookup) {
                return Err(Invalid::at(
                    key,
                    source,
                    "address already belongs to an account or alias",
                ));
            }
            if targets.is_empty() {
                return Err(Invalid::at(
                    key,
                    source,
                    "an alias needs at least one target",
                ));
            }
            let mut parsed = Vec::new();
            for target in targets {
                let mailbox = parse_mailbox(target.get_ref())
                    .map_err(|e| Invalid::at(&key, target, format!("not a valid address ({e})")))?;
                parsed.push(mailbox);
            }
            self.aliases.insert(lookup, parsed);
        }
        // Every alias must reach someone, without loops.
        for (source, targets) in aliases {
            let key = format!("aliases.{:?}", source.get_ref());
            for target in targets {
                let (Ok(source), Ok(mailbox)) = (
                    parse_mailbox(source.get_ref()),
                    parse_mailbox(target.get_ref()),
                ) else {
                    continue;
                };
                let mut seen = HashSet::from([lookup_key(&source)]);
                let mut out = Vec::new();
                if let Err(problem) = self.expand(&mailbox, 1, &mut seen, &mut out) {
                    return Err(Invalid::at(key, target, problem));
                }
            }
        }
        Ok(())
    }

    /// Parses `text` as an address in one of our domains.
    fn local_mailbox(&self, key: &str, text: &toml::Spanned<String>) -> Result<Mailbox, Invalid> {
        let mailbox = parse_mailbox(text.get_ref())
            .map_err(|e| Invalid::at(key, text, format!("not a valid address ({e})")))?;
        if !self.is_local_domain(&mailbox.domain) {
            return Err(Invalid::at(
                key,
                text,
                format!("{} is not one of the configured domains", mailbox.domain),
            ));
        }
        Ok(mailbox)
    }

    fn claim(
        &mut self,
        key: &str,
        text: &toml::Spanned<String>,
        mailbox: &Mailbox,
        account: &str,
    ) -> Result<(), Invalid> {
        if self
            .addresses
            .insert(lookup_key(mailbox), account.to_string())
            .is_some()
        {
            return Err(Invalid::at(
                key,
                text,
                format!("{mailbox} belongs to two accounts"),
            ));
        }
        Ok(())
    }

    /// True when we receive mail for `domain`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.contains_key(&domain.to_lowercase())
    }

    /// The MAIL FROM `recipient` gets: a sender of another domain is rewritten (SRS)
    /// when an alias or a redirect of ours forwarded the message to another server, so
    /// the next hop's SPF check sees our domain; any other sender is kept.
    pub fn forwarding_sender(&self, sender: &ReversePath, recipient: &Recipient) -> ReversePath {
        let (Some(srs), ReversePath::Mailbox(from)) = (&self.srs, sender) else {
            return sender.clone();
        };
        let forwarder = match parse_mailbox(&recipient.rcpt) {
            Ok(forwarder) => forwarder,
            Err(_) => return sender.clone(),
        };
        let forwarded = recipient.route == Route::Remote
            && lookup_key(&forwarder) != lookup_key(&recipient.address)
            && self.is_local_domain(&forwarder.domain);
        if !forwarded || self.is_local_domain(&from.domain) {
            return sender.clone();
        }
        ReversePath::Mailbox(srs.forward(from, &forwarder.domain.to_lowercase(), today()))
    }

    /// The address an SRS address of one of our domains stands for (`None`: it is none).
    fn srs_original(&self, mailbox: &Mailbox) -> Option<Result<Mailbox, String>> {
        let reversed = self.srs.as_ref()?.reverse(&mailbox.local, today())?;
        Some(reversed.map_err(|why| {
            info!(address = %mailbox, ?why, "SRS address refused");
            format!("{mailbox} is not a valid forwarding address ({why:?})")
        }))
    }

    /// The account called `name`.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// The addresses that deliver to the account called `name`, sorted.
    pub fn addresses_of(&self, name: &str) -> Vec<String> {
        let mut addresses: Vec<String> = self
            .addresses
            .iter()
            .filter(|(_, account)| *account == name)
            .map(|(address, _)| address.clone())
            .collect();
        addresses.sort();
        addresses
    }

    /// The account a login name stands for: an account name, or one of its addresses.
    pub fn login(&self, login: &str) -> Option<&Account> {
        if let Some(account) = self.accounts.get(login) {
            return Some(account);
        }
        let mailbox = parse_mailbox(login).ok()?;
        let name = self.addresses.get(&lookup_key(&mailbox))?;
        self.accounts.get(name)
    }

    /// True when `account` may use `sender` in MAIL FROM.
    pub fn may_send_as(&self, account: &Account, sender: &Mailbox) -> bool {
        self.matches_any(&account.send_as, sender)
    }

    /// True when the local Unix user `user` may use `sender`: its own `user@hostname`,
    /// or what `policy.local_send_as` gives it.
    pub fn local_may_send_as(&self, user: &str, sender: &Mailbox) -> bool {
        let own = SenderPattern::Address(lookup_key(&Mailbox {
            local: user.to_string(),
            domain: self.hostname.clone(),
        }));
        self.matches_any(std::slice::from_ref(&own), sender)
            || self
                .local_send_as
                .get(user)
                .is_some_and(|patterns| self.matches_any(patterns, sender))
    }

    /// True when one of `patterns` allows `sender`.
    pub fn matches_any(&self, patterns: &[SenderPattern], sender: &Mailbox) -> bool {
        let key = lookup_key(sender);
        let base = self.without_extension(sender).map(|b| lookup_key(&b));
        let domain = sender.domain.to_lowercase();
        patterns.iter().any(|pattern| match pattern {
            SenderPattern::Any => true,
            SenderPattern::Domain(d) => *d == domain,
            SenderPattern::Address(a) => *a == key || base.as_ref() == Some(a),
        })
    }

    /// The Maildir of an account.
    pub fn maildir(&self, account: &str) -> PathBuf {
        self.mail_root.join(account)
    }

    /// The root folder of all mailboxes.
    pub fn mail_root(&self) -> &Path {
        &self.mail_root
    }

    /// Resolves a RCPT TO path.
    pub fn resolve(&self, path: &ForwardPath) -> Resolution {
        let mailbox = match path {
            ForwardPath::Postmaster => Mailbox {
                local: "postmaster".into(),
                domain: self.primary_domain.clone(),
            },
            ForwardPath::Mailbox(m) => m.clone(),
        };
        if !self.is_local_domain(&mailbox.domain) {
            return Resolution::Remote;
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        match self.expand(&mailbox, 0, &mut seen, &mut out) {
            Ok(()) if !out.is_empty() => Resolution::Deliver(out),
            _ => Resolution::UnknownUser,
        }
    }

    /// Expands `mailbox` into final targets, following aliases.
    fn expand(
        &self,
        mailbox: &Mailbox,
        depth: usize,
        seen: &mut HashSet<String>,
        out: &mut Vec<Target>,
    ) -> Result<(), String> {
        if !self.is_local_domain(&mailbox.domain) {
            push_unique(
                out,
                Target {
                    address: mailbox.clone(),
                    route: Route::Remote,
                },
            );
            return Ok(());
        }
        if let Some(original) = self.srs_original(mailbox) {
            // A bounce to a sender we rewrote: on to the original sender.
            if depth > MAX_ALIAS_DEPTH {
                return Err(format!("SRS loop through {mailbox}"));
            }
            return self.expand(&original?, depth + 1, seen, out);
        }
        let key = lookup_key(mailbox);
        let base = self.without_extension(mailbox);
        if let Some(targets) = self
            .aliases
            .get(&key)
            .or_else(|| base.as_ref().and_then(|b| self.aliases.get(&lookup_key(b))))
        {
            // `seen` holds the aliases on the current path only, so two aliases may share
            // a target without that counting as a loop.
            if depth > MAX_ALIAS_DEPTH || !seen.insert(key.clone()) {
                return Err(format!("alias loop through {mailbox}"));
            }
            for target in targets {
                self.expand(target, depth + 1, seen, out)?;
            }
            seen.remove(&key);
            return Ok(());
        }
        let account = self
            .addresses
            .get(&key)
            .or_else(|| {
                base.as_ref()
                    .and_then(|b| self.addresses.get(&lookup_key(b)))
            })
            .or_else(|| {
                // RFC 5321 §4.5.1: postmaster of every domain must reach someone.
                let local = base.as_ref().unwrap_or(mailbox).local.to_lowercase();
                (local == "postmaster")
                    .then(|| self.accounts.get_key_value("postmaster").map(|(k, _)| k))
                    .flatten()
            })
            .or_else(|| {
                self.domains
                    .get(&mailbox.domain.to_lowercase())
                    .and_then(Option::as_ref)
            });
        match account {
            Some(account) => {
                push_unique(
                    out,
                    Target {
                        address: mailbox.clone(),
                        route: Route::Local {
                            account: account.clone(),
                        },
                    },
                );
                Ok(())
            }
            None => Err(format!(
                "{mailbox} is neither an account address nor an alias"
            )),
        }
    }

    /// `user+tag@domain` → `user@domain`, when a delimiter is configured and present.
    fn without_extension(&self, mailbox: &Mailbox) -> Option<Mailbox> {
        let delimiter = self.delimiter?;
        let (base, _) = mailbox.local.split_once(delimiter)?;
        (!base.is_empty()).then(|| Mailbox {
            local: base.to_string(),
            domain: mailbox.domain.clone(),
        })
    }
}

/// Days since the epoch, SRS's clock.
fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

fn push_unique(out: &mut Vec<Target>, target: Target) {
    if !out
        .iter()
        .any(|t| lookup_key(&t.address) == lookup_key(&target.address))
    {
        out.push(target);
    }
}

/// Addresses compare case-insensitively in lookups (RFC 5321 leaves local-part case to
/// the receiver; every deployed server folds it).
pub fn lookup_key(mailbox: &Mailbox) -> String {
    format!(
        "{}@{}",
        mailbox.local.to_lowercase(),
        mailbox.domain.to_lowercase()
    )
}

fn is_safe_account_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse;

    const CONFIG: &str = r#"
[[domain]]
name = "example.com"
catch_all = "bob"

[[domain]]
name = "example.org"

[[account]]
name = "alice"

[[account]]
name = "bob"
addresses = ["bob@example.com", "robert@example.org"]

[[account]]
name = "postmaster"
addresses = ["postmaster@example.com"]

[aliases]
"team@example.org" = ["alice@example.com", "robert@example.org", "friend@remote.example"]
"info@example.org" = ["team@example.org"]
"#;

    fn directory() -> Directory {
        Directory::build_with_users(&parse(CONFIG, None).unwrap(), &[]).unwrap()
    }

    fn rcpt(address: &str) -> Resolution {
        directory().resolve(&ForwardPath::Mailbox(parse_mailbox(address).unwrap()))
    }

    fn accounts(resolution: Resolution) -> Vec<String> {
        let Resolution::Deliver(targets) = resolution else {
            panic!("not delivered: {resolution:?}")
        };
        targets
            .into_iter()
            .map(|t| match t.route {
                Route::Local { account } => account,
                Route::Remote => format!("remote:{}", t.address),
            })
            .collect()
    }

    #[test]
    fn account_gets_name_at_every_domain() {
        assert_eq!(accounts(rcpt("alice@example.com")), ["alice"]);
        assert_eq!(accounts(rcpt("ALICE@Example.ORG")), ["alice"]);
    }

    #[test]
    fn explicit_addresses() {
        assert_eq!(accounts(rcpt("robert@example.org")), ["bob"]);
        assert_eq!(rcpt("bob@example.org"), Resolution::UnknownUser);
    }

    #[test]
    fn catch_all_takes_unknown_local_parts_of_its_domain_only() {
        assert_eq!(accounts(rcpt("whoever@example.com")), ["bob"]);
        assert_eq!(rcpt("whoever@example.org"), Resolution::UnknownUser);
    }

    #[test]
    fn subaddress_goes_to_the_base_address() {
        let Resolution::Deliver(targets) = rcpt("alice+lists@example.org") else {
            panic!()
        };
        assert_eq!(targets[0].address.local, "alice+lists");
        assert_eq!(
            targets[0].route,
            Route::Local {
                account: "alice".into()
            }
        );
    }

    #[test]
    fn aliases_expand_recursively_to_local_and_remote() {
        assert_eq!(
            accounts(rcpt("info@example.org")),
            ["alice", "bob", "remote:friend@remote.example"]
        );
    }

    #[test]
    fn postmaster_always_reaches_someone() {
        let d = directory();
        let Resolution::Deliver(targets) = d.resolve(&ForwardPath::Postmaster) else {
            panic!()
        };
        assert_eq!(
            targets[0].route,
            Route::Local {
                account: "postmaster".into()
            }
        );
        assert_eq!(accounts(rcpt("postmaster@example.org")), ["postmaster"]);
    }

    #[test]
    fn aliases_may_share_targets() {
        let config = parse(
            "[aliases]\n\"a@localhost\" = [\"b@localhost\", \"c@localhost\"]\n\"b@localhost\" = [\"postmaster@localhost\"]\n\"c@localhost\" = [\"postmaster@localhost\"]\n",
            None,
        )
        .unwrap();
        let d = Directory::build_with_users(&config, &[]).unwrap();
        let Resolution::Deliver(targets) =
            d.resolve(&ForwardPath::Mailbox(parse_mailbox("a@localhost").unwrap()))
        else {
            panic!()
        };
        assert_eq!(targets.len(), 1);
    }

    #[test]
    fn other_domains_are_remote() {
        assert_eq!(rcpt("x@elsewhere.example"), Resolution::Remote);
    }

    #[test]
    fn inconsistent_configs_are_refused_with_the_key() {
        let cases = [
            (
                "[[domain]]\nname = \"a.example\"\ncatch_all = \"nobody\"\n",
                "domain[0].catch_all",
                3,
            ),
            (
                "[[account]]\nname = \"x\"\naddresses = [\"x@elsewhere.example\"]\n",
                "account[0].addresses[0]",
                3,
            ),
            ("[[account]]\nname = \"../etc\"\n", "account[0].name", 2),
            (
                "[aliases]\n\"a@localhost\" = [\"nobody@localhost\"]\n",
                "aliases.\"a@localhost\"",
                2,
            ),
            (
                "[aliases]\n\"a@localhost\" = [\"b@localhost\"]\n\"b@localhost\" = [\"a@localhost\"]\n",
                "aliases.\"a@localhost\"",
                2,
            ),
            (
                "[aliases]\n\"postmaster@localhost\" = [\"x@remote.example\"]\n",
                "aliases.\"postmaster@localhost\"",
                2,
            ),
        ];
        for (text, key, line) in cases {
            let e = parse(text, None).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert_eq!(e.line, Some(line), "{text}: {e}");
        }
    }

    #[test]
    fn only_mail_forwarded_to_another_server_from_a_foreign_sender_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[server]\ndata_dir = \"{}\"\n{CONFIG}",
            dir.path().display()
        );
        let directory = Directory::build_with_users(&parse(&config, None).unwrap(), &[]).unwrap();
        let Resolution::Deliver(targets) = directory.resolve(&ForwardPath::Mailbox(
            parse_mailbox("team@example.org").unwrap(),
        )) else {
            panic!("team is an alias")
        };
        let recipient = |address: &str| {
            let target = targets
                .iter()
                .find(|t| t.address.to_string() == address)
                .unwrap();
            Recipient {
                rcpt: "team@example.org".into(),
                ..Recipient::new(target.address.clone(), target.route.clone())
            }
        };
        let sender = |text: &str| ReversePath::Mailbox(parse_mailbox(text).unwrap());
        let remote = recipient("friend@remote.example");
        let rewritten = directory.forwarding_sender(&sender("joe@elsewhere.example"), &remote);
        let ReversePath::Mailbox(rewritten) = rewritten else {
            panic!("a sender stays a sender")
        };
        assert_eq!(rewritten.domain, "example.org");
        let back = directory.resolve(&ForwardPath::Mailbox(rewritten));
        let Resolution::Deliver(back) = back else {
            panic!("{back:?}")
        };
        assert_eq!(back[0].address.to_string(), "joe@elsewhere.example");
        assert_eq!(back[0].route, Route::Remote);
        // Kept: our own domains' senders, bounces, local deliveries, mail not forwarded.
        for (from, to) in [
            (sender("bob@example.com"), remote.clone()),
            (ReversePath::Null, remote.clone()),
            (
                sender("joe@elsewhere.example"),
                recipient("alice@example.com"),
            ),
            (
                sender("joe@elsewhere.example"),
                Recipient::new(
                    parse_mailbox("friend@remote.example").unwrap(),
                    Route::Remote,
                ),
            ),
        ] {
            assert_eq!(directory.forwarding_sender(&from, &to), from);
        }
    }
}
