//! `[checks]`: the checking stage for mail from other servers (format, threats, lists,
//! reputation, greylisting, ClamAV), and `[[milter]]`, the external filters a listener
//! hands its mail to.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Size, Span, text};

/// `[checks]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// Check mail arriving on mx listeners.
    pub enabled: bool,
    /// Also check mail from our own users, `sendmail` and trusted networks.
    pub submissions: bool,
    /// From this score on, a message goes to its recipients' Junk folder.
    pub junk_score: f64,
    /// From this score on, a message is refused (`550 5.7.1`).
    pub reject_score: f64,
    /// Symbols that refuse a message whatever its score.
    pub hard_errors: Vec<Spanned<String>>,
    /// The longest all checks of one message may take together; a check still running
    /// then gives its `_TIMEOUT` symbol.
    pub time_budget: Span,
    /// Larger messages are not inspected or scanned (`TOO_BIG_TO_CHECK`); lists, DNS
    /// checks and greylisting still apply.
    pub max_size: Size,
    /// Scores replacing the built-in ones, by symbol.
    pub scores: BTreeMap<Spanned<String>, f64>,
    /// Senders and networks whose mail skips scoring.
    pub allow: Lists,
    /// Senders and networks whose mail is refused at MAIL.
    pub block: Lists,
    /// DNS block and allow lists.
    #[serde(rename = "dnsbl")]
    pub dns_lists: Vec<DnsList>,
    /// Greylisting.
    pub greylist: Greylist,
    /// Virus scanning through clamd.
    pub clamav: Option<Clamav>,
    /// The statistical classifier that learns from what users file as junk.
    pub classifier: Classifier,
    /// Sender reputation per account: correspondents, kept and junked senders.
    pub reputation: Reputation,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            enabled: true,
            submissions: false,
            junk_score: 6.0,
            reject_score: 15.0,
            hard_errors: Vec::new(),
            time_budget: Span(std::time::Duration::from_secs(30)),
            max_size: Size(20 * 1024 * 1024),
            scores: BTreeMap::new(),
            allow: Lists::default(),
            block: Lists::default(),
            dns_lists: Vec::new(),
            greylist: Greylist::default(),
            clamav: None,
            classifier: Classifier::default(),
            reputation: Reputation::default(),
        }
    }
}

/// `[checks.classifier]`: the learning spam classifier (`BAYES_SPAM`, `BAYES_HAM`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Classifier {
    /// Score mail with it, and train it when users file mail into or out of Junk.
    pub enabled: bool,
    /// Spam messages a model must have learned before it scores (an account's own
    /// model takes over from the global one from then on).
    pub min_spam: u32,
    /// Ham messages a model must have learned before it scores.
    pub min_ham: u32,
    /// From this spam probability on, a message gets `BAYES_SPAM`.
    pub spam_probability: f64,
    /// Up to this spam probability, a message gets `BAYES_HAM`.
    pub ham_probability: f64,
    /// Tokens the global model keeps at most (rare and old ones go first).
    pub max_tokens: usize,
    /// Tokens each account's model keeps at most.
    pub account_max_tokens: usize,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            enabled: true,
            min_spam: 100,
            min_ham: 100,
            spam_probability: 0.9,
            ham_probability: 0.1,
            max_tokens: 1_000_000,
            account_max_tokens: 200_000,
        }
    }
}

/// `[checks.reputation]`: what each account's own mail says about a sender.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reputation {
    /// Record correspondents and filed senders, and score by them.
    pub enabled: bool,
    /// Senders remembered per account at most; the longest unseen go first.
    pub max_senders: usize,
}

impl Default for Reputation {
    fn default() -> Self {
        Reputation {
            enabled: true,
            max_senders: 20_000,
        }
    }
}

/// Senders and client networks, for `[checks.allow]` and `[checks.block]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lists {
    /// Sender addresses (`user@example.org`) and domains (`@example.org`, which also
    /// covers its subdomains), matched against MAIL FROM and the From header.
    pub senders: Vec<Spanned<String>>,
    /// Client networks.
    #[serde(deserialize_with = "text::list")]
    pub networks: Vec<ipnet::IpNet>,
}

/// `[[checks.dnsbl]]`: one DNS list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsList {
    /// The zone, e.g. `zen.spamhaus.org`.
    pub zone: Spanned<String>,
    /// What is looked up: `ip` (the client's address, a DNSBL or DNSWL), or names for a
    /// RHSBL: `helo`, `sender` (MAIL FROM domain), `from` (From header domain), `url`
    /// (domains of links in the message).
    #[serde(default = "default_lookups")]
    pub lookups: Vec<Lookup>,
    /// The symbol a listing gives.
    pub symbol: Spanned<String>,
    /// The score of a listing with any answer in 127.0.0.0/8; negative for an allow list.
    pub score: f64,
    /// Scores for particular answers (`"127.0.0.2" = 4.0`), replacing `score`.
    #[serde(default)]
    pub returns: BTreeMap<String, f64>,
}

fn default_lookups() -> Vec<Lookup> {
    vec![Lookup::Ip]
}

/// What a DNS list is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lookup {
    /// The client's IP address, reversed (RFC 5782 §2.1).
    Ip,
    /// The HELO name.
    Helo,
    /// The domain of MAIL FROM.
    Sender,
    /// The domain of the From header.
    From,
    /// The registrable domains of links in the message.
    Url,
}

/// `[checks.greylist]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Greylist {
    /// Defer the first message of a new (network, sender, recipient) triplet.
    pub enabled: bool,
    /// How long a sender must wait before its retry is accepted.
    pub delay: Span,
    /// How long a first attempt is remembered: a retry after this starts again.
    pub retry_window: Span,
    /// How long a client network that retried correctly is let through without delay.
    pub allow_for: Span,
    /// Triplets and networks remembered at most; the oldest go first.
    pub max_entries: usize,
}

impl Default for Greylist {
    fn default() -> Self {
        let day = 24 * 3600;
        Greylist {
            enabled: false,
            delay: Span(std::time::Duration::from_secs(300)),
            retry_window: Span(std::time::Duration::from_secs(2 * day)),
            allow_for: Span(std::time::Duration::from_secs(30 * day)),
            max_entries: 100_000,
        }
    }
}

/// `[checks.clamav]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clamav {
    /// clamd's socket: `unix:/run/clamav/clamd.ctl`, a path, or `host:port`.
    pub address: Spanned<String>,
    /// The longest one scan may take.
    #[serde(default = "default_scan_timeout")]
    pub timeout: Span,
    /// What happens when clamd cannot be reached or fails.
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_scan_timeout() -> Span {
    Span(std::time::Duration::from_secs(30))
}

/// What a check that could not run does to the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Answer `451 4.7.1`: the sender tries again later.
    #[default]
    #[serde(alias = "tempfail")]
    Defer,
    /// Accept, with the check's `_FAIL` symbol.
    Accept,
}

/// `[[milter]]`: an external filter speaking the milter protocol (rspamd, OpenDKIM,
/// clamav-milter), used by the listeners that name it in their `milters`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milter {
    /// The name listeners use for it.
    pub name: Spanned<String>,
    /// Its socket: `unix:/path`, `inet:host:port` or `host:port`.
    pub address: Spanned<String>,
    /// Connecting to it.
    #[serde(default = "default_milter_connect")]
    pub connect_timeout: Span,
    /// Each command before the content.
    #[serde(default = "default_milter_command")]
    pub command_timeout: Span,
    /// Each part of the content, and its verdict at the end.
    #[serde(default = "default_milter_content")]
    pub content_timeout: Span,
    /// What happens when it is down or fails: `tempfail` (451 4.7.1) or `accept`
    /// (the message goes on without it).
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_milter_connect() -> Span {
    Span(std::time::Duration::from_secs(30))
}

fn default_milter_command() -> Span {
    Span(std::time::Duration::from_secs(30))
}

fn default_milter_content() -> Span {
    Span(std::time::Duration::from_secs(300))
}
