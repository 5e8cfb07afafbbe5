//! The external filters a listener names (`[[milter]]`, `listener.milters`): at the end
//! of DATA each one is shown the whole SMTP transaction over a connection of its own
//! (CONNECT, HELO, MAIL, RCPT, DATA, the header fields, the body) with the macros
//! Postfix sends, and its answer is honoured: a refusal is our reply, a discard drops the
//! message after a 250, quarantine sends it to Junk, and its changes to the header, the
//! body, the sender and the recipients are applied before the spool commit (a recipient
//! it refuses at RCPT is removed). A filter that is down or misbehaves is skipped or
//! defers the message, as its `on_failure` says.
//!
//! Unlike Postfix, filters see the message as the client sent it, without our Received
//! header (which we add at delivery), and each filter of a chain is told the original
//! envelope; SMFIR_SHUTDOWN defers the message (451) rather than closing the session.

use std::net::SocketAddr;

use posthorn_milter::codec::SmtpReply;
use posthorn_milter::{
    Decision, HeaderField, Limits, Macros, MilterAddress, MilterClient, MilterError, Modification,
    Options, Outcome, Timeouts,
};
use posthorn_proto::headers::section_end;
use posthorn_proto::reply::table;
use posthorn_proto::{Reply, Status};
use tracing::{info, warn};

use crate::config::{self, Config, Invalid, OnFailure};

/// One filter as configured.
#[derive(Debug, Clone)]
struct Filter {
    name: String,
    address: MilterAddress,
    options: Options,
    on_failure: OnFailure,
}

/// The filters of one listener, in order.
#[derive(Debug, Clone, Default)]
pub struct Milters {
    filters: Vec<Filter>,
}

/// What a filter is told of the transaction.
pub struct Transaction {
    /// The client's socket address; `None` for a local program.
    pub client: Option<SocketAddr>,
    /// The HELO name.
    pub helo: String,
    /// MAIL FROM, without brackets; empty for the null sender.
    pub sender: String,
    /// The RCPT addresses, without brackets.
    pub recipients: Vec<String>,
    /// The queue id the message will have.
    pub queue_id: String,
    /// The logged-in user.
    pub user: Option<String>,
    /// The TLS version, when the session is encrypted.
    pub tls: Option<String>,
    /// Our host name.
    pub hostname: String,
}

/// What the filters decided.
#[derive(Debug, Default)]
pub struct Changes {
    /// A filter refused the message: the reply to give.
    pub refusal: Option<Reply>,
    /// A filter discarded it: answer 250 and drop it.
    pub discard: bool,
    /// A filter quarantined it, for this reason: deliver to Junk.
    pub quarantine: Option<String>,
    /// The new sender (without brackets).
    pub sender: Option<String>,
    /// Recipients added (without brackets).
    pub added: Vec<String>,
    /// Recipients removed.
    pub removed: Vec<String>,
    /// Filters that failed and were skipped.
    pub failed: Vec<String>,
    /// A filter changed the header or the body.
    pub rewrote: bool,
}

/// Checks the `[[milter]]` entries and the names the listeners use.
pub fn check_config(config: &Config) -> Result<(), Invalid> {
    for (i, milter) in config.milters.iter().enumerate() {
        milter
            .address
            .get_ref()
            .parse::<MilterAddress>()
            .map_err(|e| {
                Invalid::at(
                    format!("milter[{i}].address"),
                    &milter.address,
                    e.to_string(),
                )
            })?;
        if config.milters[..i]
            .iter()
            .any(|m| m.name.get_ref() == milter.name.get_ref())
        {
            return Err(Invalid::at(
                format!("milter[{i}].name"),
                &milter.name,
                "defined twice",
            ));
        }
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        for (j, name) in listener.milters.iter().enumerate() {
            if !config
                .milters
                .iter()
                .any(|m| m.name.get_ref() == name.get_ref())
            {
                return Err(Invalid::at(
                    format!("listener[{i}].milters[{j}]"),
                    name,
                    "no [[milter]] has this name",
                ));
            }
        }
    }
    Ok(())
}

impl Milters {
    /// The filters `names` (checked by [`check_config`]) with their settings in `config`;
    /// a replaced body may be as large as a message may be.
    pub fn new(config: &Config, names: &[toml::Spanned<String>]) -> Milters {
        let filters = names
            .iter()
            .filter_map(|name| {
                config
                    .milters
                    .iter()
                    .find(|m| m.name.get_ref() == name.get_ref())
            })
            .filter_map(|milter| filter(config, milter))
            .collect();
        Milters { filters }
    }

    /// True when there are no filters.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Shows `content` to each filter in turn, applying the changes of one before the
    /// next sees it; stops at the first that refuses or discards.
    pub async fn run(&self, transaction: &Transaction, mut content: Vec<u8>) -> (Vec<u8>, Changes) {
        let mut changes = Changes::default();
        for filter in &self.filters {
            match ask(filter, transaction, &content).await {
                Ok((outcome, refused)) => {
                    changes.removed.extend(refused);
                    if let Some(refusal) = refusal(&outcome.decision) {
                        info!(milter = %filter.name, reply = %refusal, "refused by milter");
                        changes.refusal = Some(refusal);
                        break;
                    }
                    if outcome.decision == Decision::Discard {
                        info!(milter = %filter.name, "discarded by milter");
                        changes.discard = true;
                        break;
                    }
                    content = apply(&outcome, content, &mut changes);
                }
                Err(e) => {
                    warn!(milter = %filter.name, error = %e, "milter failed");
                    match filter.on_failure {
                        OnFailure::Defer => {
                            changes.refusal =
                                Some(table::check_failed(&format!("{} filter", filter.name)));
                            break;
                        }
                        OnFailure::Accept => changes.failed.push(filter.name.clone()),
                    }
                }
            }
        }
        (content, changes)
    }
}

fn filter(config: &Config, milter: &config::Milter) -> Option<Filter> {
    let address = milter.address.get_ref().parse().ok()?;
    Some(Filter {
        name: milter.name.get_ref().clone(),
        address,
        options: Options {
            timeouts: Timeouts {
                connect: milter.connect_timeout.0,
                command: milter.command_timeout.0,
                content: milter.content_timeout.0,
            },
            limits: Limits {
                replacement_body: usize::try_from(config.limits.max_message_size.0)
                    .unwrap_or(usize::MAX),
                ..Limits::default()
            },
        },
        on_failure: milter.on_failure,
    })
}

/// One filter's verdict on the transaction, over a connection of its own, and the
/// recipients it refused (the message goes on without them, as Postfix drops a recipient
/// a filter refuses at RCPT). A decision taken before the end of the message (at
/// CONNECT, MAIL...) is the outcome.
async fn ask(
    filter: &Filter,
    t: &Transaction,
    content: &[u8],
) -> Result<(Outcome, Vec<String>), MilterError> {
    let mut milter = MilterClient::open(&filter.address, filter.options).await?;
    let client_addr = t.client.map(|c| c.ip().to_string()).unwrap_or_default();
    let client_name = t
        .client
        .map_or_else(|| "localhost".to_string(), |c| format!("[{}]", c.ip()));
    let connect = Macros::new()
        .with("j", t.hostname.as_str())
        .with("{daemon_name}", t.hostname.as_str())
        .with("{client_addr}", client_addr.clone())
        .with("{client_name}", client_name.clone())
        .with(
            "{client_port}",
            t.client.map(|c| c.port().to_string()).unwrap_or_default(),
        )
        .with("_", format!("{client_name} [{client_addr}]"));
    let mut helo = Macros::new();
    if let Some(tls) = &t.tls {
        helo.set("{tls_version}", tls.as_str());
    }
    let mut mail = Macros::new()
        .with("{mail_addr}", t.sender.clone())
        .with("i", t.queue_id.as_str());
    if let Some(user) = &t.user {
        mail.set("{auth_authen}", user.as_str());
        mail.set("{auth_type}", "PLAIN");
    }
    let mut refused_recipients = Vec::new();
    let mut decision = milter.connect(&client_name, t.client, &connect).await?;
    if decision == Decision::Continue {
        decision = milter.helo(&t.helo, &helo).await?;
    }
    if decision == Decision::Continue {
        decision = milter.mail(&t.sender, &[], &mail).await?;
    }
    if decision == Decision::Continue {
        for recipient in &t.recipients {
            let rcpt = Macros::new().with("{rcpt_addr}", recipient.clone());
            match milter.rcpt(recipient, &[], &rcpt).await? {
                Decision::Continue => {}
                refused if refused.is_refusal() => refused_recipients.push(recipient.clone()),
                other => {
                    decision = other;
                    break;
                }
            }
        }
        // A filter that refuses every recipient refuses the message.
        if decision == Decision::Continue
            && !t.recipients.is_empty()
            && refused_recipients.len() == t.recipients.len()
        {
            decision = Decision::Reject;
        }
    }
    if decision == Decision::Continue {
        decision = send_content(&mut milter, content).await?;
    }
    let outcome = if decision == Decision::Continue {
        milter
            .end_of_message(&Macros::new().with("i", t.queue_id.as_str()))
            .await?
    } else {
        Outcome::decided(decision)
    };
    let _ = milter.quit().await;
    Ok((outcome, refused_recipients))
}

/// DATA, each header field, the end of the header and the body.
async fn send_content<S>(
    milter: &mut MilterClient<S>,
    content: &[u8],
) -> Result<Decision, MilterError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let split = section_end(content).unwrap_or(content.len());
    let fields = HeaderField::parse_section(&content[..split]).unwrap_or_default();
    let mut decision = milter.data(&Macros::new()).await?;
    for field in &fields {
        if decision != Decision::Continue {
            return Ok(decision);
        }
        decision = milter.header(&field.name, &field.value).await?;
    }
    if decision == Decision::Continue {
        decision = milter.end_of_headers(&Macros::new()).await?;
    }
    if decision == Decision::Continue {
        decision = milter.body(&content[split..]).await?;
    }
    Ok(decision)
}

/// The reply for a refusing decision (SMFIR_REJECT 550 5.7.1, SMFIR_TEMPFAIL 451 4.7.1,
/// SMFIR_REPLYCODE as the filter wrote it).
fn refusal(decision: &Decision) -> Option<Reply> {
    match decision {
        Decision::Reject => Some(Reply::new(550, 7, 1, "Message rejected by filter")),
        Decision::Tempfail | Decision::Shutdown => Some(table::check_failed("content filter")),
        Decision::Reply(reply) => Some(reply_of(reply)),
        Decision::Continue | Decision::Accept | Decision::Discard => None,
    }
}

/// A filter's own reply as ours: its code, its enhanced status when it gave one (else
/// X.7.1), its lines joined.
fn reply_of(reply: &SmtpReply) -> Reply {
    let text = reply.lines.join(" ");
    let (status, text) = match text.split_once(' ') {
        Some((first, rest)) => match Status::parse(first) {
            Some(status) => (status, rest.to_string()),
            None => (Status::new(0, 7, 1), text.clone()),
        },
        None => (Status::new(0, 7, 1), text.clone()),
    };
    Reply::new(reply.code, status.subject, status.detail, text)
}

/// The content with the filter's header edits and replaced body, and its envelope
/// changes recorded.
fn apply(outcome: &Outcome, content: Vec<u8>, changes: &mut Changes) -> Vec<u8> {
    for modification in &outcome.modifications {
        match modification {
            Modification::AddRecipient { address, .. } => changes.added.push(address.clone()),
            Modification::DeleteRecipient(address) => changes.removed.push(address.clone()),
            Modification::ChangeSender { address, .. } => changes.sender = Some(address.clone()),
            Modification::Quarantine(reason) => changes.quarantine = Some(reason.clone()),
            Modification::Header(_) | Modification::ReplaceBody(_) => {}
        }
    }
    let edits = outcome.header_edits().next().is_some();
    let body = outcome.replacement_body();
    if !edits && body.is_none() {
        return content;
    }
    changes.rewrote = true;
    let split = section_end(&content).unwrap_or(content.len());
    let mut fields = HeaderField::parse_section(&content[..split]).unwrap_or_default();
    outcome.apply_header_edits(&mut fields);
    let mut rebuilt = Vec::with_capacity(content.len());
    for field in &fields {
        rebuilt.extend_from_slice(&field.to_bytes());
    }
    rebuilt.extend_from_slice(b"\r\n");
    rebuilt.extend_from_slice(body.unwrap_or(&content[split..]));
    rebuilt
}
