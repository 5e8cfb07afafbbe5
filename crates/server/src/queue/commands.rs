//! The operator's commands on the queue (`posthorn queue ...`), carried out on a message
//! the manager has claimed, so nothing else changes it at the same time.

use posthorn_proto::Status;
use posthorn_spool::{Diagnostic, Envelope, QueueId, QueueStore};

use super::policy::Policy;
use crate::delivery::dsn::Notifier;

/// The word for a recipient whose attempt failed for now and that waits for the next one,
/// in the log (`result="deferred"`) and in `posthorn queue list`.
pub const DEFERRED: &str = "deferred";
/// `posthorn queue list`'s word for a recipient not attempted yet.
pub const QUEUED: &str = "queued";

/// An operator's command that changes the queue (`posthorn queue ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Attempt now: one message, or every waiting message and backed-off destination.
    Flush(Option<QueueId>),
    /// Keep a message out of delivery until released.
    Hold(QueueId),
    /// Put a held message back into delivery, due now.
    Release(QueueId),
    /// Remove a message; its sender is told unless `silent`.
    Delete {
        /// The message.
        id: QueueId,
        /// No bounce.
        silent: bool,
    },
    /// Return a message to its sender now.
    Bounce(QueueId),
}

impl std::fmt::Display for AdminCommand {
    /// As the operator typed it (`flush`, `hold ID`, `delete ID --silent`), for the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminCommand::Flush(None) => f.write_str("flush"),
            AdminCommand::Flush(Some(id)) => write!(f, "flush {id}"),
            AdminCommand::Hold(id) => write!(f, "hold {id}"),
            AdminCommand::Release(id) => write!(f, "release {id}"),
            AdminCommand::Delete { id, silent: false } => write!(f, "delete {id}"),
            AdminCommand::Delete { id, silent: true } => write!(f, "delete {id} --silent"),
            AdminCommand::Bounce(id) => write!(f, "bounce {id}"),
        }
    }
}

/// The reply to an admin command: what was done, or why not.
pub type AdminReply = Result<String, String>;

/// Carries out a hold, release, delete or bounce on a message the manager has claimed.
/// Returns the answer, when the message is next due, and the notices written. Blocking.
pub(super) fn admin_apply(
    store: &dyn QueueStore,
    notifier: &Notifier,
    policy: &Policy,
    command: &AdminCommand,
    now: u64,
) -> (AdminReply, Option<u64>, Vec<Envelope>) {
    let id = match command {
        AdminCommand::Hold(id)
        | AdminCommand::Release(id)
        | AdminCommand::Delete { id, .. }
        | AdminCommand::Bounce(id) => id,
        AdminCommand::Flush(_) => {
            return (Err("flush is not a stored change".into()), None, Vec::new());
        }
    };
    let mut envelope = match store.load(id) {
        Ok(envelope) => envelope,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Err(format!("{id} is not in the queue")), None, Vec::new());
        }
        Err(e) => return (Err(format!("cannot read {id}: {e}")), None, Vec::new()),
    };
    let due = |envelope: &Envelope| {
        if envelope.hold {
            None
        } else {
            Policy::next_due(envelope)
        }
    };
    let saved = |envelope: &Envelope, text: String| match store.save_state(envelope) {
        Ok(()) => Ok(text),
        Err(e) => Err(format!("cannot record the change: {e}")),
    };
    match command {
        AdminCommand::Hold(_) if envelope.hold => {
            (Ok(format!("{id} was already held")), None, Vec::new())
        }
        AdminCommand::Hold(_) => {
            envelope.hold = true;
            (saved(&envelope, format!("{id} held")), None, Vec::new())
        }
        AdminCommand::Release(_) if !envelope.hold => {
            (Err(format!("{id} is not held")), due(&envelope), Vec::new())
        }
        AdminCommand::Release(_) => {
            envelope.hold = false;
            for recipient in &mut envelope.recipients {
                recipient.state.next_attempt = recipient.state.next_attempt.min(now);
            }
            let answer = saved(&envelope, format!("{id} released"));
            (answer, due(&envelope), Vec::new())
        }
        AdminCommand::Delete { .. } | AdminCommand::Bounce(..) => {
            let silent = matches!(command, AdminCommand::Delete { silent: true, .. });
            let diagnostic = Diagnostic {
                status: Status::new(5, 0, 0),
                text: if matches!(command, AdminCommand::Bounce(_)) {
                    "returned to the sender by the mail administrator".into()
                } else {
                    "deleted by the mail administrator".into()
                },
                remote_mta: None,
                smtp_reply: None,
            };
            let failed = policy.fail_pending(&mut envelope, &diagnostic, now);
            let notices = if silent {
                Vec::new()
            } else {
                notifier.write_owed(&mut envelope, &[], now, now)
            };
            match store.remove(id) {
                Ok(()) => {
                    let told = if notices.is_empty() {
                        "no notice sent"
                    } else {
                        "sender notified"
                    };
                    (
                        Ok(format!(
                            "{id} removed ({failed} recipient(s) failed, {told})"
                        )),
                        None,
                        notices,
                    )
                }
                Err(e) => (
                    Err(format!("cannot remove {id}: {e}")),
                    due(&envelope),
                    notices,
                ),
            }
        }
        AdminCommand::Flush(_) => (Err("flush is not a stored change".into()), None, Vec::new()),
    }
}
