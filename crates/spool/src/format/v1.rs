//! Format version 1: the JSON written by every release before the format was versioned,
//! kept byte for byte (the golden files in `tests/data/v1/` hold it).
//!
//! Frozen: every key and variant name is spelled out in a `rename`, so renaming a Rust
//! field here changes nothing on disk, and a change of the format is a new version beside
//! this one, never an edit of it. Unknown keys are refused (`deny_unknown_fields`): a file
//! that carries one was written by something that is not version 1, and reading it as
//! version 1 would drop what that key meant (releases before this one ignored them).
//! Keys added to the envelope after its first release have defaults, because files
//! written before them lack them.

use std::net::IpAddr;

use posthorn_proto as proto;
use serde::{Deserialize, Serialize};

use crate::envelope::{self as spool, StateRecord};
use crate::id::QueueId;

/// The envelope, between the content and the footer of a message file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Envelope {
    #[serde(rename = "id")]
    id: String,
    #[serde(rename = "sender")]
    sender: ReversePath,
    #[serde(rename = "recipients")]
    recipients: Vec<Recipient>,
    #[serde(rename = "body")]
    body: BodyType,
    #[serde(rename = "smtputf8")]
    smtputf8: bool,
    #[serde(rename = "ret")]
    ret: Option<Ret>,
    #[serde(rename = "envid")]
    envid: Option<String>,
    #[serde(rename = "arrival")]
    arrival: u64,
    #[serde(rename = "client")]
    client: ClientInfo,
    #[serde(rename = "prepend")]
    prepend: String,
    #[serde(rename = "hold", default)]
    hold: bool,
    #[serde(rename = "delay_notified", default)]
    delay_notified: bool,
    #[serde(rename = "postmaster_notice", default)]
    postmaster_notice: bool,
    #[serde(rename = "quarantine", default)]
    quarantine: bool,
}

/// A `<id>.state` file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct State {
    #[serde(rename = "states")]
    states: Vec<DeliveryState>,
    #[serde(rename = "hold")]
    hold: bool,
    #[serde(rename = "delay_notified")]
    delay_notified: bool,
}

#[derive(Serialize, Deserialize)]
enum ReversePath {
    #[serde(rename = "Null")]
    Null,
    #[serde(rename = "Mailbox")]
    Mailbox(Mailbox),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mailbox {
    #[serde(rename = "local")]
    local: String,
    #[serde(rename = "domain")]
    domain: String,
}

#[derive(Serialize, Deserialize)]
enum BodyType {
    #[serde(rename = "SevenBit")]
    SevenBit,
    #[serde(rename = "EightBitMime")]
    EightBitMime,
}

#[derive(Serialize, Deserialize)]
enum Ret {
    #[serde(rename = "Full")]
    Full,
    #[serde(rename = "Headers")]
    Headers,
}

/// The address is serde's form of `IpAddr`, its text (`192.0.2.1`, `2001:db8::1`), which
/// serde keeps stable.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientInfo {
    #[serde(rename = "ip")]
    ip: Option<IpAddr>,
    #[serde(rename = "helo")]
    helo: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    #[serde(rename = "address")]
    address: Mailbox,
    #[serde(rename = "route")]
    route: Route,
    #[serde(rename = "rcpt")]
    rcpt: String,
    #[serde(rename = "notify")]
    notify: Option<Notify>,
    #[serde(rename = "orcpt")]
    orcpt: Option<Orcpt>,
    #[serde(rename = "state")]
    state: DeliveryState,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum Route {
    #[serde(rename = "local")]
    Local {
        #[serde(rename = "account")]
        account: String,
    },
    #[serde(rename = "remote")]
    Remote,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notify {
    #[serde(rename = "success")]
    success: bool,
    #[serde(rename = "failure")]
    failure: bool,
    #[serde(rename = "delay")]
    delay: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Orcpt {
    #[serde(rename = "addr_type")]
    addr_type: String,
    #[serde(rename = "address")]
    address: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryState {
    #[serde(rename = "status")]
    status: RecipientStatus,
    #[serde(rename = "attempts")]
    attempts: u32,
    #[serde(rename = "next_attempt")]
    next_attempt: u64,
    #[serde(rename = "last_attempt")]
    last_attempt: Option<u64>,
    #[serde(rename = "diagnostic")]
    diagnostic: Option<Diagnostic>,
    #[serde(rename = "dsn_owed", default)]
    dsn_owed: Option<DsnAction>,
}

#[derive(Serialize, Deserialize)]
enum RecipientStatus {
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "delivered")]
    Delivered,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Diagnostic {
    #[serde(rename = "status")]
    status: Status,
    #[serde(rename = "text")]
    text: String,
    #[serde(rename = "remote_mta")]
    remote_mta: Option<String>,
    #[serde(rename = "smtp_reply")]
    smtp_reply: Option<String>,
}

/// An enhanced status code, `class.subject.detail`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Status {
    #[serde(rename = "class")]
    class: u8,
    #[serde(rename = "subject")]
    subject: u16,
    #[serde(rename = "detail")]
    detail: u16,
}

#[derive(Serialize, Deserialize)]
enum DsnAction {
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "delayed")]
    Delayed,
    #[serde(rename = "delivered")]
    Delivered,
    #[serde(rename = "relayed")]
    Relayed,
}

// The conversions below destructure every struct and match every enum without a wildcard:
// a field or variant added to (or renamed in) `Envelope` or a protocol type stops the
// build here until someone decides how it is stored, which is a new format version.

impl From<&spool::Envelope> for Envelope {
    fn from(envelope: &spool::Envelope) -> Self {
        let spool::Envelope {
            id,
            sender,
            recipients,
            body,
            smtputf8,
            ret,
            envid,
            arrival,
            client,
            prepend,
            hold,
            delay_notified,
            postmaster_notice,
            quarantine,
        } = envelope;
        Envelope {
            id: id.to_string(),
            sender: match sender {
                proto::ReversePath::Null => ReversePath::Null,
                proto::ReversePath::Mailbox(mailbox) => ReversePath::Mailbox(mailbox.into()),
            },
            recipients: recipients.iter().map(Recipient::from).collect(),
            body: match body {
                proto::BodyType::SevenBit => BodyType::SevenBit,
                proto::BodyType::EightBitMime => BodyType::EightBitMime,
            },
            smtputf8: *smtputf8,
            ret: ret.map(|ret| match ret {
                proto::Ret::Full => Ret::Full,
                proto::Ret::Headers => Ret::Headers,
            }),
            envid: envid.clone(),
            arrival: *arrival,
            client: {
                let spool::ClientInfo { ip, helo } = client;
                ClientInfo {
                    ip: *ip,
                    helo: helo.clone(),
                }
            },
            prepend: prepend.clone(),
            hold: *hold,
            delay_notified: *delay_notified,
            postmaster_notice: *postmaster_notice,
            quarantine: *quarantine,
        }
    }
}

impl TryFrom<Envelope> for spool::Envelope {
    type Error = String;

    /// Fails only on a malformed queue id: every other value the record can hold is one
    /// the envelope can hold.
    fn try_from(record: Envelope) -> Result<Self, String> {
        let Envelope {
            id,
            sender,
            recipients,
            body,
            smtputf8,
            ret,
            envid,
            arrival,
            client: ClientInfo { ip, helo },
            prepend,
            hold,
            delay_notified,
            postmaster_notice,
            quarantine,
        } = record;
        Ok(spool::Envelope {
            id: QueueId::try_from(id)?,
            sender: match sender {
                ReversePath::Null => proto::ReversePath::Null,
                ReversePath::Mailbox(mailbox) => proto::ReversePath::Mailbox(mailbox.into()),
            },
            recipients: recipients.into_iter().map(spool::Recipient::from).collect(),
            body: match body {
                BodyType::SevenBit => proto::BodyType::SevenBit,
                BodyType::EightBitMime => proto::BodyType::EightBitMime,
            },
            smtputf8,
            ret: ret.map(|ret| match ret {
                Ret::Full => proto::Ret::Full,
                Ret::Headers => proto::Ret::Headers,
            }),
            envid,
            arrival,
            client: spool::ClientInfo { ip, helo },
            prepend,
            hold,
            delay_notified,
            postmaster_notice,
            quarantine,
        })
    }
}

impl State {
    /// The state of `envelope`'s recipients, and its flags that change after the commit.
    pub(super) fn of(envelope: &spool::Envelope) -> Self {
        State {
            states: envelope
                .recipients
                .iter()
                .map(|r| DeliveryState::from(&r.state))
                .collect(),
            hold: envelope.hold,
            delay_notified: envelope.delay_notified,
        }
    }
}

impl From<State> for StateRecord {
    fn from(record: State) -> Self {
        let State {
            states,
            hold,
            delay_notified,
        } = record;
        StateRecord {
            states: states.into_iter().map(spool::DeliveryState::from).collect(),
            hold,
            delay_notified,
        }
    }
}

impl From<&proto::Mailbox> for Mailbox {
    fn from(mailbox: &proto::Mailbox) -> Self {
        let proto::Mailbox { local, domain } = mailbox;
        Mailbox {
            local: local.clone(),
            domain: domain.clone(),
        }
    }
}

impl From<Mailbox> for proto::Mailbox {
    fn from(Mailbox { local, domain }: Mailbox) -> Self {
        proto::Mailbox { local, domain }
    }
}

impl From<&spool::Recipient> for Recipient {
    fn from(recipient: &spool::Recipient) -> Self {
        let spool::Recipient {
            address,
            route,
            rcpt,
            notify,
            orcpt,
            state,
        } = recipient;
        Recipient {
            address: address.into(),
            route: match route {
                spool::Route::Local { account } => Route::Local {
                    account: account.clone(),
                },
                spool::Route::Remote => Route::Remote,
            },
            rcpt: rcpt.clone(),
            notify: notify.map(|notify| {
                let proto::Notify {
                    success,
                    failure,
                    delay,
                } = notify;
                Notify {
                    success,
                    failure,
                    delay,
                }
            }),
            orcpt: orcpt.as_ref().map(|orcpt| {
                let proto::Orcpt { addr_type, address } = orcpt;
                Orcpt {
                    addr_type: addr_type.clone(),
                    address: address.clone(),
                }
            }),
            state: state.into(),
        }
    }
}

impl From<Recipient> for spool::Recipient {
    fn from(record: Recipient) -> Self {
        let Recipient {
            address,
            route,
            rcpt,
            notify,
            orcpt,
            state,
        } = record;
        spool::Recipient {
            address: address.into(),
            route: match route {
                Route::Local { account } => spool::Route::Local { account },
                Route::Remote => spool::Route::Remote,
            },
            rcpt,
            notify: notify.map(
                |Notify {
                     success,
                     failure,
                     delay,
                 }| proto::Notify {
                    success,
                    failure,
                    delay,
                },
            ),
            orcpt: orcpt.map(|Orcpt { addr_type, address }| proto::Orcpt { addr_type, address }),
            state: state.into(),
        }
    }
}

impl From<&spool::DeliveryState> for DeliveryState {
    fn from(state: &spool::DeliveryState) -> Self {
        let spool::DeliveryState {
            status,
            attempts,
            next_attempt,
            last_attempt,
            diagnostic,
            dsn_owed,
        } = state;
        DeliveryState {
            status: match status {
                spool::RecipientStatus::Pending => RecipientStatus::Pending,
                spool::RecipientStatus::Delivered => RecipientStatus::Delivered,
                spool::RecipientStatus::Failed => RecipientStatus::Failed,
                spool::RecipientStatus::Expired => RecipientStatus::Expired,
            },
            attempts: *attempts,
            next_attempt: *next_attempt,
            last_attempt: *last_attempt,
            diagnostic: diagnostic.as_ref().map(|diagnostic| {
                let spool::Diagnostic {
                    status,
                    text,
                    remote_mta,
                    smtp_reply,
                } = diagnostic;
                let proto::Status {
                    class,
                    subject,
                    detail,
                } = *status;
                Diagnostic {
                    status: Status {
                        class,
                        subject,
                        detail,
                    },
                    text: text.clone(),
                    remote_mta: remote_mta.clone(),
                    smtp_reply: smtp_reply.clone(),
                }
            }),
            dsn_owed: dsn_owed.map(|action| match action {
                spool::DsnAction::Failed => DsnAction::Failed,
                spool::DsnAction::Delayed => DsnAction::Delayed,
                spool::DsnAction::Delivered => DsnAction::Delivered,
                spool::DsnAction::Relayed => DsnAction::Relayed,
            }),
        }
    }
}

impl From<DeliveryState> for spool::DeliveryState {
    fn from(record: DeliveryState) -> Self {
        let DeliveryState {
            status,
            attempts,
            next_attempt,
            last_attempt,
            diagnostic,
            dsn_owed,
        } = record;
        spool::DeliveryState {
            status: match status {
                RecipientStatus::Pending => spool::RecipientStatus::Pending,
                RecipientStatus::Delivered => spool::RecipientStatus::Delivered,
                RecipientStatus::Failed => spool::RecipientStatus::Failed,
                RecipientStatus::Expired => spool::RecipientStatus::Expired,
            },
            attempts,
            next_attempt,
            last_attempt,
            diagnostic: diagnostic.map(
                |Diagnostic {
                     status:
                         Status {
                             class,
                             subject,
                             detail,
                         },
                     text,
                     remote_mta,
                     smtp_reply,
                 }| spool::Diagnostic {
                    status: proto::Status {
                        class,
                        subject,
                        detail,
                    },
                    text,
                    remote_mta,
                    smtp_reply,
                },
            ),
            dsn_owed: dsn_owed.map(|action| match action {
                DsnAction::Failed => spool::DsnAction::Failed,
                DsnAction::Delayed => spool::DsnAction::Delayed,
                DsnAction::Delivered => spool::DsnAction::Delivered,
                DsnAction::Relayed => spool::DsnAction::Relayed,
            }),
        }
    }
}
