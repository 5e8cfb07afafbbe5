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
//! scripts again. Only a refusal is taken from these runs; what else a script does
//! (fileinto, redirect, vacation) is done at delivery, which runs it again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use posthorn_proto::reply::table;
use posthorn_proto::{Reply, Status};
use posthorn_sieve::Action;
use posthorn_spool::{Envelope, Route};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::accounts::directory::Directory;
use crate::clock::unix_now;
use crate::delivery::local::local;
use crate::delivery::message::HEAD_LIMIT;
use crate::delivery::sieve::{Delivery, Sieve};
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

    /// The local recipients of `envelope` whose scripts reject the message whose start,
    /// as delivered, is `head` (see [`head`]). Empty when none does, and when the runs
    /// fail or take too long: delivery then decides, as without this.
    pub async fn rejections(
        &self,
        directory: &Directory,
        envelope: &Envelope,
        head: Vec<u8>,
    ) -> Vec<Rejected> {
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
            return Vec::new();
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
                let rejected = locals
                    .into_iter()
                    .filter_map(|(index, root, recipient)| {
                        let delivery = Delivery {
                            message: &head,
                            sender: &sender,
                            recipient: &recipient,
                            now,
                        };
                        reason_of(&sieve.actions(&root, &delivery))
                            .map(|reason| Rejected { index, reason })
                    })
                    .collect::<Vec<_>>();
                drop(permit);
                rejected
            });
            ran.await.ok()
        };
        match tokio::time::timeout(TIME_LIMIT, work).await {
            Ok(Some(rejected)) => rejected,
            Ok(None) => {
                warn!(queue_id = %envelope.id, "the Sieve run at DATA failed; delivery runs the scripts");
                Vec::new()
            }
            Err(_) => {
                warn!(queue_id = %envelope.id, "the Sieve scripts took too long at DATA; delivery runs them");
                Vec::new()
            }
        }
    }
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
