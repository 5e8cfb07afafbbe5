//! The messages a Sieve run makes: a vacation reply (RFC 5230 §5) and the copy a redirect
//! sends on; each written into the spool as a new message, durable before the delivery
//! that made it is reported done.

use std::io::{self, Read, Write as _};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use posthorn_proto::{BodyType, ForwardPath, ReversePath};
use posthorn_sieve::Vacation;
use posthorn_spool::{Envelope, QueueStore, Recipient, Route};

use crate::accounts::directory::Directory;
use crate::delivery::dsn::notices::recipients_of;

/// The reply of `vacation` to a message whose header section is `original`, sent by
/// `recipient` (the account's address that got it).
pub fn vacation(
    vacation: &Vacation,
    recipient: &str,
    original: &[u8],
    hostname: &str,
    now: i64,
) -> io::Result<Vec<u8>> {
    let parsed = mail_parser::MessageParser::new().parse_headers(original);
    let subject = match &vacation.subject {
        Some(subject) => subject.clone(),
        // §4.3: "Auto:" and the original subject.
        None => format!(
            "Auto: {}",
            parsed
                .as_ref()
                .and_then(|m| m.subject())
                .unwrap_or_default()
        ),
    };
    let message_id = parsed
        .as_ref()
        .and_then(|m| m.message_id())
        .map(str::to_string);
    let mut references: Vec<String> = parsed
        .as_ref()
        .and_then(|m| m.references().as_text_list())
        .map(|list| list.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default();
    references.extend(message_id.clone());
    let mut unique = [0u8; 8];
    getrandom::fill(&mut unique).map_err(|e| io::Error::other(e.to_string()))?;
    let from = vacation
        .from
        .clone()
        .unwrap_or_else(|| recipient.to_string());
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(None::<&str>, from))
        .to(Address::new_address(None::<&str>, vacation.to.clone()))
        .subject(subject)
        .date(now)
        .message_id(format!(
            "vacation.{:016x}@{hostname}",
            u64::from_ne_bytes(unique)
        ))
        // RFC 3834 §5, RFC 5230 §5.1: mark it so other responders do not answer it.
        .header("Auto-Submitted", Raw::new("auto-replied (vacation)"));
    if let Some(id) = message_id {
        builder = builder.in_reply_to(id);
    }
    if !references.is_empty() {
        builder = builder.references(references);
    }
    if !vacation.mime {
        return builder.text_body(vacation.reason.clone()).write_to_vec();
    }
    // With :mime the reason is a MIME entity: its own header fields, then its body.
    let head = builder.write_to_vec()?;
    let section = posthorn_proto::headers::header_section(&head);
    let mut message = section[..section.len().saturating_sub(2)].to_vec();
    message.extend_from_slice(b"MIME-Version: 1.0\r\n");
    message.extend_from_slice(
        vacation
            .reason
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .as_bytes(),
    );
    Ok(message)
}

/// The recipients `to` leads to (see `recipients_of`); with `forwarded_by`, those on
/// other servers are marked as forwarded by that address of ours, as an alias's are, so
/// they leave with a rewritten sender (SRS).
pub fn recipients(
    directory: &Directory,
    to: &ForwardPath,
    forwarded_by: Option<&str>,
) -> Vec<Recipient> {
    let mut recipients = recipients_of(directory, to);
    if let Some(forwarder) = forwarded_by {
        for recipient in &mut recipients {
            if recipient.route == Route::Remote {
                recipient.rcpt = forwarder.to_string();
            }
        }
    }
    recipients
}

/// Writes a new message from `sender` to `recipients` into the spool: `prepend` (trace
/// fields) then `content`. `None` when there is nobody to send it to (an unknown local
/// user).
pub fn write_new(
    store: &dyn QueueStore,
    sender: ReversePath,
    recipients: Vec<Recipient>,
    prepend: String,
    content: &mut dyn Read,
    now: u64,
) -> io::Result<Option<Envelope>> {
    if recipients.is_empty() {
        return Ok(None);
    }
    let id = store.new_id();
    let mut writer = store.writer(id)?;
    let mut eight_bit = false;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = content.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        eight_bit |= !chunk[..n].is_ascii();
        writer.write_all(&chunk[..n])?;
    }
    let envelope = Envelope {
        smtputf8: !recipients.iter().all(|r| r.address.is_ascii()),
        body: if eight_bit {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        },
        prepend,
        ..Envelope::new(id, sender, recipients, now)
    };
    writer.commit(Vec::new(), &envelope).wait()?;
    Ok(Some(envelope))
}
