//! `posthorn check FILE`: the whole stage run on a message file, every symbol explained,
//! so an admin can see why a message was junked or refused. The client, sender and HELO
//! name are given on the command line; SPF, DKIM, DMARC and ARC are checked through the
//! configured resolver when a client address is given, and the first mx listener's
//! milters see the message first. Greylisting is left out: a check must not change what
//! the server remembers.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use posthorn_proto::Mailbox;
use posthorn_proto::headers::header_section;

use super::milters::{self, Milters};
use super::symbols::{STAGE, Symbol};
use super::{Action, Facts, Stage, Verdict, content};
use crate::accounts::directory::Directory;
use crate::accounts::users::UsersFile;
use crate::clock::SystemClock;
use crate::config::{Config, Role};
use crate::dns::Dns;
use crate::learning::Learning;
use crate::mailauth::verify::{self, Verifier};

/// Who sent the message, as the command line says.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// MAIL FROM.
    pub sender: Option<Mailbox>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// Its HELO name.
    pub helo: Option<String>,
}

/// What users taught the classifier, when it is on and its files can be read: the
/// global model scores the message (it names no recipient).
fn learning(config: &Config) -> Option<Arc<Learning>> {
    if !config.checks.classifier.enabled {
        return None;
    }
    match Learning::open(config) {
        Ok(learning) => Some(Arc::new(learning)),
        Err(e) => {
            eprintln!("note: the classifier is left out: {e}");
            None
        }
    }
}

/// Runs the stage of `config` on `message` from `origin`; the report to print.
pub async fn explain(config: &Config, message: Vec<u8>, origin: &Origin) -> anyhow::Result<String> {
    let mut config = config.clone();
    config.checks.greylist.enabled = false;
    let dns = Dns::new(config.delivery.nameserver, Duration::from_secs(10))?;
    let users = UsersFile::load(&config.users_file())?;
    let directory = Arc::new(
        Directory::build_with_users(&config, &users.users)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?,
    );
    let stage = Stage::new(
        &config,
        dns.clone(),
        &config.server.data_dir,
        Arc::new(SystemClock),
        learning(&config),
    )
    .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
    let helo = origin.helo.clone().unwrap_or_default();
    let auth = match origin.ip {
        Some(ip) => {
            let verifier = Verifier::new(dns.authenticator(), &config);
            let client = verify::Client { ip, helo: &helo };
            let sender = origin
                .sender
                .as_ref()
                .map(Mailbox::to_string)
                .unwrap_or_default();
            match verifier.spf(&client, &sender).await {
                Ok(spf) => Some(
                    verifier
                        .message(&client, &spf, &message, None)
                        .await
                        .results,
                ),
                Err(reply) => return Ok(format!("SPF could not be checked: {reply}\n")),
            }
        }
        None => None,
    };
    // The milters of the first mx listener see the message first, as in a session.
    let milters = config
        .listeners
        .iter()
        .find(|l| l.role == Role::Mx)
        .map(|listener| Milters::new(&config, &listener.milters))
        .unwrap_or_default();
    let (message, changes) = if milters.is_empty() {
        (message, None)
    } else {
        let transaction = milters::Transaction {
            client: origin.ip.map(|ip| SocketAddr::new(ip, 0)),
            helo: helo.clone(),
            sender: origin
                .sender
                .as_ref()
                .map(Mailbox::to_string)
                .unwrap_or_default(),
            recipients: Vec::new(),
            queue_id: "check".to_string(),
            user: None,
            tls: None,
            hostname: config.server.hostname.get_ref().clone(),
        };
        let (message, changes) = milters.run(&transaction, message).await;
        (message, Some(changes))
    };
    if let Some(changes) = &changes {
        if let Some(reply) = &changes.refusal {
            return Ok(format!("verdict: reject by a milter ({reply})\n"));
        }
        if changes.discard {
            return Ok("verdict: discarded by a milter\n".to_string());
        }
    }
    let facts = Facts {
        ip: origin.ip,
        helo: &helo,
        sender: origin.sender.as_ref(),
        authors: super::authors_of(header_section(&message)),
        recipients: Vec::new(),
        accounts: Vec::new(),
        auth: auth.as_ref(),
        smtputf8: !message.is_ascii(),
        milters: changes.as_ref(),
        directory,
    };
    let (_, verdict) = stage.run(&facts, message).await;
    Ok(report(&verdict, auth.is_some()))
}

/// The verdict, each symbol with its score, what it means and what it found.
fn report(verdict: &Verdict, authenticated: bool) -> String {
    let mut out = String::new();
    let action = match &verdict.action {
        Action::Reject(reply) | Action::Defer(reply) => {
            format!("{} ({reply})", verdict.action.as_str())
        }
        other => other.as_str().to_string(),
    };
    let _ = writeln!(
        out,
        "verdict: {action}\nscore: {:.2} (junk from {:.2})",
        verdict.score, verdict.required
    );
    if !authenticated {
        out.push_str("SPF, DKIM, DMARC, ARC: not checked (give --ip, --from and --helo)\n");
    }
    for Symbol {
        name,
        score,
        detail,
    } in &verdict.symbols
    {
        let _ = write!(out, "{score:>8.2}  {name}: {}", describe(name));
        if !detail.is_empty() {
            let _ = write!(out, " [{}]", super::verdict::header_safe(detail));
        }
        out.push('\n');
    }
    out
}

/// What symbol `name` means.
pub fn describe(name: &str) -> &'static str {
    STAGE
        .iter()
        .find(|k| k.name == name)
        .map(|k| k.description)
        .or_else(|| content::describe(name))
        .unwrap_or("a DNS list answered")
}

/// Every symbol a check can give, with its built-in score and meaning: `posthorn check
/// --symbols`.
pub fn symbol_table(config: &Config) -> String {
    let scores = super::symbols::Scores::new(&config.checks);
    let mut out = String::new();
    let names = STAGE.iter().map(|k| k.name).chain(content::symbols());
    for name in names {
        let score = scores.symbol(name, "").score;
        let _ = writeln!(out, "{score:>8.2}  {name}: {}", describe(name));
    }
    for list in &config.checks.dns_lists {
        let _ = writeln!(
            out,
            "{:>8.2}  {}: listed in {}",
            list.score,
            list.symbol.get_ref(),
            list.zone.get_ref()
        );
    }
    out
}
