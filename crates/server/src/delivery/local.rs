//! The local transport: delivers jobs for local accounts into their Maildirs, each on a
//! blocking thread, and asks the manager for the next.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use posthorn_proto::Status;
use posthorn_spool::{Diagnostic, DsnAction, Envelope, QueueStore, Route};
use tracing::warn;

use crate::accounts::users::LiveDirectory;
use crate::delivery::message::QueuedMessage;
use crate::queue::policy::Outcome;
use crate::queue::{Destination, Feed, Job, JobResult, Transport};
use crate::received::delivery_headers;
use posthorn_maildir as maildir;

/// Delivers into local Maildirs.
pub struct LocalTransport {
    store: Arc<dyn QueueStore>,
    directory: Arc<LiveDirectory>,
    hostname: String,
    max_hops: usize,
}

impl LocalTransport {
    /// A transport reading from `store`, delivering to the accounts of `directory`.
    pub fn new(
        store: Arc<dyn QueueStore>,
        directory: Arc<LiveDirectory>,
        hostname: String,
        max_hops: usize,
    ) -> Self {
        LocalTransport {
            store,
            directory,
            hostname,
            max_hops,
        }
    }

    /// Delivers every recipient of `job`. Blocking.
    fn deliver(&self, job: &Job) -> Vec<(usize, Outcome)> {
        let envelope = &job.envelope;
        let mut first = match QueuedMessage::for_job(self.store.as_ref(), job) {
            Err(e) => {
                let why = local(
                    Status::new(4, 3, 0),
                    format!("cannot read the queued message: {e}"),
                );
                return job
                    .recipients
                    .iter()
                    .map(|&i| (i, Outcome::Deferred(why.clone())))
                    .collect();
            }
            Ok(message) if message.hops() > self.max_hops => {
                let why = local(
                    Status::new(5, 4, 6),
                    format!(
                        "mail loop: {} Received headers, more than {}",
                        message.hops(),
                        self.max_hops
                    ),
                );
                return job
                    .recipients
                    .iter()
                    .map(|&i| (i, Outcome::Failed(why.clone())))
                    .collect();
            }
            Ok(message) => Some(message),
        };
        job.recipients
            .iter()
            .map(|&index| {
                let message = match first.take() {
                    Some(message) => Ok(message),
                    None => QueuedMessage::for_job(self.store.as_ref(), job),
                };
                (index, self.deliver_one(envelope, index, message))
            })
            .collect()
    }

    /// Delivers one copy into a local account's Maildir.
    fn deliver_one(
        &self,
        envelope: &Envelope,
        index: usize,
        message: std::io::Result<QueuedMessage>,
    ) -> Outcome {
        let Some(recipient) = envelope.recipients.get(index) else {
            return Outcome::Failed(local(
                Status::new(5, 3, 0),
                "no such recipient in the envelope",
            ));
        };
        let Route::Local { account } = &recipient.route else {
            return Outcome::Deferred(local(Status::new(4, 3, 5), "not a local recipient"));
        };
        let directory = self.directory.current();
        let Some(entry) = directory.account(account) else {
            return Outcome::Failed(local(
                Status::new(5, 1, 1),
                format!("account {account} no longer exists"),
            ));
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                return Outcome::Deferred(local(
                    Status::new(4, 3, 0),
                    format!("cannot read the queued message: {e}"),
                ));
            }
        };
        let mut header =
            delivery_headers(&envelope.sender, &recipient.address.to_string()).into_bytes();
        header.extend_from_slice(&message.head);
        let mailbox = directory.maildir(account);
        let folder = envelope.quarantine.then_some(maildir::JUNK);
        if let Some(quota) = entry.quota {
            let size = header.len() as u64 + message.rest_len;
            match maildir::Quota::new(quota).usage(&mailbox) {
                Ok(used) if used + size > quota => {
                    return Outcome::Deferred(local(
                        Status::new(4, 2, 2),
                        format!("mailbox of {account} is full ({used} of {quota} octets used)"),
                    ));
                }
                Ok(_) => {}
                Err(e) => warn!(account, error = %e, "cannot measure mailbox; delivering anyway"),
            }
        }
        let mut rest = message.rest;
        match maildir::deliver(
            &mailbox,
            folder,
            &self.hostname,
            &header,
            &mut rest,
            message.rest_len,
        ) {
            Ok(path) => Outcome::Delivered {
                diagnostic: local(
                    Status::new(2, 0, 0),
                    format!(
                        "delivered to maildir {}",
                        path.file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                    ),
                ),
                dsn: Some(DsnAction::Delivered),
            },
            Err(e) => Outcome::Deferred(local(
                Status::new(4, 3, 0),
                format!("maildir delivery failed: {e}"),
            )),
        }
    }
}

impl Transport for LocalTransport {
    fn run(
        self: Arc<Self>,
        _destination: Destination,
        job: Job,
        feed: Feed,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut next = Some(job);
            while let Some(job) = next {
                let id = job.envelope.id;
                let me = Arc::clone(&self);
                let indexes = job.recipients.clone();
                let outcomes = tokio::task::spawn_blocking(move || me.deliver(&job))
                    .await
                    .unwrap_or_else(|e| {
                        let why = local(Status::new(4, 3, 0), format!("delivery task failed: {e}"));
                        indexes
                            .iter()
                            .map(|&i| (i, Outcome::Deferred(why.clone())))
                            .collect()
                    });
                next = feed.next(JobResult { id, outcomes }, None).await;
            }
        })
    }

    fn destination(&self, _envelope: &Envelope, _index: usize) -> Destination {
        Destination::Local
    }
}

/// A diagnostic of our own (not a remote server's reply).
pub fn local(status: Status, text: impl Into<String>) -> Diagnostic {
    Diagnostic {
        status,
        text: text.into(),
        remote_mta: None,
        smtp_reply: None,
    }
}
