//! What SORT and THREAD compare, read from one message's cached header fields at a time
//! (see [`headers`]), and only the few keys asked for are kept, so ordering a mailbox of
//! 100 000 messages holds a line of keys per message, never the messages.

use std::io;

use mail_parser::{Address, Message};

use super::headers;
use super::message::parse;
use super::subject::{BaseSubject, base_subject};
use super::view::View;

/// Which keys to keep.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Wanted {
    /// The base subject.
    pub(super) subject: bool,
    /// The sent date.
    pub(super) sent: bool,
    /// The From, To and Cc mailboxes and display names.
    pub(super) addresses: bool,
    /// Message-ID, In-Reply-To and References.
    pub(super) ids: bool,
}

/// One message's keys; those not wanted are left empty.
#[derive(Debug, Clone, Default)]
pub(super) struct Keys {
    /// Its index in the view (sequence number - 1): the last tie-breaker (RFC 5256 §3).
    pub(super) index: usize,
    /// INTERNALDATE, Unix seconds.
    pub(super) arrival: i64,
    /// RFC822.SIZE.
    pub(super) size: u64,
    /// The Date: field in UTC, else the internal date (RFC 5256 §2.2).
    pub(super) sent: i64,
    /// The base subject.
    pub(super) subject: BaseSubject,
    /// The first From address's mailbox (local part), upper-cased.
    pub(super) from: String,
    /// The first To address's mailbox, upper-cased.
    pub(super) to: String,
    /// The first Cc address's mailbox, upper-cased.
    pub(super) cc: String,
    /// The first From's display name, else its address (RFC 5957), upper-cased.
    pub(super) display_from: String,
    /// The first To's display name, else its address, upper-cased.
    pub(super) display_to: String,
    /// The Message-ID, without its angle brackets.
    pub(super) message_id: Option<String>,
    /// The References (or else the first In-Reply-To), oldest first.
    pub(super) references: Vec<String>,
}

/// The keys of the message at `index` in `view`; None if it has been expunged.
pub(super) fn read(view: &View, index: usize, wanted: Wanted) -> io::Result<Option<Keys>> {
    let Some(message) = view.messages.get(index) else {
        return Ok(None);
    };
    let arrival = view.folder.internal_date(&message.file);
    let mut keys = Keys {
        index,
        arrival,
        size: message.size,
        sent: arrival,
        ..Keys::default()
    };
    if !(wanted.subject || wanted.sent || wanted.addresses || wanted.ids) {
        return Ok(Some(keys));
    }
    let Some(header) = headers::cached(view, message)? else {
        return Ok(None);
    };
    let parsed = parse(&header);
    if wanted.subject {
        keys.subject = base_subject(parsed.subject().unwrap_or_default());
    }
    if wanted.sent
        && let Some(date) = parsed.date().filter(|date| date.is_valid())
    {
        keys.sent = date.to_timestamp();
    }
    if wanted.addresses {
        keys.from = mailbox_of(parsed.from());
        keys.to = mailbox_of(parsed.to());
        keys.cc = mailbox_of(parsed.cc());
        keys.display_from = display_of(parsed.from());
        keys.display_to = display_of(parsed.to());
    }
    if wanted.ids {
        read_ids(&parsed, &mut keys);
    }
    Ok(Some(keys))
}

/// The upper-cased mailbox (local part) of the first address (RFC 5256 §3: addr-mailbox).
/// A group comes first as its name, as in the ENVELOPE (RFC 3501 §7.4.2).
fn mailbox_of(address: Option<&Address<'_>>) -> String {
    if let Some(group) = group_name(address) {
        return group.to_uppercase();
    }
    let email = address
        .and_then(Address::first)
        .and_then(|addr| addr.address.as_deref())
        .unwrap_or_default();
    let local = email.rsplit_once('@').map_or(email, |(local, _)| local);
    local.to_uppercase()
}

/// The upper-cased display name of the first address, or its address when it has none
/// (RFC 5957 §2); a group's name when a group comes first.
fn display_of(address: Option<&Address<'_>>) -> String {
    if let Some(group) = group_name(address) {
        return group.to_uppercase();
    }
    let Some(first) = address.and_then(Address::first) else {
        return String::new();
    };
    match first.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_uppercase(),
        _ => first.address.as_deref().unwrap_or_default().to_uppercase(),
    }
}

/// The name of the group a field starts with, if it starts with one.
fn group_name<'a>(address: Option<&'a Address<'_>>) -> Option<&'a str> {
    match address? {
        Address::Group(groups) => groups.first()?.name.as_deref(),
        Address::List(_) => None,
    }
}

/// Message-ID and the parents THREAD REFERENCES links it to (RFC 5256 §3 step 1A): the
/// References field, or else the first message ID of In-Reply-To.
fn read_ids(parsed: &Message<'_>, keys: &mut Keys) {
    keys.message_id = parsed
        .header_raw("Message-ID")
        .and_then(|raw| message_ids(raw).next());
    keys.references = parsed
        .header_raw("References")
        .map(|raw| message_ids(raw).collect())
        .unwrap_or_default();
    if keys.references.is_empty()
        && let Some(parent) = parsed
            .header_raw("In-Reply-To")
            .and_then(|raw| message_ids(raw).next())
    {
        keys.references.push(parent);
    }
}

/// The `<id>`s of a raw field value, without their brackets; anything else (comments,
/// phrases) is skipped, and an id with spaces or without an `@` is not one.
fn message_ids(raw: &str) -> impl Iterator<Item = String> + '_ {
    raw.split('<').skip(1).filter_map(|piece| {
        let (id, _) = piece.split_once('>')?;
        let id = id.trim();
        (id.contains('@') && !id.contains(char::is_whitespace)).then(|| id.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_skip_what_is_not_an_id() {
        let ids: Vec<String> =
            message_ids("<a@b> (comment <x>) \r\n <c@d>  junk <no id> <e@f").collect();
        assert_eq!(ids, ["a@b", "c@d"]);
    }
}
