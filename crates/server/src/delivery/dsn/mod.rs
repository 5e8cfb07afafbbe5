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
