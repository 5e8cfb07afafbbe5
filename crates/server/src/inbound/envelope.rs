//! The envelope a message is queued with, built from what the session accepted: each
//! address delivered to once (aliases may lead two RCPTs to one mailbox), the DSN
//! parameters of its RCPT kept with it, and the headers we add (our `Received`, and a
//! submission's missing `Date` or `Message-ID`) kept beside the content, which is stored
//! exactly as the client sent it.

use posthorn_proto::session::Recipient as Accepted;
use posthorn_proto::{Hello, MailFrom};
use posthorn_spool::{ClientInfo, DeliveryState, Envelope, QueueId, Recipient};

use crate::accounts::directory::{Target, lookup_key};
use crate::inbound::session::Client;
use crate::inbound::submission::Missing;
use crate::received::{Trace, received_header};

/// Everything the envelope is made of.
pub(crate) struct Arrival<'a> {
    /// The queue id given at DATA.
    pub(crate) id: QueueId,
    /// When DATA began, seconds since the epoch.
    pub(crate) time: u64,
    /// The MAIL command.
    pub(crate) mail: &'a MailFrom,
    /// The accepted RCPTs with what each resolved to.
    pub(crate) recipients: &'a [Accepted<Vec<Target>>],
    /// The client's HELO or EHLO.
    pub(crate) hello: &'a Hello,
    /// The client.
    pub(crate) client: &'a Client,
    /// The TLS version and cipher, when the session is encrypted.
    pub(crate) tls: Option<&'a str>,
    /// The account the client logged in as.
    pub(crate) user: Option<&'a str>,
    /// Our host name.
    pub(crate) hostname: &'a str,
    /// What a submission lacks, to be added.
    pub(crate) missing: Missing,
}

/// The envelope of an accepted message.
pub(crate) fn build(arrival: &Arrival<'_>) -> Envelope {
    let mut recipients: Vec<Recipient> = Vec::new();
    for accepted in arrival.recipients {
        for target in &accepted.resolved {
            let key = lookup_key(&target.address);
            if recipients.iter().any(|r| lookup_key(&r.address) == key) {
                continue;
            }
            recipients.push(Recipient {
                address: target.address.clone(),
                route: target.route.clone(),
                rcpt: accepted.rcpt.to.to_string(),
                notify: accepted.rcpt.notify,
                orcpt: accepted.rcpt.orcpt.clone(),
                state: DeliveryState::default(),
            });
        }
    }
    // RFC 5321 §4.4: `for` names the recipient only when there is exactly one, so a
    // Received header never discloses a message's other (blind) recipients.
    let single_recipient = match arrival.recipients {
        [only] => Some(only.rcpt.to.to_string()),
        _ => None,
    };
    let mail = arrival.mail;
    let id = arrival.id.as_str();
    let mut prepend = received_header(&Trace {
        helo: &arrival.hello.name,
        ip: arrival.client.ip(),
        hostname: arrival.hostname,
        esmtp: arrival.hello.esmtp,
        smtputf8: mail.smtputf8,
        tls: arrival.tls,
        authenticated: arrival.user,
        local_user: match arrival.client {
            Client::Local(user) => Some((user.uid, user.name.as_str())),
            Client::Network(_) => None,
        },
        queue_id: id,
        single_recipient,
        time: arrival.time,
    });
    prepend.push_str(&arrival.missing.headers(id, arrival.hostname, arrival.time));
    Envelope {
        id: arrival.id,
        sender: mail.from.clone(),
        recipients,
        body: mail.body.unwrap_or_default(),
        smtputf8: mail.smtputf8,
        ret: mail.ret,
        envid: mail.envid.clone(),
        arrival: arrival.time,
        client: ClientInfo {
            ip: arrival.client.ip(),
            helo: Some(arrival.hello.name.clone()),
        },
        prepend,
        hold: false,
        delay_notified: false,
        postmaster_notice: false,
        quarantine: false,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use posthorn_proto::address::parse_mailbox;
    use posthorn_proto::{ForwardPath, Notify, RcptTo, ReversePath};
    use posthorn_spool::{IdGenerator, Route};

    use super::*;

    fn mail() -> MailFrom {
        MailFrom {
            from: ReversePath::Mailbox(parse_mailbox("sender@client.example").unwrap()),
            size: None,
            body: None,
            smtputf8: false,
            ret: None,
            envid: Some("env-1".into()),
        }
    }

    fn accepted(rcpt: &str, targets: &[&str], notify: Option<Notify>) -> Accepted<Vec<Target>> {
        Accepted {
            rcpt: RcptTo {
                to: ForwardPath::Mailbox(parse_mailbox(rcpt).unwrap()),
                notify,
                orcpt: None,
            },
            resolved: targets
                .iter()
                .map(|t| Target {
                    address: parse_mailbox(t).unwrap(),
                    route: Route::Local {
                        account: t.split('@').next().unwrap().into(),
                    },
                })
                .collect(),
        }
    }

    fn envelope(recipients: &[Accepted<Vec<Target>>], missing: Missing) -> Envelope {
        let client = Client::Network(SocketAddr::from(([192, 0, 2, 1], 40000)));
        build(&Arrival {
            id: IdGenerator::default().generate(),
            time: 1_800_000_000,
            mail: &mail(),
            recipients,
            hello: &Hello {
                name: "client.example".into(),
                esmtp: true,
            },
            client: &client,
            tls: None,
            user: None,
            hostname: "mx.example.com",
            missing,
        })
    }

    #[test]
    fn each_address_is_delivered_to_once_with_its_own_rcpt() {
        let notify = Some(Notify::default());
        let recipients = [
            accepted(
                "team@example.com",
                &["alice@example.com", "bob@example.com"],
                None,
            ),
            accepted("alice@example.com", &["Alice@EXAMPLE.com"], notify),
        ];
        let envelope = envelope(&recipients, Missing::default());
        let delivered: Vec<(String, String)> = envelope
            .recipients
            .iter()
            .map(|r| (r.address.to_string(), r.rcpt.clone()))
            .collect();
        assert_eq!(
            delivered,
            [
                ("alice@example.com".into(), "team@example.com".into()),
                ("bob@example.com".into(), "team@example.com".into()),
            ]
        );
        assert_eq!(envelope.envid.as_deref(), Some("env-1"));
        assert_eq!(envelope.client.helo.as_deref(), Some("client.example"));
    }

    #[test]
    fn received_names_the_recipient_only_when_there_is_one() {
        let one = envelope(
            &[accepted("alice@example.com", &["alice@example.com"], None)],
            Missing::default(),
        );
        assert!(
            one.prepend.starts_with("Received: from client.example"),
            "{}",
            one.prepend
        );
        assert!(
            one.prepend.contains("for <alice@example.com>"),
            "{}",
            one.prepend
        );
        let two = envelope(
            &[
                accepted("alice@example.com", &["alice@example.com"], None),
                accepted("bob@example.com", &["bob@example.com"], None),
            ],
            Missing::default(),
        );
        assert!(!two.prepend.contains(" for "), "{}", two.prepend);
    }

    #[test]
    fn a_submission_gets_what_it_lacks_after_our_received() {
        let lacking = Missing {
            date: true,
            message_id: true,
        };
        let envelope = envelope(
            &[accepted("alice@example.com", &["alice@example.com"], None)],
            lacking,
        );
        let received = envelope.prepend.find("Received:").unwrap();
        let date = envelope.prepend.find("\r\nDate: ").unwrap();
        let id = envelope.prepend.find("\r\nMessage-ID: <").unwrap();
        assert!(received < date && received < id, "{}", envelope.prepend);
    }
}
