//! The checking stage: after the end of DATA and before the 250, mail from other servers
//! (and, when the admin asks, from our users) is checked for formatting, threats, its
//! senders' reputation and authentication; each check adds scored symbols and the sum
//! gives one verdict (see `verdict`). Block lists refuse earlier, at MAIL and RCPT.
//!
//! Every check has a bound: content inspection runs on blocking threads, at most one per
//! core at a time, on a message already held within the sessions' shared memory budget;
//! everything together must finish within `checks.time_budget`, and a check that fails
//! or runs out of time gives a symbol, never a lost or half-accepted message.

pub(crate) mod auth;
pub mod clamav;
pub(crate) mod content;
pub(crate) mod dns_lists;
pub mod explain;
pub mod greylist;
pub(crate) mod learned;
pub(crate) mod lists;
pub mod milters;
pub(crate) mod symbols;
pub(crate) mod verdict;
pub(crate) mod virus;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use posthorn_proto::Mailbox;
use posthorn_proto::headers::remove_fields;
use posthorn_proto::reply::table;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::accounts::directory::Directory;
use crate::clock::Clock;
use crate::config::{Clamav, Classifier, Config, Invalid, OnFailure};
use crate::dns::Dns;
use crate::learning::Learning;
use crate::mailauth::verify::AuthResults;

use clamav::{Clamd, ClamdAddress, ClamdError, Scan};
use dns_lists::{DnsLists, Subjects};
use greylist::{Decision, Greylist};
use learned::Question;
use lists::SenderList;
use symbols::{Scores, Symbol};
use verdict::Thresholds;
pub use verdict::{Action, Verdict};

/// What the session knows of a message besides its content.
pub struct Facts<'a> {
    /// The client's address; `None` for a local program.
    pub ip: Option<IpAddr>,
    /// The HELO name.
    pub helo: &'a str,
    /// MAIL FROM; `None` for the null sender.
    pub sender: Option<&'a Mailbox>,
    /// The From header's addresses.
    pub authors: Vec<Mailbox>,
    /// The recipients as given in RCPT.
    pub recipients: Vec<String>,
    /// The local accounts the message goes to.
    pub accounts: Vec<String>,
    /// SPF, DKIM, DMARC and ARC, when they were checked.
    pub auth: Option<&'a AuthResults>,
    /// The client announced SMTPUTF8.
    pub smtputf8: bool,
    /// What the listener's milters decided, when it has any.
    pub milters: Option<&'a milters::Changes>,
    /// Who lives here.
    pub directory: Arc<Directory>,
}

/// The addresses of the From field of a header section that parse.
pub fn authors_of(section: &[u8]) -> Vec<Mailbox> {
    let Some(parsed) = mail_parser::MessageParser::new().parse_headers(section) else {
        return Vec::new();
    };
    parsed
        .from()
        .into_iter()
        .flat_map(|address| address.iter())
        .filter_map(|addr| addr.address())
        .filter_map(|text| posthorn_proto::address::parse_mailbox(text).ok())
        .collect()
}

/// Removes the verdict headers a message brought from outside (`X-Spam-*`,
/// `X-Posthorn-Checks`): a client or Sieve script must only ever see ours. Returns how
/// many.
pub fn strip_foreign_verdicts(content: &mut Vec<u8>) -> usize {
    remove_fields(content, |field| {
        let name = field
            .split(|&b| b == b':')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        (name.len() > 7 && name[..7].eq_ignore_ascii_case(b"x-spam-"))
            || name.eq_ignore_ascii_case(b"x-posthorn-checks")
    })
}

/// Checks what `[checks]` names: symbols that some check gives, sender lists that parse.
pub fn check_config(config: &Config) -> Result<(), Invalid> {
    let checks = &config.checks;
    let scores = Scores::new(checks);
    let named = checks
        .hard_errors
        .iter()
        .enumerate()
        .map(|(i, name)| (format!("checks.hard_errors[{i}]"), name))
        .chain(
            checks
                .scores
                .keys()
                .map(|name| (format!("checks.scores.{}", name.get_ref()), name)),
        );
    for (key, name) in named {
        if !scores.knows(name.get_ref()) {
            return Err(Invalid::at(
                key,
                name,
                "no check gives this symbol (`posthorn check --symbols` lists them)",
            ));
        }
    }
    SenderList::new("checks.allow", &checks.allow)?;
    SenderList::new("checks.block", &checks.block)?;
    check_classifier(&checks.classifier)?;
    if let Some(clamav) = &checks.clamav {
        clamd_address(clamav)?;
    }
    milters::check_config(config)
}

/// The classifier's probabilities lie in 0..=1, the ham one below the spam one.
fn check_classifier(classifier: &Classifier) -> Result<(), Invalid> {
    for (key, p) in [
        (
            "checks.classifier.spam_probability",
            classifier.spam_probability,
        ),
        (
            "checks.classifier.ham_probability",
            classifier.ham_probability,
        ),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Invalid::of(key, p, "a probability lies between 0 and 1"));
        }
    }
    if classifier.ham_probability >= classifier.spam_probability {
        return Err(Invalid::of(
            "checks.classifier.ham_probability",
            classifier.ham_probability,
            "must be below checks.classifier.spam_probability",
        ));
    }
    Ok(())
}

/// clamd's address as `[checks.clamav]` gives it.
fn clamd_address(clamav: &Clamav) -> Result<ClamdAddress, Invalid> {
    clamav
        .address
        .get_ref()
        .parse()
        .map_err(|e: clamav::AddressError| {
            Invalid::at("checks.clamav.address", &clamav.address, e.to_string())
        })
}

/// The stage, built once from `[checks]`.
pub struct Stage {
    scores: Arc<Scores>,
    thresholds: Thresholds,
    time_budget: Duration,
    max_size: u64,
    submissions: bool,
    allow: SenderList,
    block: SenderList,
    dns_lists: DnsLists,
    greylist: Option<Arc<Greylist>>,
    local_domains: Arc<[String]>,
    inspections: Arc<Semaphore>,
    clamd: Option<(Clamd, OnFailure)>,
    learnt: Option<Learnt>,
}

/// What users taught, and how the stage reads it (see `learned`).
#[derive(Clone)]
struct Learnt {
    learning: Arc<Learning>,
    classifier: Classifier,
    reputation: bool,
}

impl Stage {
    /// The stage of `config`, asking DNS lists through `dns`, keeping greylisting state
    /// in `data_dir`, on `clock`, scoring with what users taught in `learning`.
    pub fn new(
        config: &Config,
        dns: Dns,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        learning: Option<Arc<Learning>>,
    ) -> Result<Stage, Invalid> {
        check_config(config)?;
        let checks = &config.checks;
        let scores = Scores::new(checks);
        let greylist = checks.greylist.enabled.then(|| {
            Arc::new(Greylist::open(
                checks.greylist.clone(),
                config.limits.ipv6_prefix_length,
                data_dir.join("greylist.json"),
                clock,
            ))
        });
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Stage {
            scores: Arc::new(scores),
            thresholds: Thresholds {
                junk: checks.junk_score,
                reject: checks.reject_score,
                hard_errors: checks
                    .hard_errors
                    .iter()
                    .map(|h| h.get_ref().clone())
                    .collect(),
            },
            time_budget: checks.time_budget.0,
            max_size: checks.max_size.0,
            submissions: checks.submissions,
            allow: SenderList::new("checks.allow", &checks.allow)?,
            block: SenderList::new("checks.block", &checks.block)?,
            dns_lists: DnsLists::new(checks.dns_lists.clone(), dns),
            greylist,
            local_domains: config
                .domains
                .iter()
                .map(|d| d.name.get_ref().to_lowercase())
                .collect(),
            inspections: Arc::new(Semaphore::new(cores)),
            clamd: match &checks.clamav {
                Some(clamav) => Some((
                    Clamd::new(clamd_address(clamav)?, clamav.timeout.0),
                    clamav.on_failure,
                )),
                None => None,
            },
            learnt: learning.map(|learning| Learnt {
                learning,
                classifier: checks.classifier.clone(),
                reputation: checks.reputation.enabled,
            }),
        })
    }

    /// Starts the background work the stage needs (saving greylisting state).
    pub fn start(&self) {
        if let Some(greylist) = &self.greylist {
            greylist.keep_saved();
        }
    }

    /// Saves what must outlive the process (greylisting state): at shutdown.
    pub fn save(&self) {
        if let Some(greylist) = &self.greylist {
            greylist.save();
        }
    }

    /// Also check mail from our users, `sendmail` and trusted networks.
    pub fn checks_submissions(&self) -> bool {
        self.submissions
    }

    /// True when the client or sender is on the global block list: refused at MAIL.
    pub fn blocks(
        &self,
        directory: &Directory,
        ip: Option<IpAddr>,
        sender: Option<&Mailbox>,
    ) -> bool {
        ip.is_some_and(|ip| self.block.has_client(ip))
            || sender.is_some_and(|s| self.block.has_sender(directory, std::slice::from_ref(s)))
    }

    /// Checks one message. `content` is the whole message; it is given back.
    pub async fn run(&self, facts: &Facts<'_>, content: Vec<u8>) -> (Vec<u8>, Verdict) {
        let mut senders: Vec<Mailbox> = facts.sender.into_iter().cloned().collect();
        senders.extend(facts.authors.iter().cloned());
        let allowed = facts.ip.is_some_and(|ip| self.allow.has_client(ip))
            || self.allow.has_sender(&facts.directory, &senders)
            || lists::all_recipients_allow(&facts.directory, &facts.accounts, &senders);
        let content = Arc::new(content);
        let scored = async {
            if allowed {
                return vec![self.scores.symbol("SENDER_ALLOWED", "")];
            }
            let mut symbols = self.score(facts, &content).await;
            if let Some(results) = facts.auth {
                symbols.extend(auth::symbols(results, &self.local_domains, &self.scores));
            }
            symbols
        };
        // A virus is refused whoever sends it: an allowed sender is still scanned.
        let (mut symbols, scanned) = tokio::join!(scored, self.scan(&content));
        let mut decided = allowed.then_some(Action::Accept);
        if let Some(changes) = facts.milters {
            for name in &changes.failed {
                symbols.push(self.scores.symbol("MILTER_FAIL", name.as_str()));
            }
            if let Some(reason) = &changes.quarantine {
                symbols.push(self.scores.symbol("MILTER_QUARANTINE", reason.as_str()));
            }
        }
        let clamd_clean = self.clamd.is_some() && scanned.is_none();
        if let Some((symbol, action)) = scanned {
            symbols.push(symbol);
            decided = action.or(decided);
        }
        let mut verdict = self.thresholds.judge(symbols, decided);
        verdict.virus = virus::verdict(&verdict.symbols, clamd_clean);
        // A milter's quarantine makes mail junk at least; it never lessens a refusal.
        if verdict.action == Action::Accept && facts.milters.is_some_and(|m| m.quarantine.is_some())
        {
            verdict.action = Action::Junk;
        }
        if !allowed
            && matches!(verdict.action, Action::Accept | Action::Junk)
            && let Some(wait) = self.greylisted(facts)
        {
            verdict.action = Action::Defer(table::greylisted(wait));
        }
        let content = Arc::try_unwrap(content).unwrap_or_else(|shared| (*shared).clone());
        (content, verdict)
    }

    /// The scored checks: content inspection, then the DNS lists (which need the link
    /// domains the inspection found), all within the time budget.
    async fn score(&self, facts: &Facts<'_>, content: &Arc<Vec<u8>>) -> Vec<Symbol> {
        let inspected = tokio::time::timeout(self.time_budget, async {
            let report = self.inspect(facts, content).await;
            let subjects = Subjects {
                ip: facts.ip,
                helo: Some(facts.helo.to_string())
                    .filter(|h| posthorn_proto::address::is_valid_domain(h)),
                sender: facts.sender.map(|s| s.domain.clone()),
                from: facts.authors.first().map(|a| a.domain.clone()),
                urls: report.url_domains.clone(),
            };
            let mut symbols = report.symbols;
            if !self.dns_lists.is_empty() {
                symbols.extend(self.dns_lists.check(&subjects, &self.scores).await);
            }
            symbols
        })
        .await;
        inspected.unwrap_or_else(|_| vec![self.scores.symbol("CHECKS_TIMEOUT", "")])
    }

    /// The virus scan through clamd, when configured: its symbol (none when clean), and the action it
    /// decides (a virus is refused; a failed scan is deferred when the admin says so,
    /// unless the message is too large for clamd, which no retry changes).
    async fn scan(&self, content: &Arc<Vec<u8>>) -> Option<(Symbol, Option<Action>)> {
        let (clamd, on_failure) = self.clamd.as_ref()?;
        match clamd.scan(content.as_slice()).await {
            Ok(Scan::Clean) => None,
            Ok(Scan::Virus(signature)) => {
                let reply = table::virus_found(&verdict::header_safe(&signature));
                Some((
                    self.scores.symbol("CLAMAV_VIRUS", signature),
                    Some(Action::Reject(reply)),
                ))
            }
            Err(e) => {
                warn!(error = %e, "virus scan failed");
                let defer = *on_failure == OnFailure::Defer && !matches!(e, ClamdError::SizeLimit);
                let action = defer.then(|| Action::Defer(table::check_failed("virus")));
                Some((self.scores.symbol("CLAMAV_FAIL", e.to_string()), action))
            }
        }
    }

    /// Content inspection, when the message is small enough, on a blocking thread.
    async fn inspect(&self, facts: &Facts<'_>, content: &Arc<Vec<u8>>) -> content::Report {
        if content.len() as u64 > self.max_size {
            return content::Report::with(
                self.scores
                    .symbol("TOO_BIG_TO_CHECK", content.len().to_string()),
            );
        }
        // The permit goes with the work: an inspection that outlives the time budget still
        // holds its core until it ends, so no more than one per core ever run.
        let Ok(permit) = Arc::clone(&self.inspections).acquire_owned().await else {
            return content::Report::default();
        };
        let content = Arc::clone(content);
        let local_domains = Arc::clone(&self.local_domains);
        let scores = Arc::clone(&self.scores);
        let smtputf8 = facts.smtputf8;
        let learnt = self.learnt.clone().map(|learnt| {
            let question = Question::new(&facts.accounts, &facts.authors, facts.sender, facts.auth);
            (learnt, question)
        });
        tokio::task::spawn_blocking(move || {
            let mut report = content::inspect(&content, &local_domains, smtputf8, &scores);
            if let Some((learnt, question)) = learnt {
                report.symbols.extend(learned::symbols(
                    &learnt.learning,
                    &learnt.classifier,
                    learnt.reputation,
                    &question,
                    &content,
                    &scores,
                ));
            }
            drop(permit);
            report
        })
        .await
        .unwrap_or_default()
    }

    /// How long the sender must wait when greylisting defers the message. Senders that
    /// pass DMARC, or sign with DKIM for an allow-listed domain, are not greylisted.
    fn greylisted(&self, facts: &Facts<'_>) -> Option<u64> {
        let greylist = self.greylist.as_ref()?;
        let ip = facts.ip?;
        if let Some(auth) = facts.auth
            && (auth.dmarc == "pass" || auth.dkim_domains.iter().any(|d| self.allow.has_domain(d)))
        {
            return None;
        }
        let sender = facts.sender.map(|s| s.to_string()).unwrap_or_default();
        match greylist.check(ip, &sender, &facts.recipients) {
            Decision::Pass => None,
            Decision::Defer(wait) => Some(wait),
        }
    }
}
