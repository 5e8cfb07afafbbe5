//! The local transport: delivers jobs for local accounts into their Maildirs, each on a
//! blocking thread, and asks the manager for the next.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use posthorn_proto::headers::header_section;
use posthorn_proto::{ForwardPath, ReversePath, Status};
use posthorn_sieve::Action;
use posthorn_spool::{Diagnostic, DsnAction, Envelope, QueueStore, Route};
use tracing::{info, warn};

use crate::accounts::users::LiveDirectory;
use crate::delivery::message::QueuedMessage;
use crate::delivery::sieve::{self, Sieve};
use crate::mailauth::sign::Signer;
use crate::queue::policy::Outcome;
use crate::queue::{Destination, Feed, Job, JobResult, Transport};
use crate::received::delivery_headers;
use posthorn_maildir as maildir;
use posthorn_maildir::store::cache::NO_UID;

/// Delivers into local Maildirs.
pub struct LocalTransport {
    store: Arc<dyn QueueStore>,
    directory: Arc<LiveDirectory>,
    hostname: String,
    max_hops: usize,
    /// The accounts' Sieve filters; `None` when `[sieve]` is off.
    sieve: Option<Arc<Sieve>>,
    /// Signs vacation replies from our domains, so they pass DMARC where they land.
    signer: Option<Arc<Signer>>,
}

impl LocalTransport {
    /// A transport reading from `store`, delivering to the accounts of `directory`
    /// through their Sieve scripts, signing their vacation replies with `signer`.
    pub fn new(
        store: Arc<dyn QueueStore>,
        directory: Arc<LiveDirectory>,
        hostname: String,
        max_hops: usize,
        sieve: Option<Arc<Sieve>>,
        signer: Option<Arc<Signer>>,
    ) -> Self {
        LocalTransport {
            store,
            directory,
            hostname,
            max_hops,
            sieve,
            signer,
        }
    }

    /// Delivers every recipient of `job`; with the messages their Sieve scripts wrote.
    /// Blocking.
    fn deliver(&self, job: &Job) -> (Vec<(usize, Outcome)>, Vec<Envelope>) {
        let mut first = match QueuedMessage::for_job(self.store.as_ref(), job) {
            Err(e) => {
                let why = local(
                    Status::new(4, 3, 0),
                    format!("cannot read the queued message: {e}"),
                );
                let deferred = job.recipients.iter();
                return (
                    deferred
                        .map(|&i| (i, Outcome::Deferred(why.clone())))
                        .collect(),
                    Vec::new(),
                );
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
                let failed = job.recipients.iter();
                return (
                    failed.map(|&i| (i, Outcome::Failed(why.clone()))).collect(),
                    Vec::new(),
                );
            }
            Ok(message) => Some(message),
        };
        let mut spawned = Vec::new();
        let outcomes = job
            .recipients
            .iter()
            .map(|&index| {
                let message = match first.take() {
                    Some(message) => Ok(message),
                    None => QueuedMessage::for_job(self.store.as_ref(), job),
                };
                (index, self.deliver_one(job, index, message, &mut spawned))
            })
            .collect();
        (outcomes, spawned)
    }

    /// Delivers one recipient's copy as its Sieve script says (into the inbox without
    /// one); messages the script makes (redirects, vacation replies) are written into the
    /// spool and added to `spawned`.
    fn deliver_one(
        &self,
        job: &Job,
        index: usize,
        message: std::io::Result<QueuedMessage>,
        spawned: &mut Vec<Envelope>,
    ) -> Outcome {
        let envelope = &job.envelope;
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
        let unreadable = |e: std::io::Error| {
            Outcome::Deferred(local(
                Status::new(4, 3, 0),
                format!("cannot read the queued message: {e}"),
            ))
        };
        let mut message = match message {
            Ok(message) => message,
            Err(e) => return unreadable(e),
        };
        let mailbox = directory.maildir(account);
        let address = recipient.address.to_string();
        if let Some(quota) = entry.quota {
            let size = message.size();
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
        let now = crate::clock::unix_now();
        let filters = self
            .sieve
            .as_ref()
            .map(|sieve| (sieve, sieve.filters(&mailbox, &address)))
            .filter(|(_, filters)| filters.any());
        let actions = match filters {
            Some((sieve, filters)) => {
                if let Err(e) = message.read_ahead(sieve.max_body_size()) {
                    return unreadable(e);
                }
                filters.actions(&sieve::Delivery {
                    message: &message.head,
                    sender: &envelope.sender.to_string(),
                    recipient: &address,
                    now: i64::try_from(now).unwrap_or(i64::MAX),
                })
            }
            None => vec![Action::Keep { flags: Vec::new() }],
        };
        let mut message = Some(message);
        let mut placed = Vec::new();
        for action in actions {
            let stored = match action {
                Action::Keep { flags } => {
                    let folder = envelope.quarantine.then_some(maildir::JUNK);
                    self.store_copy(job, &mut message, &mailbox, folder, false, &flags, &address)
                }
                Action::FileInto {
                    mailbox: name,
                    flags,
                    create,
                    ..
                } => {
                    let folder = Some(name.as_str()).filter(|n| !n.eq_ignore_ascii_case("INBOX"));
                    self.store_copy(
                        job,
                        &mut message,
                        &mailbox,
                        folder,
                        create,
                        &flags,
                        &address,
                    )
                }
                Action::Discard => continue,
                Action::Reject { reason, .. } => {
                    info!(queue_id = %envelope.id, recipient = %address, "rejected by the recipient's Sieve script");
                    return Outcome::Failed(local(Status::new(5, 7, 1), reason));
                }
                Action::Redirect { address: to, .. } => {
                    self.redirect(job, &mut message, &to, &address, now, spawned);
                    continue;
                }
                Action::Vacation(vacation) => {
                    self.vacation(
                        &vacation,
                        &mailbox,
                        &address,
                        &mut message,
                        job,
                        now,
                        spawned,
                    );
                    continue;
                }
            };
            match stored {
                Ok(path) => placed.push(path),
                Err(e) => {
                    return Outcome::Deferred(local(
                        Status::new(4, 3, 0),
                        format!("maildir delivery failed: {e}"),
                    ));
                }
            }
        }
        let names: Vec<String> = placed
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Outcome::Delivered {
            diagnostic: local(
                Status::new(2, 0, 0),
                if names.is_empty() {
                    "delivered: discarded by the recipient's Sieve script".to_string()
                } else {
                    format!("delivered to maildir {}", names.join(" "))
                },
            ),
            dsn: Some(DsnAction::Delivered),
        }
    }

    /// The message again, for a second copy (the first copy read it through).
    fn reopen(
        &self,
        job: &Job,
        message: &mut Option<QueuedMessage>,
    ) -> std::io::Result<QueuedMessage> {
        match message.take() {
            Some(message) => Ok(message),
            None => QueuedMessage::for_job(self.store.as_ref(), job),
        }
    }

    /// Stores one copy into `folder` (the inbox when `None`) with Sieve's `flags`. A
    /// folder that does not exist is made only with `create` (`:create`, RFC 5490 §3.2);
    /// else the copy goes to the inbox, as Pigeonhole does.
    #[allow(clippy::too_many_arguments)]
    fn store_copy(
        &self,
        job: &Job,
        message: &mut Option<QueuedMessage>,
        root: &std::path::Path,
        folder: Option<&str>,
        create: bool,
        flags: &[String],
        address: &str,
    ) -> std::io::Result<std::path::PathBuf> {
        let store = posthorn_maildir::store::Mailbox::new(root.to_path_buf(), &self.hostname);
        let folder = match folder {
            Some(name) if name != maildir::JUNK => {
                let found = match store.folder(name) {
                    Ok(found) => Some(found),
                    Err(_) if create => {
                        store.create(name).map_err(std::io::Error::other)?;
                        Some(store.folder(name).map_err(std::io::Error::other)?)
                    }
                    Err(_) => {
                        warn!(
                            recipient = address,
                            folder = name,
                            "Sieve fileinto a folder that does not exist; delivered to the inbox"
                        );
                        None
                    }
                };
                // Its name on disk (`.Name`, modified UTF-7), as `deliver` takes it.
                found.and_then(|f| {
                    let on_disk = f.dir().file_name()?.to_string_lossy().into_owned();
                    Some(on_disk.trim_start_matches('.').to_string())
                })
            }
            other => other.map(str::to_string),
        };
        let mut copy = self.reopen(job, message)?;
        let mut header = delivery_headers(&job.envelope.sender, address).into_bytes();
        header.extend_from_slice(&copy.head);
        let path = maildir::deliver_flagged(
            root,
            folder.as_deref(),
            &self.hostname,
            &header,
            &mut copy.rest,
            copy.rest_len,
            &maildir_letters(flags),
        )?;
        cache_header(&path, &header, copy.rest_len == 0);
        Ok(path)
    }

    /// Sends a copy on to `to` (Sieve `redirect`), from the original sender (rewritten by
    /// SRS when it leaves for another server, as an alias's forward), with a trace field:
    /// each redirect is a hop, so a loop ends at `max_hops`.
    fn redirect(
        &self,
        job: &Job,
        message: &mut Option<QueuedMessage>,
        to: &str,
        address: &str,
        now: u64,
        spawned: &mut Vec<Envelope>,
    ) {
        let written = posthorn_proto::address::parse_mailbox(to)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|to| {
                let mut copy = self.reopen(job, message)?;
                let trace = format!(
                    "Received: by {} (Posthorn Sieve redirect of {address});\r\n\t{}\r\n",
                    self.hostname,
                    crate::received::rfc5322_date(now)
                );
                let mut content = std::io::Read::chain(copy.head.as_slice(), &mut copy.rest);
                let recipients = sieve::reply::recipients(
                    &self.directory.current(),
                    &ForwardPath::Mailbox(to),
                    Some(address),
                );
                sieve::reply::write_new(
                    self.store.as_ref(),
                    job.envelope.sender.clone(),
                    recipients,
                    trace,
                    &mut content,
                    now,
                )
            });
        match written {
            Ok(Some(envelope)) => spawned.push(envelope),
            Ok(None) => warn!(
                recipient = address,
                to, "Sieve redirect to an unknown local user; dropped"
            ),
            Err(e) => warn!(recipient = address, to, error = %e, "cannot write a Sieve redirect"),
        }
    }

    /// Sends the vacation reply, unless its sender had one for this vacation within its
    /// period (RFC 5230 §4.2); from the null sender, as auto-replies go (RFC 3834 §3.3).
    #[allow(clippy::too_many_arguments)]
    fn vacation(
        &self,
        vacation: &posthorn_sieve::Vacation,
        root: &std::path::Path,
        address: &str,
        message: &mut Option<QueuedMessage>,
        job: &Job,
        now: u64,
        spawned: &mut Vec<Envelope>,
    ) {
        let sent = (|| -> std::io::Result<Option<Envelope>> {
            let to = match posthorn_proto::address::parse_mailbox(&vacation.to) {
                Ok(to) => to,
                Err(_) => return Ok(None),
            };
            let mut replied = sieve::vacation::Replied::load(root)?;
            if !replied.may_reply(&vacation.handle, &vacation.to, now) {
                return Ok(None);
            }
            let copy = self.reopen(job, message)?;
            let mut reply = sieve::reply::vacation(
                vacation,
                address,
                header_section(&copy.head),
                &self.hostname,
                i64::try_from(now).unwrap_or(i64::MAX),
            )?;
            *message = Some(copy);
            let signatures = self
                .signer
                .as_ref()
                .map_or_else(String::new, |signer| signer.sign(b"", &mut reply));
            let recipients = sieve::reply::recipients(
                &self.directory.current(),
                &ForwardPath::Mailbox(to),
                None,
            );
            let written = sieve::reply::write_new(
                self.store.as_ref(),
                ReversePath::Null,
                recipients,
                signatures,
                &mut reply.as_slice(),
                now,
            )?;
            replied.replied(&vacation.handle, &vacation.to, now, vacation.period_seconds)?;
            Ok(written)
        })();
        match sent {
            Ok(Some(envelope)) => {
                info!(recipient = address, to = %vacation.to, reply_id = %envelope.id, "vacation reply queued");
                spawned.push(envelope);
            }
            Ok(None) => {}
            Err(e) => warn!(recipient = address, error = %e, "cannot send a vacation reply"),
        }
    }
}

/// Caches the header fields of the copy delivered at `path` for IMAP, from `header` (its
/// start, the whole copy when `whole`): the first session that lists or searches the
/// folder need not open the file. The copy has no UID yet; IMAP finds the record by its
/// base name.
fn cache_header(path: &std::path::Path, header: &[u8], whole: bool) {
    let dir = path.parent().and_then(std::path::Path::parent);
    let name = path.file_name().and_then(|name| name.to_str());
    if let (Some(dir), Some(name)) = (dir, name) {
        let base = posthorn_maildir::store::base_of(name);
        posthorn_mailbox::imap::fill_header_cache(dir, NO_UID, base, header, whole);
    }
}

/// Sieve's flags (RFC 5232) as Maildir info letters, in the order a name lists them;
/// keywords have no letter of their own at delivery and are left out.
fn maildir_letters(flags: &[String]) -> String {
    let mut letters: Vec<char> = flags
        .iter()
        .filter_map(|flag| match flag.to_ascii_lowercase().as_str() {
            "\\draft" => Some('D'),
            "\\flagged" => Some('F'),
            "\\answered" => Some('R'),
            "\\seen" => Some('S'),
            "\\deleted" => Some('T'),
            _ => None,
        })
        .collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
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
                let (outcomes, spawned) = tokio::task::spawn_blocking(move || me.deliver(&job))
                    .await
                    .unwrap_or_else(|e| {
                        let why = local(Status::new(4, 3, 0), format!("delivery task failed: {e}"));
                        let deferred = indexes.iter();
                        (
                            deferred
                                .map(|&i| (i, Outcome::Deferred(why.clone())))
                                .collect(),
                            Vec::new(),
                        )
                    });
                next = feed
                    .next(
                        JobResult {
                            id,
                            outcomes,
                            spawned,
                        },
                        None,
                    )
                    .await;
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use posthorn_proto::{Mailbox, ReversePath};
    use posthorn_spool::{FsQueueStore, Recipient};
    use tempfile::TempDir;

    use super::*;
    use crate::config::parse;

    const PREPEND: &str =
        "Received: from client.test by mx.test; Thu, 1 Jan 2027 00:00:00 +0000\r\n";
    const CONTENT: &[u8] = b"From: sender@remote.test\r\nSubject: hello\r\n\r\nbody\r\n";

    /// A local transport (at most two Received headers) over a spool in a temporary
    /// folder, for the accounts postmaster, alice, and bob whose mailbox holds 250 octets.
    struct Setup {
        dir: TempDir,
        store: Arc<dyn QueueStore>,
        transport: LocalTransport,
    }

    impl Setup {
        fn new() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let config = parse(
                &format!(
                    "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n\n\
                     [[account]]\nname = \"postmaster\"\n\n[[account]]\nname = \"alice\"\n\n\
                     [[account]]\nname = \"bob\"\nquota = \"250\"\n",
                    dir.path().display()
                ),
                None,
            )
            .unwrap();
            let directory = LiveDirectory::load(&config).unwrap();
            let store: Arc<dyn QueueStore> =
                Arc::new(FsQueueStore::open(dir.path().join("queue")).unwrap());
            let sieve = Arc::new(Sieve::new(&config).unwrap());
            let transport = LocalTransport::new(
                Arc::clone(&store),
                directory,
                "mx.test".into(),
                2,
                Some(sieve),
                None,
            );
            Setup {
                dir,
                store,
                transport,
            }
        }

        /// Spools `content` for the local `accounts` (at `localhost`) and returns the job
        /// for all of them, its content to be read from the spool.
        fn queue(&self, accounts: &[&str], content: &[u8]) -> Job {
            let id = self.store.new_id();
            let sender = Mailbox {
                local: "sender".into(),
                domain: "remote.test".into(),
            };
            let recipients = accounts
                .iter()
                .map(|account| {
                    let address = Mailbox {
                        local: account.to_string(),
                        domain: "localhost".into(),
                    };
                    let route = Route::Local {
                        account: account.to_string(),
                    };
                    Recipient::new(address, route)
                })
                .collect();
            let envelope = Envelope {
                prepend: PREPEND.into(),
                ..Envelope::new(id, ReversePath::Mailbox(sender), recipients, 1_800_000_000)
            };
            self.store
                .writer(id)
                .unwrap()
                .commit(content.to_vec(), &envelope)
                .wait()
                .unwrap();
            Job {
                recipients: (0..accounts.len()).collect(),
                envelope: Arc::new(envelope),
                content: None,
            }
        }

        /// The files in `folder` (a Maildir, relative to the mail root) `new/`, by name.
        fn new_mail(&self, folder: &str) -> Vec<(PathBuf, Vec<u8>)> {
            files(&self.dir.path().join("mail").join(folder).join("new"))
        }
    }

    fn files(folder: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .map(|e| {
                let path = e.unwrap().path();
                let content = std::fs::read(&path).unwrap();
                (path, content)
            })
            .collect();
        files.sort();
        files
    }

    /// What a Maildir copy for `account` must hold.
    fn expected_copy(account: &str, content: &[u8]) -> Vec<u8> {
        let mut copy = format!(
            "Return-Path: <sender@remote.test>\r\nDelivered-To: {account}@localhost\r\n{PREPEND}"
        )
        .into_bytes();
        copy.extend_from_slice(content);
        copy
    }

    fn status(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Delivered { diagnostic, .. }
            | Outcome::Deferred(diagnostic)
            | Outcome::Failed(diagnostic) => diagnostic.status,
        }
    }

    #[test]
    fn a_copy_in_new_starts_with_return_path_delivered_to_and_our_headers() {
        let setup = Setup::new();
        let outcomes = setup.transport.deliver(&setup.queue(&["alice"], CONTENT)).0;
        let delivered = setup.new_mail("alice");
        assert_eq!(delivered.len(), 1);
        let (path, copy) = &delivered[0];
        assert_eq!(
            String::from_utf8_lossy(copy),
            String::from_utf8_lossy(&expected_copy("alice", CONTENT))
        );
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            outcomes,
            [(
                0,
                Outcome::Delivered {
                    diagnostic: local(Status::new(2, 0, 0), format!("delivered to maildir {name}")),
                    dsn: Some(DsnAction::Delivered),
                }
            )]
        );
        let alice = setup.dir.path().join("mail/alice");
        assert!(files(&alice.join("cur")).is_empty());
        assert!(files(&alice.join("tmp")).is_empty());
    }

    #[test]
    fn content_the_job_carries_is_delivered_as_the_spool_holds_it() {
        let setup = Setup::new();
        let mut job = setup.queue(&["alice"], CONTENT);
        job.content = Some(CONTENT.into());
        let outcomes = setup.transport.deliver(&job).0;
        assert_eq!(status(&outcomes[0].1), Status::new(2, 0, 0));
        assert_eq!(
            setup.new_mail("alice")[0].1,
            expected_copy("alice", CONTENT)
        );
    }

    #[test]
    fn several_recipients_each_get_a_whole_copy_of_a_large_message() {
        let setup = Setup::new();
        // Longer than what is read ahead of the rest, so each copy streams the spool again.
        let mut content = b"Subject: large\r\n\r\n".to_vec();
        while content.len() < 200_000 {
            content
                .extend_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefgh\r\n");
        }
        let outcomes = setup
            .transport
            .deliver(&setup.queue(&["alice", "postmaster"], &content))
            .0;
        assert_eq!(
            outcomes
                .iter()
                .map(|(i, o)| (*i, status(o)))
                .collect::<Vec<_>>(),
            [(0, Status::new(2, 0, 0)), (1, Status::new(2, 0, 0))]
        );
        for account in ["alice", "postmaster"] {
            let delivered = setup.new_mail(account);
            assert_eq!(delivered.len(), 1, "{account}");
            assert!(
                delivered[0].1 == expected_copy(account, &content),
                "{account}'s copy differs"
            );
        }
    }

    #[test]
    fn a_message_beyond_the_quota_is_deferred_as_mailbox_full() {
        let setup = Setup::new();
        let first = setup.transport.deliver(&setup.queue(&["bob"], CONTENT)).0;
        assert_eq!(status(&first[0].1), Status::new(2, 0, 0));
        let used = setup.new_mail("bob")[0].1.len();
        assert!(
            used <= 250 && 2 * used > 250,
            "one copy fits in bob's 250 octets, two do not"
        );
        let second = setup.transport.deliver(&setup.queue(&["bob"], CONTENT)).0;
        assert_eq!(
            second,
            [(
                0,
                Outcome::Deferred(local(
                    Status::new(4, 2, 2),
                    format!("mailbox of bob is full ({used} of 250 octets used)")
                ))
            )]
        );
        assert_eq!(setup.new_mail("bob").len(), 1, "nothing written");
    }

    #[test]
    fn an_unknown_account_fails_permanently() {
        let setup = Setup::new();
        let outcomes = setup.transport.deliver(&setup.queue(&["ghost"], CONTENT)).0;
        assert_eq!(
            outcomes,
            [(
                0,
                Outcome::Failed(local(
                    Status::new(5, 1, 1),
                    "account ghost no longer exists"
                ))
            )]
        );
        assert!(!setup.dir.path().join("mail/ghost").exists());
    }

    #[test]
    fn too_many_received_headers_fail_every_recipient_as_a_loop() {
        let setup = Setup::new();
        // Our own Received line plus two in the content: three, one more than allowed.
        let content = b"Received: one\r\nReceived: two\r\nSubject: loop\r\n\r\nbody\r\n";
        let outcomes = setup
            .transport
            .deliver(&setup.queue(&["alice", "bob"], content))
            .0;
        let why = local(
            Status::new(5, 4, 6),
            "mail loop: 3 Received headers, more than 2",
        );
        assert_eq!(
            outcomes,
            [(0, Outcome::Failed(why.clone())), (1, Outcome::Failed(why))]
        );
        assert!(setup.new_mail("alice").is_empty());
    }

    #[test]
    fn quarantined_mail_goes_to_the_junk_folder() {
        let setup = Setup::new();
        let job = setup.queue(&["alice"], CONTENT);
        let mut envelope = (*job.envelope).clone();
        envelope.quarantine = true;
        let job = Job {
            envelope: Arc::new(envelope),
            ..job
        };
        setup.transport.deliver(&job);
        assert!(setup.new_mail("alice").is_empty());
        assert_eq!(
            setup.new_mail("alice/.Junk")[0].1,
            expected_copy("alice", CONTENT)
        );
    }
}
