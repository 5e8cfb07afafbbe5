//! Symbols: what a check found, named as rspamd names them, each with a score. The
//! built-in scores are here; `[checks.scores]` replaces any of them. A message's score
//! is the sum of its symbols' scores.

use std::collections::HashMap;

use crate::config::Checks;

/// What kind of finding a symbol is: it decides the reply when the symbol is a hard
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Broken formatting (RFC 5322, MIME): refused with `550 5.6.0`.
    Format,
    /// Anything else: refused with `550 5.7.1`.
    Policy,
}

/// A symbol we know, with its built-in score.
pub struct Known {
    /// Its name.
    pub name: &'static str,
    /// Its built-in score.
    pub score: f64,
    /// What it means.
    pub description: &'static str,
}

const fn known(name: &'static str, score: f64, description: &'static str) -> Known {
    Known {
        name,
        score,
        description,
    }
}

/// The symbols of the stage itself (lists, authentication, reputation, scanners).
/// Content symbols come from `posthorn_inspect`, with scores in `content::SCORES`.
pub const STAGE: &[Known] = &[
    known(
        "SPF_PASS",
        -0.5,
        "SPF allows the client to send for the MAIL FROM domain",
    ),
    known(
        "SPF_FAIL",
        3.0,
        "SPF says the client may not send for the MAIL FROM domain",
    ),
    known(
        "SPF_SOFTFAIL",
        1.0,
        "SPF says the client is probably not allowed",
    ),
    known(
        "SPF_NEUTRAL",
        0.0,
        "SPF makes no statement about the client",
    ),
    known(
        "SPF_NONE",
        0.5,
        "the MAIL FROM domain publishes no SPF record",
    ),
    known("SPF_TEMPERROR", 0.0, "a DNS failure left SPF undecided"),
    known(
        "SPF_PERMERROR",
        1.0,
        "the SPF record of the MAIL FROM domain is broken",
    ),
    known("DKIM_PASS", -1.0, "a DKIM signature verified"),
    known("DKIM_FAIL", 2.0, "a DKIM signature did not verify"),
    known("DKIM_NONE", 0.5, "the message carries no DKIM signature"),
    known(
        "DKIM_TEMPERROR",
        0.0,
        "a DNS failure left a DKIM signature unchecked",
    ),
    known(
        "DMARC_PASS",
        -1.0,
        "the From domain is aligned with SPF or DKIM",
    ),
    known(
        "DMARC_FAIL",
        4.0,
        "the From domain publishes DMARC and is not aligned",
    ),
    known(
        "DMARC_NONE",
        0.5,
        "the From domain publishes no DMARC record",
    ),
    known(
        "ARC_PASS",
        -0.5,
        "an intact ARC chain vouches for the message",
    ),
    known("ARC_FAIL", 1.0, "the message's ARC chain is broken"),
    known(
        "FROM_LOCAL_UNAUTHENTICATED",
        6.0,
        "the From domain is one of ours, but no aligned DKIM signature proves it",
    ),
    known("SENDER_ALLOWED", -100.0, "the sender is on an allow list"),
    known(
        "BAYES_SPAM",
        6.0,
        "the classifier, taught by what users filed as junk, finds it spam",
    ),
    known(
        "BAYES_HAM",
        -3.0,
        "the classifier, taught by what users filed as junk, finds it ham",
    ),
    known(
        "JUNK_LOOKALIKE",
        6.0,
        "a near-copy of a message the recipient filed as junk",
    ),
    known(
        "KEPT_LOOKALIKE",
        -3.0,
        "a near-copy of a message the recipient filed out of Junk",
    ),
    known(
        "FROM_CORRESPONDENT",
        -6.0,
        "the recipient has written to the (authenticated) From address",
    ),
    known(
        "FROM_CORRESPONDENT_DOMAIN",
        -1.0,
        "the recipient has written to someone in the (authenticated) From domain",
    ),
    known(
        "FROM_KEPT",
        -3.0,
        "the recipient filed mail from this (authenticated) sender as not junk",
    ),
    known(
        "FROM_JUNKED",
        6.0,
        "the recipient filed mail from this sender as junk",
    ),
    known("DNSBL_ERROR", 0.0, "a DNS list could not be asked"),
    known("CLAMAV_VIRUS", 100.0, "clamd found a virus"),
    known("CLAMAV_FAIL", 0.0, "clamd could not scan the message"),
    known(
        "CHECKS_TIMEOUT",
        0.0,
        "a check did not finish within checks.time_budget",
    ),
    known(
        "TOO_BIG_TO_CHECK",
        0.0,
        "larger than checks.max_size: content not inspected",
    ),
];

/// A symbol a message got.
#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// Its score.
    pub score: f64,
    /// What exactly was found (a file name, a domain, a list's answer); may be empty.
    pub detail: String,
}

/// The score of every symbol: built-in, then `[checks.scores]`.
#[derive(Debug, Clone)]
pub struct Scores {
    scores: HashMap<String, f64>,
}

impl Scores {
    /// The scores `checks` gives.
    pub fn new(checks: &Checks) -> Scores {
        let mut scores: HashMap<String, f64> = STAGE
            .iter()
            .map(|k| (k.name.to_string(), k.score))
            .chain(
                super::content::SCORES
                    .iter()
                    .map(|(n, s)| (n.to_string(), *s)),
            )
            .collect();
        for list in &checks.dns_lists {
            scores.insert(list.symbol.get_ref().clone(), list.score);
        }
        for (name, score) in &checks.scores {
            scores.insert(name.get_ref().clone(), *score);
        }
        Scores { scores }
    }

    /// True for a symbol some check can give.
    pub fn knows(&self, name: &str) -> bool {
        self.scores.contains_key(name)
    }

    /// The symbol `name` with `detail`, scored.
    pub fn symbol(&self, name: &str, detail: impl Into<String>) -> Symbol {
        let score = self.scores.get(name).copied().unwrap_or_default();
        self.scored(name, score, detail)
    }

    /// The symbol `name` with a score the check gives itself (a DNS list's answer).
    pub fn scored(&self, name: &str, score: f64, detail: impl Into<String>) -> Symbol {
        Symbol {
            name: name.to_string(),
            score,
            detail: detail.into(),
        }
    }
}

/// The class of a symbol, for the reply when it is a hard error.
pub fn class_of(name: &str) -> Class {
    if super::content::is_format_symbol(name) {
        Class::Format
    } else {
        Class::Policy
    }
}
