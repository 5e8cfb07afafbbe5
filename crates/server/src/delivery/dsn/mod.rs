//! Delivery status notifications (RFC 3464): the bounce, delay, success and relay notices
//! we send to a message's sender, as `multipart/report; report-type=delivery-status` with a
//! human-readable part, the machine-readable `message/delivery-status` part, and the
//! original message (RET=FULL) or its headers (RET=HDRS, the default).

pub mod notices;

pub use notices::Notifier;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use posthorn_proto::Ret;
use posthorn_proto::dsn::xtext_encode;
use posthorn_spool::{DsnAction, Envelope, Recipient};

use crate::received::rfc5322_date;
use posthorn_proto::headers::header_section;

/// One notice about some recipients of one message.
#[derive(Debug)]
pub struct Notice<'a> {
    /// What the notice reports.
    pub action: DsnAction,
    /// The message it is about.
    pub envelope: &'a Envelope,
    /// The recipients it names.
    pub recipients: Vec<&'a Recipient>,
    /// Our host name (`Reporting-MTA`).
    pub reporting_mta: &'a str,
    /// When the notice is written.
    pub now: u64,
    /// For delay notices: until when we keep trying.
    pub retry_until: Option<u64>,
}

/// Writes the whole notice message. `original` is the original message (our prepended
/// headers and its content); it is returned whole or only its header section, as the
/// sender asked with RET.
pub fn write(notice: &Notice, original: &[u8]) -> std::io::Result<Vec<u8>> {
    let envelope = notice.envelope;
    let full = envelope.ret == Some(Ret::Full) && notice.action == DsnAction::Failed;
    let returned = if full {
        MimePart::new(ContentType::new("message/rfc822"), original.to_vec())
    } else {
        MimePart::new(
            ContentType::new("text/rfc822-headers"),
            header_section(original).to_vec(),
        )
    }
    .transfer_encoding(if original.is_ascii() { "7bit" } else { "8bit" });
    let status = MimePart::new(
        ContentType::new("message/delivery-status"),
        delivery_status(notice).into_bytes(),
    )
    .transfer_encoding(if envelope.smtputf8 { "8bit" } else { "7bit" });
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(ContentType::new("text/plain"), human_text(notice)),
            status,
            returned,
        ],
    );
    let sender = envelope.sender.to_string();
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{}", notice.reporting_mta),
        ))
        .to(Address::new_address(None::<&str>, sender))
        .subject(subject(notice.action))
        .date(notice.now as i64)
        .message_id(format!(
            "{}.{}@{}",
            envelope.id,
            notice.action.as_str(),
            notice.reporting_mta
        ))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
}

fn subject(action: DsnAction) -> &'static str {
    match action {
        DsnAction::Failed => "Undelivered Mail Returned to Sender",
        DsnAction::Delayed => "Delayed Mail (still being retried)",
        DsnAction::Delivered => "Successful Mail Delivery Report",
        DsnAction::Relayed => "Mail Relayed: No Further Notice Will Follow",
    }
}

/// The part a person reads.
fn human_text(notice: &Notice) -> String {
    let opening = match notice.action {
        DsnAction::Failed => {
            "I'm sorry to have to inform you that your message could not be delivered to one \
             or more recipients. It is returned below (or its headers, if you asked for \
             headers only)."
        }
        DsnAction::Delayed => {
            "Your message could not be delivered yet to the recipients below. This is only a \
             warning: delivery will be attempted again; you need not send the message again."
        }
        DsnAction::Delivered => "Your message was delivered to the recipients below.",
        DsnAction::Relayed => {
            "Your message was passed on to a mail system that does not send delivery \
             notifications; you will receive no further notice for the recipients below."
        }
    };
    let mut text = format!(
        "This is the mail system at host {}.\r\n\r\n{}\r\n\r\n",
        notice.reporting_mta, opening
    );
    for recipient in &notice.recipients {
        text.push_str(&format!("<{}>", recipient.address));
        if let Some(d) = &recipient.state.diagnostic {
            text.push_str(&format!(":\r\n    {}", one_line(&d.to_string())));
        }
        text.push_str("\r\n");
    }
    if let Some(until) = notice.retry_until {
        text.push_str(&format!(
            "\r\nDelivery will be attempted until {}.\r\n",
            rfc5322_date(until)
        ));
    }
    text
}

/// The `message/delivery-status` body (RFC 3464 §2). The sender's ENVID and ORCPT are
/// written xtext-encoded, as RFC 3464 §2.2.1 and §2.3.2 want them, so whatever they hold
/// stays inside its field.
fn delivery_status(notice: &Notice) -> String {
    let envelope = notice.envelope;
    let mut text = format!("Reporting-MTA: dns; {}\r\n", notice.reporting_mta);
    if let Some(envid) = &envelope.envid {
        text.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            xtext_encode(envid)
        ));
    }
    text.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(envelope.arrival)
    ));
    for recipient in &notice.recipients {
        text.push_str("\r\n");
        let original = match &recipient.orcpt {
            Some(orcpt) => Some((orcpt.addr_type.as_str(), orcpt.address.as_str())),
            None if !recipient
                .rcpt
                .eq_ignore_ascii_case(&recipient.address.to_string()) =>
            {
                Some((address_type(&recipient.rcpt), recipient.rcpt.as_str()))
            }
            None => None,
        };
        if let Some((addr_type, address)) = original {
            text.push_str(&format!(
                "Original-Recipient: {addr_type}; {}\r\n",
                xtext_encode(address)
            ));
        }
        let final_recipient = recipient.address.to_string();
        text.push_str(&format!(
            "Final-Recipient: {}; {final_recipient}\r\n",
            address_type(&final_recipient)
        ));
        text.push_str(&format!("Action: {}\r\n", notice.action.as_str()));
        let state = &recipient.state;
        let status = state.diagnostic.as_ref().map(|d| d.status);
        let status = status.map_or_else(
            || match notice.action {
                DsnAction::Failed => "5.0.0".to_string(),
                DsnAction::Delayed => "4.0.0".to_string(),
                DsnAction::Delivered | DsnAction::Relayed => "2.0.0".to_string(),
            },
            |s| s.to_string(),
        );
        text.push_str(&format!("Status: {status}\r\n"));
        if let Some(diagnostic) = &state.diagnostic {
            if let Some(mta) = &diagnostic.remote_mta {
                text.push_str(&format!("Remote-MTA: dns; {mta}\r\n"));
            }
            if let Some(reply) = &diagnostic.smtp_reply {
                text.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(reply)));
            }
        }
        if let Some(at) = state.last_attempt {
            text.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(at)));
        }
        if let Some(until) = notice.retry_until {
            text.push_str(&format!("Will-Retry-Until: {}\r\n", rfc5322_date(until)));
        }
    }
    text
}

/// `rfc822` for ASCII addresses, `utf-8` for internationalized ones (RFC 6533).
fn address_type(address: &str) -> &'static str {
    if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    }
}

fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use mail_parser::{MessageParser, MimeHeaders};
    use posthorn_proto::{Mailbox, Orcpt, ReversePath, Status};
    use posthorn_spool::{DeliveryState, Diagnostic, IdGenerator, RecipientStatus, Route};

    use super::*;

    const ARRIVAL: u64 = 1_800_000_000;
    const NOW: u64 = ARRIVAL + 3_600;
    const ORIGINAL: &[u8] = b"Received: from client.test by mx.test\r\n\
From: s@here.test\r\nSubject: original\r\n\r\nthe body\r\n";

    fn recipient(address: &str, rcpt: &str, status: RecipientStatus, why: Diagnostic) -> Recipient {
        let (local, domain) = address.split_once('@').unwrap();
        Recipient {
            address: Mailbox {
                local: local.into(),
                domain: domain.into(),
            },
            route: Route::Remote,
            rcpt: rcpt.into(),
            notify: None,
            orcpt: None,
            state: DeliveryState {
                status,
                attempts: 1,
                next_attempt: 0,
                last_attempt: Some(NOW - 60),
                diagnostic: Some(why),
                dsn_owed: None,
            },
        }
    }

    /// A message from s@here.test with three recipients: r1, refused by its server, given
    /// with an ORCPT; alice, reached through the alias team@here.test, whose mailbox is
    /// full (no server answered: our own diagnostic); and r3, still pending.
    fn envelope(ret: Option<Ret>) -> Envelope {
        let mut refused = recipient(
            "r1@remote.test",
            "r1@remote.test",
            RecipientStatus::Failed,
            Diagnostic {
                status: Status::new(5, 1, 1),
                text: "RCPT TO refused: 550 5.1.1 no such user".into(),
                remote_mta: Some("mx.remote.test".into()),
                smtp_reply: Some("550 5.1.1 no such user".into()),
            },
        );
        refused.orcpt = Some(Orcpt {
            addr_type: "rfc822".into(),
            address: "r1+tag@remote.test".into(),
        });
        let full = recipient(
            "alice@here.test",
            "team@here.test",
            RecipientStatus::Failed,
            Diagnostic {
                status: Status::new(5, 2, 2),
                text: "mailbox of alice is full".into(),
                remote_mta: None,
                smtp_reply: None,
            },
        );
        let pending = recipient(
            "r3@remote.test",
            "r3@remote.test",
            RecipientStatus::Pending,
            Diagnostic {
                status: Status::new(4, 4, 1),
                text: "connection refused".into(),
                remote_mta: Some("mx.remote.test".into()),
                smtp_reply: None,
            },
        );
        let sender = Mailbox {
            local: "s".into(),
            domain: "here.test".into(),
        };
        Envelope {
            ret,
            envid: Some("env 1".into()),
            ..Envelope::new(
                IdGenerator::default().generate(),
                ReversePath::Mailbox(sender),
                vec![refused, full, pending],
                ARRIVAL,
            )
        }
    }

    /// The notice of `action` about the recipients at `indexes`.
    fn notice(envelope: &Envelope, action: DsnAction, indexes: &[usize]) -> Vec<u8> {
        let notice = Notice {
            action,
            envelope,
            recipients: indexes.iter().map(|&i| &envelope.recipients[i]).collect(),
            reporting_mta: "mx.test",
            now: NOW,
            retry_until: (action == DsnAction::Delayed).then_some(ARRIVAL + 5 * 86_400),
        };
        write(&notice, ORIGINAL).unwrap()
    }

    /// A notice as mail-parser reads it.
    struct Report {
        /// `type/subtype` of the whole message and its `report-type`.
        content_type: (String, Option<String>),
        /// `type/subtype` and decoded contents of each part.
        parts: Vec<(String, Vec<u8>)>,
        /// Subject, From, To and Auto-Submitted.
        headers: [String; 4],
    }

    fn mime_type(content_type: Option<&mail_parser::ContentType>) -> String {
        let content_type = content_type.expect("a Content-Type");
        format!(
            "{}/{}",
            content_type.ctype(),
            content_type.subtype().unwrap_or_default()
        )
    }

    fn parse(bytes: &[u8]) -> Report {
        let message = MessageParser::new().parse(bytes).expect("a message");
        let root = message.root_part();
        let report_type = root
            .content_type()
            .and_then(|c| c.attribute("report-type"))
            .map(str::to_string);
        let parts = root
            .sub_parts()
            .expect("a multipart message")
            .iter()
            .map(|&id| {
                let part = message.part(id).unwrap();
                (mime_type(part.content_type()), part.contents().to_vec())
            })
            .collect();
        let address = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string()
        };
        Report {
            content_type: (mime_type(root.content_type()), report_type),
            parts,
            headers: [
                message.subject().unwrap_or_default().to_string(),
                address(message.from()),
                address(message.to()),
                message
                    .header_raw("Auto-Submitted")
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ],
        }
    }

    /// The fields of the `message/delivery-status` part: the per-message block, then one
    /// block per recipient, each as (name, value) in order.
    fn status_fields(report: &Report) -> Vec<Vec<(String, String)>> {
        let (kind, body) = &report.parts[1];
        assert_eq!(kind, "message/delivery-status");
        String::from_utf8(body.clone())
            .unwrap()
            .split("\r\n\r\n")
            .map(|block| {
                block
                    .split("\r\n")
                    .filter(|line| !line.is_empty())
                    .map(|line| {
                        let (name, value) = line.split_once(": ").expect("a field");
                        (name.to_string(), value.to_string())
                    })
                    .collect()
            })
            .collect()
    }

    fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_bounce_is_a_delivery_status_report_in_three_parts_to_the_sender() {
        let envelope = envelope(None);
        let report = parse(&notice(&envelope, DsnAction::Failed, &[0, 1]));
        assert_eq!(
            report.content_type,
            (
                "multipart/report".to_string(),
                Some("delivery-status".to_string())
            )
        );
        let kinds: Vec<&str> = report.parts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );
        assert_eq!(
            report.headers,
            [
                "Undelivered Mail Returned to Sender",
                "MAILER-DAEMON@mx.test",
                "s@here.test",
                "auto-replied"
            ]
        );
        let human = String::from_utf8_lossy(&report.parts[0].1);
        assert!(human.contains("<r1@remote.test>"), "{human}");
        assert!(human.contains("mailbox of alice is full"), "{human}");
        assert!(!human.contains("r3@remote.test"), "{human}");
    }

    #[test]
    fn the_delivery_status_has_the_message_fields_and_each_named_recipients_fields() {
        let envelope = envelope(None);
        let report = parse(&notice(&envelope, DsnAction::Failed, &[0, 1]));
        let last_attempt = rfc5322_date(NOW - 60);
        assert_eq!(
            status_fields(&report),
            [
                fields(&[
                    ("Reporting-MTA", "dns; mx.test"),
                    ("Original-Envelope-Id", "env+201"),
                    ("Arrival-Date", &rfc5322_date(ARRIVAL)),
                ]),
                fields(&[
                    ("Original-Recipient", "rfc822; r1+2Btag@remote.test"),
                    ("Final-Recipient", "rfc822; r1@remote.test"),
                    ("Action", "failed"),
                    ("Status", "5.1.1"),
                    ("Remote-MTA", "dns; mx.remote.test"),
                    ("Diagnostic-Code", "smtp; 550 5.1.1 no such user"),
                    ("Last-Attempt-Date", &last_attempt),
                ]),
                // Reached through an alias: the address it was sent to is the original.
                fields(&[
                    ("Original-Recipient", "rfc822; team@here.test"),
                    ("Final-Recipient", "rfc822; alice@here.test"),
                    ("Action", "failed"),
                    ("Status", "5.2.2"),
                    ("Last-Attempt-Date", &last_attempt),
                ]),
            ]
        );
    }

    #[test]
    fn ret_hdrs_and_no_ret_return_only_the_header_section() {
        for ret in [None, Some(Ret::Headers)] {
            let report = parse(&notice(&envelope(ret), DsnAction::Failed, &[0]));
            assert_eq!(
                report.parts[2],
                (
                    "text/rfc822-headers".to_string(),
                    header_section(ORIGINAL).to_vec()
                ),
                "{ret:?}"
            );
            assert!(!String::from_utf8_lossy(&report.parts[2].1).contains("the body"));
        }
    }

    #[test]
    fn ret_full_returns_the_whole_message_with_a_failure() {
        let bytes = notice(&envelope(Some(Ret::Full)), DsnAction::Failed, &[0]);
        let report = parse(&bytes);
        let (kind, returned) = &report.parts[2];
        assert_eq!(kind, "message/rfc822");
        assert_eq!(returned.as_slice(), ORIGINAL);
        let message = MessageParser::new().parse(&bytes).unwrap();
        let part = message
            .part(message.root_part().sub_parts().unwrap()[2])
            .unwrap();
        let original = part.message().expect("a nested message");
        assert_eq!(original.subject(), Some("original"));
    }

    #[test]
    fn ret_full_still_returns_only_the_headers_with_a_delay_notice() {
        let report = parse(&notice(
            &envelope(Some(Ret::Full)),
            DsnAction::Delayed,
            &[2],
        ));
        assert_eq!(report.parts[2].0, "text/rfc822-headers");
    }

    #[test]
    fn delay_success_and_relay_notices_carry_their_action_and_subject() {
        let envelope = envelope(None);
        let until = rfc5322_date(ARRIVAL + 5 * 86_400);
        for (action, subject) in [
            (DsnAction::Delayed, "Delayed Mail (still being retried)"),
            (DsnAction::Delivered, "Successful Mail Delivery Report"),
            (
                DsnAction::Relayed,
                "Mail Relayed: No Further Notice Will Follow",
            ),
        ] {
            let report = parse(&notice(&envelope, action, &[2]));
            assert_eq!(report.headers[0], subject);
            let recipient = &status_fields(&report)[1];
            assert!(
                recipient.contains(&("Action".to_string(), action.as_str().to_string())),
                "{action:?}: {recipient:?}"
            );
            let retry = ("Will-Retry-Until".to_string(), until.clone());
            assert_eq!(
                recipient.contains(&retry),
                action == DsnAction::Delayed,
                "only a delay notice says until when: {recipient:?}"
            );
        }
    }

    #[test]
    fn a_recipient_without_a_diagnostic_gets_the_status_of_the_action() {
        let mut envelope = envelope(None);
        envelope.recipients[2].state.diagnostic = None;
        for (action, status) in [
            (DsnAction::Failed, "5.0.0"),
            (DsnAction::Delayed, "4.0.0"),
            (DsnAction::Delivered, "2.0.0"),
        ] {
            let report = parse(&notice(&envelope, action, &[2]));
            let recipient = &status_fields(&report)[1];
            assert!(
                recipient.contains(&("Status".to_string(), status.to_string())),
                "{action:?}: {recipient:?}"
            );
        }
    }
}
