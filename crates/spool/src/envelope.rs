//! The envelope of a queued message: who sent it, to whom, with which DSN requests, and
//! where each recipient's delivery stands. This is what the queue manager schedules and
//! what a bounce is written from.
//!
//! These types are never serialised: the spool stores them through the record types of
//! `format`, which keep the files' form fixed, so they can change with the code (a change
//! stops the build there until someone decides how it is stored).

use std::net::IpAddr;

use posthorn_proto::{BodyType, Mailbox, Notify, Orcpt, Ret, ReversePath, Status};

use crate::id::QueueId;

/// Everything about a queued message except its content.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The queue id; also the spool file name.
    pub id: QueueId,
    /// MAIL FROM; `Null` for bounces, which are never bounced themselves.
    pub sender: ReversePath,
    /// One entry per final recipient (after alias expansion).
    pub recipients: Vec<Recipient>,
    /// BODY= of MAIL FROM.
    pub body: BodyType,
    /// SMTPUTF8 was given: the next hop must support it.
    pub smtputf8: bool,
    /// RET= of MAIL FROM.
    pub ret: Option<Ret>,
    /// ENVID= of MAIL FROM, decoded.
    pub envid: Option<String>,
    /// When we accepted the message, in seconds since the Unix epoch.
    pub arrival: u64,
    /// Who handed us the message.
    pub client: ClientInfo,
    /// Header lines we add in front of the content at delivery (Received, and later
    /// Authentication-Results), each ending in CRLF. Kept apart from the content so the
    /// content stays byte for byte what the client sent.
    pub prepend: String,
    /// Held by the operator: not scheduled until released.
    pub hold: bool,
    /// A "delayed" DSN has been sent for this message.
    pub delay_notified: bool,
    /// This message tells the postmaster about a bounce that could not be delivered: if it
    /// fails too, it is dropped, so notifications can never loop.
    pub postmaster_notice: bool,
    /// Failed the sender's DMARC `p=quarantine` (or a policy set to quarantine): local
    /// recipients get it in their Junk folder.
    pub quarantine: bool,
}

impl Envelope {
    /// The envelope of a new message from `sender` to `recipients`, arrived at `arrival`:
    /// no MAIL parameters, no client, nothing prepended, no flag set (struct update syntax
    /// fills in the rest).
    pub fn new(
        id: QueueId,
        sender: ReversePath,
        recipients: Vec<Recipient>,
        arrival: u64,
    ) -> Envelope {
        Envelope {
            id,
            sender,
            recipients,
            body: BodyType::default(),
            smtputf8: false,
            ret: None,
            envid: None,
            arrival,
            client: ClientInfo::default(),
            prepend: String::new(),
            hold: false,
            delay_notified: false,
            postmaster_notice: false,
            quarantine: false,
        }
    }

    /// True when no recipient is left to deliver: the message can leave the queue.
    pub fn is_complete(&self) -> bool {
        self.recipients.iter().all(|r| r.state.status.is_final())
    }
}

/// The client that handed us a message, for Received headers and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The peer address, absent for locally submitted mail.
    pub ip: Option<IpAddr>,
    /// The EHLO/HELO name.
    pub helo: Option<String>,
}

/// One final recipient of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// The address to deliver to.
    pub address: Mailbox,
    /// Where the address leads.
    pub route: Route,
    /// The RCPT TO address this recipient came from (differs after alias expansion).
    pub rcpt: String,
    /// NOTIFY= of the RCPT; `None` means the default (failure and delay).
    pub notify: Option<Notify>,
    /// ORCPT= of the RCPT.
    pub orcpt: Option<Orcpt>,
    /// How delivery stands.
    pub state: DeliveryState,
}

impl Recipient {
    /// The domain of the address that forwarded this recipient to another server (its
    /// RCPT, when an alias or a redirect led elsewhere), lower-case.
    pub fn forwarder_domain(&self) -> Option<String> {
        let forwarded = self.route == Route::Remote
            && !self.rcpt.eq_ignore_ascii_case(&self.address.to_string());
        let (_, domain) = self.rcpt.rsplit_once('@').filter(|_| forwarded)?;
        Some(domain.to_lowercase())
    }

    /// A recipient not attempted yet, delivered to `address` by `route` as RCPT named it,
    /// without DSN parameters.
    pub fn new(address: Mailbox, route: Route) -> Recipient {
        Recipient {
            rcpt: address.to_string(),
            address,
            route,
            notify: None,
            orcpt: None,
            state: DeliveryState::default(),
        }
    }
}

/// Where a recipient's mail goes, decided at RCPT time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Into the Maildir of this local account.
    Local {
        /// The account name.
        account: String,
    },
    /// To another server, found when delivery is attempted.
    Remote,
}

/// Where one recipient's delivery stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// Pending, or one of the final outcomes.
    pub status: RecipientStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest time of the next attempt, seconds since the epoch; 0 means now.
    pub next_attempt: u64,
    /// Time of the last attempt.
    pub last_attempt: Option<u64>,
    /// What the last attempt came to, for the queue listing and for DSNs.
    pub diagnostic: Option<Diagnostic>,
    /// A DSN of this kind is owed to the sender and not yet written.
    pub dsn_owed: Option<DsnAction>,
}

/// What a delivery attempt came to, in the terms a DSN needs (RFC 3464 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The enhanced status code (RFC 3463), e.g. 5.1.1.
    pub status: Status,
    /// What happened, in words; for a server's reply, the step and the reply.
    pub text: String,
    /// The server that answered, for `Remote-MTA`.
    pub remote_mta: Option<String>,
    /// Its reply on one line, for `Diagnostic-Code: smtp;`.
    pub smtp_reply: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    /// `4.4.1 cannot connect: refused (server 192.0.2.1:25)`, or for a server's reply the
    /// text alone, which holds the reply's code: `RCPT TO refused: 550 5.1.1 no such user
    /// (reply from mx.example.net[192.0.2.1]:25)`. The text names the server itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.smtp_reply.is_none() {
            write!(f, "{} ", self.status)?;
        }
        f.write_str(&self.text)
    }
}

/// The `Action` of a DSN (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// Delivery failed (or expired).
    Failed,
    /// Delivery is delayed; attempts go on.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Passed to a server that does not speak DSN: no further notice will come.
    Relayed,
}

impl DsnAction {
    /// The word the DSN uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
        }
    }
}

/// The status of one recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecipientStatus {
    /// Not delivered yet; attempted at `next_attempt`.
    #[default]
    Pending,
    /// Delivered.
    Delivered,
    /// Failed permanently.
    Failed,
    /// Given up after the maximum queue lifetime.
    Expired,
}

impl RecipientStatus {
    /// True for every status but `Pending`.
    pub fn is_final(self) -> bool {
        self != RecipientStatus::Pending
    }
}

/// The mutable part of an envelope, stored apart from the message so that a state change
/// rewrites a few hundred bytes, never the message.
#[derive(Debug)]
pub(crate) struct StateRecord {
    pub states: Vec<DeliveryState>,
    pub hold: bool,
    pub delay_notified: bool,
}

impl StateRecord {
    /// Applies the record; a record that does not match the recipient list is refused.
    pub fn apply(self, envelope: &mut Envelope) -> bool {
        if self.states.len() != envelope.recipients.len() {
            return false;
        }
        for (recipient, state) in envelope.recipients.iter_mut().zip(self.states) {
            recipient.state = state;
        }
        envelope.hold = self.hold;
        envelope.delay_notified = self.delay_notified;
        true
    }
}
