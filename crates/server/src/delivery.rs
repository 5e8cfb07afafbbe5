//! One delivery attempt of one queued message: every recipient that is due is tried, its
//! new state is recorded durably, and the message leaves the spool once every recipient is
//! final. Runs on a blocking thread, lent the message by the queue manager.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use posthorn_spool::{Envelope, QueueId, QueueStore, Recipient, Route, Status};
use tracing::{error, info, warn};

use crate::directory::Directory;
use crate::maildir;
use crate::received::delivery_headers;

/// The outcome of delivering to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the text says where it went.
    Delivered(String),
    /// Try again later; the text says why (with its enhanced status code).
    Deferred(String),
    /// Give up; the text says why.
    Failed(String),
}

/// Delivers queued messages.
pub struct Deliverer {
    store: Arc<dyn QueueStore>,
    directory: Arc<Directory>,
    hostname: String,
    retry_schedule: Vec<Duration>,
}

impl Deliverer {
    /// A deliverer over `store`, delivering local recipients found in `directory`.
    pub fn new(
        store: Arc<dyn QueueStore>,
        directory: Arc<Directory>,
        hostname: String,
        retry_schedule: Vec<Duration>,
    ) -> Self {
        Deliverer {
            store,
            directory,
            hostname,
            retry_schedule,
        }
    }

    /// Attempts every due recipient of message `id`. Returns when the message is next due,
    /// or `None` when it needs nothing more from this deliverer.
    pub fn attempt(&self, id: &QueueId, now: u64) -> Option<u64> {
        let mut envelope = match self.store.load(id) {
            Ok(envelope) => envelope,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                error!(queue_id = %id, error = %e, "damaged queue file set aside");
                if let Err(e) = self.store.quarantine(id) {
                    error!(queue_id = %id, error = %e, "cannot set damaged queue file aside");
                }
                return None;
            }
            Err(e) => {
                error!(queue_id = %id, error = %e, "cannot read queued message");
                return Some(now + self.delay_after(1));
            }
        };
        if envelope.hold {
            return None;
        }
        let mut changed = false;
        for index in 0..envelope.recipients.len() {
            let recipient = &envelope.recipients[index];
            let due = recipient.state.status == Status::Pending
                && recipient.state.next_attempt <= now
                && matches!(recipient.route, Route::Local { .. });
            if !due {
                continue;
            }
            let outcome = self.deliver_local(&envelope, recipient);
            self.record(&mut envelope, index, outcome, now);
            changed = true;
        }
        if envelope.is_complete() {
            if let Err(e) = self.store.remove(id) {
                error!(queue_id = %id, error = %e, "cannot remove delivered message");
            }
            return None;
        }
        if changed && let Err(e) = self.store.save_state(&envelope) {
            // The deliveries stand; a later attempt may repeat them, never lose them.
            error!(queue_id = %id, error = %e, "cannot record delivery state");
        }
        envelope
            .recipients
            .iter()
            .filter(|r| r.state.status == Status::Pending && matches!(r.route, Route::Local { .. }))
            .map(|r| r.state.next_attempt)
            .min()
    }

    /// Updates recipient `index` with `outcome` and logs it.
    fn record(&self, envelope: &mut Envelope, index: usize, outcome: Outcome, now: u64) {
        let id = envelope.id.clone();
        let recipient = &mut envelope.recipients[index];
        let state = &mut recipient.state;
        state.attempts += 1;
        state.last_attempt = Some(now);
        let (status, text, result) = match outcome {
            Outcome::Delivered(text) => (Status::Delivered, text, "delivered"),
            Outcome::Deferred(text) => (Status::Pending, text, "deferred"),
            Outcome::Failed(text) => (Status::Failed, text, "failed"),
        };
        state.status = status;
        if status == Status::Pending {
            state.next_attempt = now + self.delay_after(state.attempts);
        }
        info!(
            queue_id = %id,
            recipient = %recipient.address,
            result,
            attempt = state.attempts,
            detail = %text,
            "delivery"
        );
        state.diagnostic = Some(text);
    }

    /// The wait after the `attempts`-th failed attempt; the last step of the schedule
    /// repeats.
    fn delay_after(&self, attempts: u32) -> u64 {
        let step = (attempts.max(1) as usize - 1).min(self.retry_schedule.len().saturating_sub(1));
        self.retry_schedule
            .get(step)
            .map_or(300, |d| d.as_secs().max(1))
    }

    /// Delivers one copy into a local account's Maildir.
    fn deliver_local(&self, envelope: &Envelope, recipient: &Recipient) -> Outcome {
        let Route::Local { account } = &recipient.route else {
            return Outcome::Deferred("4.4.0 no route".into());
        };
        let Some(entry) = self.directory.account(account) else {
            return Outcome::Failed(format!("5.1.1 account {account} no longer exists"));
        };
        let content = match self.store.content(&envelope.id) {
            Ok(content) => content,
            Err(e) => return Outcome::Deferred(format!("4.3.0 cannot read queued message: {e}")),
        };
        let mut header = delivery_headers(&envelope.sender, &recipient.address.to_string());
        header.push_str(&envelope.prepend);
        let maildir = self.directory.maildir(account);
        if let Some(quota) = entry.quota {
            let size = header.len() as u64 + content.len;
            match maildir::usage(&maildir) {
                Ok(used) if used + size > quota => {
                    return Outcome::Deferred(format!(
                        "4.2.2 mailbox of {account} is full ({used} of {quota} octets used)"
                    ));
                }
                Ok(_) => {}
                Err(e) => warn!(account, error = %e, "cannot measure mailbox; delivering anyway"),
            }
        }
        let mut reader = content.reader;
        match maildir::deliver(
            &maildir,
            &self.hostname,
            header.as_bytes(),
            &mut reader,
            content.len,
        ) {
            Ok(path) => Outcome::Delivered(format!(
                "2.0.0 delivered to maildir {}",
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )),
            Err(e) => Outcome::Deferred(format!("4.3.0 maildir delivery failed: {e}")),
        }
    }
}
