//! Writing the delivery status notifications a message owes into the queue, as new
//! messages with the null sender. A notice about a notice goes to the postmaster at most,
//! and a notice to the postmaster that fails is dropped: notices never loop.

use std::io::Read;
use std::sync::Arc;

use posthorn_proto::{ForwardPath, Mailbox, ReversePath};
use posthorn_spool::{ClientInfo, DeliveryState, DsnAction, Envelope, QueueStore, Recipient};
use tracing::{info, warn};

use crate::accounts::directory::Resolution;
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
        let recipients = match self.directory.current().resolve(&to) {
            Resolution::Deliver(targets) => targets
                .into_iter()
                .map(|t| notice_recipient(t.address, t.route, &to))
                .collect(),
            Resolution::Remote => match &to {
                ForwardPath::Mailbox(m) => vec![notice_recipient(
                    m.clone(),
                    posthorn_spool::Route::Remote,
                    &to,
                )],
                ForwardPath::Postmaster => Vec::new(),
            },
            Resolution::UnknownUser => Vec::new(),
        };
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
            id,
            sender: ReversePath::Null,
            smtputf8: !recipients.iter().all(|r| r.address.is_ascii()),
            recipients,
            body: if bytes.is_ascii() {
                posthorn_proto::BodyType::SevenBit
            } else {
                posthorn_proto::BodyType::EightBitMime
            },
            ret: None,
            envid: None,
            arrival: now,
            client: ClientInfo::default(),
            prepend: signatures,
            hold: false,
            delay_notified: false,
            postmaster_notice,
            quarantine: false,
        };
        self.store.writer(id)?.commit(bytes, &notice).wait()?;
        Ok(notice)
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
