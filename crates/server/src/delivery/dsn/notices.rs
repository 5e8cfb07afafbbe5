//! Writing the delivery status notifications a message owes into the queue, as new
//! messages with the null sender. A notice about a notice goes to the postmaster at most,
//! and a notice to the postmaster that fails is dropped: notices never loop.

use std::io::Read;
use std::sync::Arc;

use posthorn_proto::{ForwardPath, Mailbox, ReversePath};
use posthorn_spool::{DeliveryState, DsnAction, Envelope, QueueStore, Recipient};
use tracing::{info, warn};

use crate::accounts::directory::{Directory, Resolution};
use crate::accounts::users::LiveDirectory;
use crate::delivery::dsn::{self, Notice};
use crate::mailauth::sign::Signer;

/// Writes notices; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn QueueStore>,
    directory: Arc<LiveDirectory>,
    hostname: String,
    notify_postmaster: bool,
    /// Signs notices from our host name's domain, so they pass DMARC where they land.
    signer: Option<Arc<Signer>>,
}

impl Notifier {
    /// A notifier writing into `store`, routing notices through `directory`, signing with
    /// `signer` when given.
    pub fn new(
        store: Arc<dyn QueueStore>,
        directory: Arc<LiveDirectory>,
        hostname: String,
        notify_postmaster: bool,
        signer: Option<Arc<Signer>>,
    ) -> Self {
        Notifier {
            store,
            directory,
            hostname,
            notify_postmaster,
            signer,
        }
    }

    /// Writes every notice `envelope` owes (failures, successes, relays, and the delay
    /// notice for the recipients in `delayed`), clears what it owed, and returns the new
    /// messages. Blocking.
    pub fn write_owed(
        &self,
        envelope: &mut Envelope,
        delayed: &[usize],
        retry_until: u64,
        now: u64,
    ) -> Vec<Envelope> {
        let mut written = Vec::new();
        for action in [DsnAction::Failed, DsnAction::Delivered, DsnAction::Relayed] {
            let indexes: Vec<usize> = envelope
                .recipients
                .iter()
                .enumerate()
                .filter(|(_, r)| r.state.dsn_owed == Some(action))
                .map(|(i, _)| i)
                .collect();
            if indexes.is_empty() {
                continue;
            }
            written.extend(self.notice(envelope, action, &indexes, None, now));
            for i in indexes {
                envelope.recipients[i].state.dsn_owed = None;
            }
        }
        if !delayed.is_empty() {
            written.extend(self.notice(
                envelope,
                DsnAction::Delayed,
                delayed,
                Some(retry_until),
                now,
            ));
            envelope.delay_notified = true;
        }
        written
    }

    fn notice(
        &self,
        envelope: &Envelope,
        action: DsnAction,
        indexes: &[usize],
        retry_until: Option<u64>,
        now: u64,
    ) -> Option<Envelope> {
        let (to, postmaster_notice) = match &envelope.sender {
            ReversePath::Mailbox(sender) => (ForwardPath::Mailbox(sender.clone()), false),
            // A bounce of a bounce: the postmaster may hear of it, once.
            ReversePath::Null
                if action == DsnAction::Failed
                    && self.notify_postmaster
                    && !envelope.postmaster_notice =>
            {
                (ForwardPath::Postmaster, true)
            }
            ReversePath::Null => {
                info!(queue_id = %envelope.id, action = action.as_str(), "no notice for a message without sender");
                return None;
            }
        };
        let recipients = recipients_of(&self.directory.current(), &to);
        if recipients.is_empty() {
            warn!(queue_id = %envelope.id, to = %to, "notice has nowhere to go, dropped");
            return None;
        }
        match self.write(
            envelope,
            action,
            indexes,
            retry_until,
            now,
            recipients,
            postmaster_notice,
        ) {
            Ok(notice) => {
                info!(queue_id = %envelope.id, notice_id = %notice.id, action = action.as_str(), to = %to, "notice queued");
                Some(notice)
            }
            Err(e) => {
                warn!(queue_id = %envelope.id, error = %e, "cannot write a notice");
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        envelope: &Envelope,
        action: DsnAction,
        indexes: &[usize],
        retry_until: Option<u64>,
        now: u64,
        recipients: Vec<Recipient>,
        postmaster_notice: bool,
    ) -> std::io::Result<Envelope> {
        let mut original = envelope.prepend.clone().into_bytes();
        let mut content = self.store.content(&envelope.id)?;
        content.reader.read_to_end(&mut original)?;
        let report = Notice {
            action,
            envelope,
            recipients: indexes
                .iter()
                .filter_map(|&i| envelope.recipients.get(i))
                .collect(),
            reporting_mta: &self.hostname,
            now,
            retry_until,
        };
        let mut bytes = dsn::write(&report, &original)?;
        let signatures = self
            .signer
            .as_ref()
            .map_or_else(String::new, |signer| signer.sign(b"", &mut bytes));
        let id = self.store.new_id();
        let notice = Envelope {
            smtputf8: !recipients.iter().all(|r| r.address.is_ascii()),
            body: if bytes.is_ascii() {
                posthorn_proto::BodyType::SevenBit
            } else {
                posthorn_proto::BodyType::EightBitMime
            },
            prepend: signatures,
            postmaster_notice,
            ..Envelope::new(id, ReversePath::Null, recipients, now)
        };
        self.store.writer(id)?.commit(bytes, &notice).wait()?;
        Ok(notice)
    }
}

/// The recipients a message the server writes itself (a notice, a Sieve redirect or
/// vacation reply) to `to` gets: local accounts as aliases lead, or the remote address;
/// none for an unknown local user.
pub(crate) fn recipients_of(directory: &Directory, to: &ForwardPath) -> Vec<Recipient> {
    match directory.resolve(to) {
        Resolution::Deliver(targets) => targets
            .into_iter()
            .map(|t| notice_recipient(t.address, t.route, to))
            .collect(),
        Resolution::Remote => match to {
            ForwardPath::Mailbox(m) => vec![notice_recipient(
                m.clone(),
                posthorn_spool::Route::Remote,
                to,
            )],
            ForwardPath::Postmaster => Vec::new(),
        },
        Resolution::UnknownUser => Vec::new(),
    }
}

fn notice_recipient(address: Mailbox, route: posthorn_spool::Route, to: &ForwardPath) -> Recipient {
    Recipient {
        address,
        route,
        rcpt: to.to_string(),
        notify: None,
        orcpt: None,
        state: DeliveryState::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mail_parser::{MessageParser, MimeHeaders};
    use posthorn_proto::{Notify, Status};
    use posthorn_spool::{Diagnostic, FsQueueStore, RecipientStatus, Route};
    use tempfile::TempDir;

    use super::*;
    use crate::config::parse;
    use crate::queue::policy::{Outcome, Policy};
    use crate::received::rfc5322_date;

    const ARRIVAL: u64 = 1_800_000_000;
    const NOW: u64 = ARRIVAL + 600;

    /// A notifier writing into a spool in a temporary folder, for the local domain
    /// `localhost` with the accounts postmaster and alice.
    struct Setup {
        _dir: TempDir,
        store: Arc<dyn QueueStore>,
        notifier: Notifier,
        policy: Policy,
    }

    impl Setup {
        fn new(notify_postmaster: bool) -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let config = parse(
                &format!(
                    "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n\n\
                     [[account]]\nname = \"postmaster\"\n\n[[account]]\nname = \"alice\"\n",
                    dir.path().display()
                ),
                None,
            )
            .unwrap();
            let directory = LiveDirectory::load(&config).unwrap();
            let store: Arc<dyn QueueStore> =
                Arc::new(FsQueueStore::open(dir.path().join("queue")).unwrap());
            let notifier = Notifier::new(
                Arc::clone(&store),
                directory,
                "mx.test".into(),
                notify_postmaster,
                None,
            );
            let policy = Policy {
                retry_schedule: vec![Duration::from_secs(60)],
                max_lifetime: 5 * 86_400,
                delay_warning: 4 * 3_600,
            };
            Setup {
                _dir: dir,
                store,
                notifier,
                policy,
            }
        }

        /// Spools a message from `sender` to r1@remote.test and r2@remote.test, with the
        /// NOTIFY of each.
        fn queue(&self, sender: ReversePath, notify: [Option<Notify>; 2]) -> Envelope {
            let id = self.store.new_id();
            let recipients = ["r1", "r2"]
                .into_iter()
                .zip(notify)
                .map(|(local, notify)| {
                    let address = Mailbox {
                        local: local.into(),
                        domain: "remote.test".into(),
                    };
                    Recipient {
                        notify,
                        ..Recipient::new(address, Route::Remote)
                    }
                })
                .collect();
            let envelope = Envelope::new(id, sender, recipients, ARRIVAL);
            self.store
                .writer(id)
                .unwrap()
                .commit(
                    b"From: someone\r\nSubject: original\r\n\r\nbody\r\n".to_vec(),
                    &envelope,
                )
                .wait()
                .unwrap();
            envelope
        }

        /// Records `outcome` for recipient `index` at NOW, as the queue manager does.
        fn record(&self, envelope: &mut Envelope, index: usize, outcome: Outcome) {
            let arrival = envelope.arrival;
            self.policy
                .record(&mut envelope.recipients[index], arrival, outcome, NOW);
        }

        /// The `To` address and the `message/delivery-status` text of a spooled notice.
        fn read(&self, notice: &Envelope) -> (String, String) {
            let mut bytes = Vec::new();
            self.store
                .content(&notice.id)
                .unwrap()
                .reader
                .read_to_end(&mut bytes)
                .unwrap();
            let message = MessageParser::new().parse(&bytes).unwrap();
            let to = message.to().unwrap().first().unwrap().address().unwrap();
            let status = message
                .root_part()
                .sub_parts()
                .unwrap()
                .iter()
                .map(|&id| message.part(id).unwrap())
                .find(|part| {
                    part.content_type()
                        .is_some_and(|c| c.subtype() == Some("delivery-status"))
                })
                .expect("a delivery-status part");
            (
                to.to_string(),
                String::from_utf8_lossy(status.contents()).into_owned(),
            )
        }
    }

    fn sender(local: &str, domain: &str) -> ReversePath {
        ReversePath::Mailbox(Mailbox {
            local: local.into(),
            domain: domain.into(),
        })
    }

    fn failed() -> Outcome {
        Outcome::Failed(Diagnostic {
            status: Status::new(5, 1, 1),
            text: "550 5.1.1 no such user".into(),
            remote_mta: Some("mx.remote.test".into()),
            smtp_reply: Some("550 5.1.1 no such user".into()),
        })
    }

    fn delivered() -> Outcome {
        Outcome::Delivered {
            diagnostic: Diagnostic {
                status: Status::new(2, 0, 0),
                text: "250 ok".into(),
                remote_mta: Some("mx.remote.test".into()),
                smtp_reply: Some("250 ok".into()),
            },
            dsn: Some(DsnAction::Delivered),
        }
    }

    fn deferred() -> Outcome {
        Outcome::Deferred(Diagnostic {
            status: Status::new(4, 4, 1),
            text: "connection refused".into(),
            remote_mta: None,
            smtp_reply: None,
        })
    }

    const SUCCESS: Notify = Notify {
        success: true,
        failure: true,
        delay: true,
    };

    #[test]
    fn failed_recipients_owe_one_bounce_from_the_null_sender_to_the_envelope_sender() {
        let setup = Setup::new(true);
        let mut envelope = setup.queue(sender("someone", "elsewhere.test"), [None, None]);
        setup.record(&mut envelope, 0, failed());
        setup.record(&mut envelope, 1, delivered());

        let notices = setup.notifier.write_owed(&mut envelope, &[], 0, NOW);
        assert_eq!(notices.len(), 1);
        let notice = &notices[0];
        assert_eq!(notice.sender, ReversePath::Null);
        assert_eq!(notice.arrival, NOW);
        assert!(!notice.postmaster_notice);
        let to: Vec<_> = notice
            .recipients
            .iter()
            .map(|r| (r.address.to_string(), r.route.clone()))
            .collect();
        assert_eq!(to, [("someone@elsewhere.test".to_string(), Route::Remote)]);
        assert_eq!(setup.store.load(&notice.id).unwrap(), *notice, "spooled");

        let (to, status) = setup.read(notice);
        assert_eq!(to, "someone@elsewhere.test");
        assert!(status.contains("Final-Recipient: rfc822; r1@remote.test\r\nAction: failed\r\n"));
        assert!(
            !status.contains("r2@remote.test"),
            "without NOTIFY, a delivery is not reported: {status}"
        );

        assert_eq!(
            envelope.recipients[0].state.dsn_owed, None,
            "no longer owed"
        );
        assert!(
            setup
                .notifier
                .write_owed(&mut envelope, &[], 0, NOW)
                .is_empty()
        );
    }

    #[test]
    fn a_local_sender_gets_its_notice_in_its_own_account() {
        let setup = Setup::new(true);
        let mut envelope = setup.queue(sender("alice", "localhost"), [None, None]);
        setup.record(&mut envelope, 0, failed());
        let notices = setup.notifier.write_owed(&mut envelope, &[], 0, NOW);
        assert_eq!(
            notices[0].recipients[0].route,
            Route::Local {
                account: "alice".into()
            }
        );
    }

    #[test]
    fn notify_never_owes_no_notice() {
        let setup = Setup::new(true);
        let mut envelope = setup.queue(sender("alice", "localhost"), [Some(Notify::NEVER); 2]);
        setup.record(&mut envelope, 0, failed());
        setup.record(&mut envelope, 1, delivered());
        assert!(
            setup
                .notifier
                .write_owed(&mut envelope, &[], 0, NOW)
                .is_empty()
        );
        assert_eq!(setup.store.ids().unwrap(), [envelope.id], "nothing spooled");
    }

    #[test]
    fn notify_success_owes_a_delivered_notice() {
        let setup = Setup::new(true);
        let mut envelope = setup.queue(sender("alice", "localhost"), [Some(SUCCESS), None]);
        setup.record(&mut envelope, 0, delivered());
        setup.record(&mut envelope, 1, delivered());
        let notices = setup.notifier.write_owed(&mut envelope, &[], 0, NOW);
        assert_eq!(notices.len(), 1);
        let (_, status) = setup.read(&notices[0]);
        assert!(
            status.contains("Final-Recipient: rfc822; r1@remote.test\r\nAction: delivered\r\n"),
            "{status}"
        );
        assert!(!status.contains("r2@remote.test"), "{status}");
    }

    #[test]
    fn a_delay_notice_names_the_delayed_recipients_and_marks_the_message() {
        let setup = Setup::new(true);
        let mut envelope = setup.queue(sender("alice", "localhost"), [None, None]);
        setup.record(&mut envelope, 0, deferred());
        setup.record(&mut envelope, 1, deferred());
        let until = ARRIVAL + 5 * 86_400;
        let notices = setup.notifier.write_owed(&mut envelope, &[1], until, NOW);
        assert_eq!(notices.len(), 1);
        assert!(envelope.delay_notified);
        let (_, status) = setup.read(&notices[0]);
        assert!(
            status.contains("Final-Recipient: rfc822; r2@remote.test\r\nAction: delayed\r\n"),
            "{status}"
        );
        assert!(
            status.contains(&format!("Will-Retry-Until: {}\r\n", rfc5322_date(until))),
            "{status}"
        );
        assert!(!status.contains("r1@remote.test"), "{status}");
    }

    #[test]
    fn notices_about_notices_go_to_the_postmaster_once_then_stop() {
        let setup = Setup::new(true);
        let mut original = setup.queue(sender("someone", "elsewhere.test"), [None, None]);
        setup.record(&mut original, 0, failed());
        let mut bounce = setup
            .notifier
            .write_owed(&mut original, &[], 0, NOW)
            .remove(0);

        // The bounce fails too: the postmaster hears of it.
        setup.record(&mut bounce, 0, failed());
        let mut to_postmaster = setup.notifier.write_owed(&mut bounce, &[], 0, NOW);
        assert_eq!(to_postmaster.len(), 1);
        let mut notice = to_postmaster.remove(0);
        assert_eq!(notice.sender, ReversePath::Null);
        assert!(notice.postmaster_notice);
        let recipient = &notice.recipients[0];
        assert_eq!(
            (recipient.address.to_string(), &recipient.route),
            (
                "postmaster@localhost".to_string(),
                &Route::Local {
                    account: "postmaster".into()
                }
            )
        );

        // The postmaster's notice fails: it is dropped, nobody is told.
        setup.record(&mut notice, 0, failed());
        assert!(
            setup
                .notifier
                .write_owed(&mut notice, &[], 0, NOW)
                .is_empty()
        );
        assert_eq!(notice.recipients[0].state.dsn_owed, None);
    }

    #[test]
    fn a_failed_bounce_is_dropped_when_the_postmaster_is_not_to_be_told() {
        let setup = Setup::new(false);
        let mut bounce = setup.queue(ReversePath::Null, [None, None]);
        setup.record(&mut bounce, 0, failed());
        assert!(
            setup
                .notifier
                .write_owed(&mut bounce, &[], 0, NOW)
                .is_empty()
        );
    }

    #[test]
    fn a_bounce_is_never_followed_by_a_delay_or_success_notice() {
        let setup = Setup::new(true);
        let mut bounce = setup.queue(ReversePath::Null, [Some(SUCCESS), None]);
        setup.record(&mut bounce, 0, delivered());
        setup.record(&mut bounce, 1, deferred());
        assert!(
            setup
                .notifier
                .write_owed(&mut bounce, &[1], 0, NOW)
                .is_empty()
        );
        assert_eq!(setup.store.ids().unwrap(), [bounce.id]);
    }

    #[test]
    fn a_notice_for_an_unknown_local_sender_is_dropped() {
        let setup = Setup::new(true);
        let mut envelope = setup.queue(sender("nobody", "localhost"), [None, None]);
        setup.record(&mut envelope, 0, failed());
        assert!(
            setup
                .notifier
                .write_owed(&mut envelope, &[], 0, NOW)
                .is_empty()
        );
        assert_eq!(
            envelope.recipients[0].state.dsn_owed, None,
            "not owed again"
        );
        assert_eq!(envelope.recipients[0].state.status, RecipientStatus::Failed);
    }
}
