//! Sieve's `reject` and `ereject` at the end of DATA (RFC 5429 §2.1.1): the scripts of a
//! message's local recipients run before the reply, on the message as local delivery
//! will show it to them (our header fields, with the verdicts spamtest and virustest
//! read, then the content's start), so a refusal is an SMTP reply, not a bounce we would
//! send later to a sender who may be forged (backscatter).
//!
//! When every recipient's script rejects, the reply is `550 5.7.1` with the reason and
//! nothing is queued. When only some do, the message is queued for the others and the
//! rejecting recipients are recorded as failed with their reason: the sender gets one
//! failure notice, as a reject at delivery gives (RFC 5429 §2.1.2; `ereject` falls back
//! to that, SMTP having no per-recipient reply to DATA), and delivery does not run those
//! scripts again. What else a script does (fileinto, redirect, vacation) is done at
//! delivery, which runs it again; of that, these runs only note a redirect to another
//! server, for which the message is ARC-sealed before it is queued (`session.rs`), as mail
//! an alias forwards is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use posthorn_proto::reply::table;
use posthorn_proto::{ForwardPath, Reply, Status};
use posthorn_sieve::Action;
use posthorn_spool::{Envelope, Recipient, Route};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::accounts::directory::Directory;
use crate::clock::unix_now;
use crate::delivery::local::local;
use crate::delivery::message::HEAD_LIMIT;
use crate::delivery::sieve::{Delivery, Sieve, reply};
use crate::inbound::checks::verdict::header_safe;
use crate::queue::policy::refused_on_arrival;

/// How long the runs for one message may take, waiting for a thread included; past it the
/// reply goes out without them, and delivery runs the scripts as before.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The reply's text when a script gives no reason.
const NO_REASON: &str = "Rejected by the recipient's Sieve filter";

/// The recipients' scripts at the end of DATA; the server has one when `[sieve]` is on.
pub struct SieveAtData {
    sieve: Arc<Sieve>,
    /// Runs at a time, one per core: scripts are bounded in steps, but a flood of
    /// messages must not take every blocking thread.
    runs: Arc<Semaphore>,
}

/// What the local recipients' scripts decided at the end of DATA.
#[derive(Debug, Default)]
pub struct Decided {
    /// The recipients whose scripts reject the message.
    pub rejected: Vec<Rejected>,
    /// The domain of the first recipient whose script (not rejecting) redirects the
    /// message to another server: the message is sealed in it.
    pub redirected_from: Option<String>,
}

/// A local recipient whose script rejects the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its index in the envelope's recipients.
    pub index: usize,
    /// The script's reason, as written.
    pub reason: String,
}

impl SieveAtData {
    /// Runs `sieve`'s scripts (the global `before` script, then each account's).
    pub fn new(sieve: Arc<Sieve>) -> SieveAtData {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SieveAtData {
            sieve,
            runs: Arc::new(Semaphore::new(cores)),
        }
    }

    /// What the scripts of `envelope`'s local recipients decide for the message whose
    /// start, as delivered, is `head` (see [`head`]). Nothing when the runs fail or take
    /// too long: delivery then decides, as without this.
    pub async fn decide(
        &self,
        directory: &Directory,
        envelope: &Envelope,
        head: Vec<u8>,
    ) -> Decided {
        let locals: Vec<(usize, PathBuf, String)> = envelope
            .recipients
            .iter()
            .enumerate()
            .filter_map(|(index, recipient)| match &recipient.route {
                Route::Local { account } => Some((
                    index,
                    directory.maildir(account),
                    recipient.address.to_string(),
                )),
                Route::Remote => None,
            })
            .collect();
        if locals.is_empty() {
            return Decided::default();
        }
        let sender = envelope.sender.to_string();
        let sieve = Arc::clone(&self.sieve);
        let runs = Arc::clone(&self.runs);
        let work = async move {
            let permit = runs.acquire_owned().await.ok()?;
            // The permit goes with the work: a run that outlives the time limit still
            // holds its core until it ends.
            let ran = tokio::task::spawn_blocking(move || {
                let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
                let actions = locals
                    .into_iter()
                    .map(|(index, root, recipient)| {
                        let delivery = Delivery {
                            message: &head,
                            sender: &sender,
                            recipient: &recipient,
                            now,
                        };
                        (index, sieve.actions(&root, &delivery))
                    })
                    .collect::<Vec<_>>();
                drop(permit);
                actions
            });
            ran.await.ok()
        };
        match tokio::time::timeout(TIME_LIMIT, work).await {
            Ok(Some(actions)) => decided(directory, &envelope.recipients, actions),
            Ok(None) => {
                warn!(queue_id = %envelope.id, "the Sieve run at DATA failed; delivery runs the scripts");
                Decided::default()
            }
            Err(_) => {
                warn!(queue_id = %envelope.id, "the Sieve scripts took too long at DATA; delivery runs them");
                Decided::default()
            }
        }
    }
}

/// What the runs' `actions`, each with its recipient's index in `recipients`, decide.
fn decided(
    directory: &Directory,
    recipients: &[Recipient],
    actions: Vec<(usize, Vec<Action>)>,
) -> Decided {
    let mut decided = Decided::default();
    for (index, actions) in actions {
        if let Some(reason) = reason_of(&actions) {
            decided.rejected.push(Rejected { index, reason });
        } else if decided.redirected_from.is_none() && redirects_away(directory, &actions) {
            decided.redirected_from = recipients
                .get(index)
                .map(|recipient| recipient.address.domain_key());
        }
    }
    decided
}

/// True when `actions` redirect the message to an address on another server (directly, or
/// through one of our aliases).
fn redirects_away(directory: &Directory, actions: &[Action]) -> bool {
    actions.iter().any(|action| match action {
        Action::Redirect { address, .. } => posthorn_proto::address::parse_mailbox(address)
            .is_ok_and(|to| {
                reply::recipients(directory, &ForwardPath::Mailbox(to), None)
                    .iter()
                    .any(|r| r.route == Route::Remote)
            }),
        _ => false,
    })
}

/// The reason of a run's `reject` or `ereject`, if it has one.
fn reason_of(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|action| match action {
        Action::Reject { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// The start of the message as local delivery reads it (`delivery::message`): our header
/// fields `prepend`, then the first [`HEAD_LIMIT`] octets of the content, which `parts`
/// hold in order (what the spool file has, then what is still in memory).
pub fn head(prepend: &str, parts: &[&[u8]]) -> Vec<u8> {
    let limit = usize::try_from(HEAD_LIMIT).unwrap_or(usize::MAX);
    let mut head =
        Vec::with_capacity(prepend.len() + limit.min(parts.iter().map(|p| p.len()).sum()));
    head.extend_from_slice(prepend.as_bytes());
    let mut left = limit;
    for part in parts {
        let take = part.len().min(left);
        head.extend_from_slice(&part[..take]);
        left -= take;
    }
    head
}

/// The reply when every recipient's script rejected: the first reason, its lines joined
/// into one of printable ASCII, bounded (a script's text must not break our reply).
pub fn reply(rejected: &[Rejected]) -> Reply {
    let reason = rejected.first().map_or("", |r| r.reason.as_str());
    let one_line = header_safe(&reason.split_whitespace().collect::<Vec<_>>().join(" "));
    table::sieve_rejected(if one_line.is_empty() {
        NO_REASON
    } else {
        &one_line
    })
}

/// Records the rejecting recipients of a message accepted for others as failed with their
/// script's reason, the diagnostic a reject at delivery gives.
pub fn record(envelope: &mut Envelope, rejected: &[Rejected]) {
    let now = unix_now();
    for Rejected { index, reason } in rejected {
        if let Some(recipient) = envelope.recipients.get_mut(*index) {
            refused_on_arrival(recipient, local(Status::new(5, 7, 1), reason.clone()), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_our_fields_and_the_contents_start() {
        let limit = HEAD_LIMIT as usize;
        assert_eq!(head("X: 1\r\n", &[b"a", b"b"]), b"X: 1\r\nab");
        let big = vec![b'x'; limit + 10];
        let cut = head("X: 1\r\n", &[&big[..limit - 1], b"yz"]);
        assert_eq!(cut.len(), 6 + limit);
        assert!(cut.ends_with(b"xy"));
    }

    #[test]
    fn a_redirect_to_another_server_is_noted_unless_the_script_rejects() {
        let config = crate::config::parse(
            "[server]\nhostname = \"mx.example.com\"\n[[domain]]\nname = \"example.com\"\n\
             [[account]]\nname = \"alice\"\n[[account]]\nname = \"bob\"\n\
             [aliases]\n\"fwd@example.com\" = [\"someone@far.test\"]\n",
            None,
        )
        .unwrap();
        let directory = Directory::build_with_users(&config, &[]).unwrap();
        let local = |name: &str| {
            let address = posthorn_proto::address::parse_mailbox(&format!("{name}@example.com"));
            let route = Route::Local {
                account: name.into(),
            };
            Recipient::new(address.unwrap(), route)
        };
        let recipients = [local("alice"), local("bob")];
        let redirect = |to: &str| Action::Redirect {
            address: to.into(),
            copy: false,
        };
        let reject = Action::Reject {
            reason: "no".into(),
            extended: false,
        };
        let decide = |alice: Vec<Action>, bob: Vec<Action>| {
            decided(&directory, &recipients, vec![(0, alice), (1, bob)])
        };
        // To an account here: nothing leaves.
        let kept = decide(vec![redirect("bob@example.com")], Vec::new());
        assert_eq!(kept.redirected_from, None);
        // To another server, directly or through an alias.
        for to in ["someone@far.test", "fwd@example.com"] {
            let away = decide(Vec::new(), vec![redirect(to)]);
            assert_eq!(away.redirected_from.as_deref(), Some("example.com"), "{to}");
        }
        // A script that rejects sends nothing on.
        let refused = decide(vec![redirect("someone@far.test"), reject], Vec::new());
        assert_eq!(refused.redirected_from, None);
        assert_eq!(refused.rejected.len(), 1);
    }

    #[test]
    fn the_reply_is_one_bounded_printable_line() {
        let rejected = |reason: &str| {
            reply(&[Rejected {
                index: 0,
                reason: reason.into(),
            }])
        };
        let reply = rejected("No offers,\r\n\tthanks. \u{2603}");
        assert_eq!(reply.to_string(), "550 5.7.1 No offers, thanks. ?");
        assert_eq!(rejected(&"long ".repeat(100)).text.len(), 200);
        assert!(rejected(" \r\n").text.contains("Sieve"));
    }
}
