//! Checks of the top-level header section against RFC 5322 §3.6 (which fields, how often),
//! §2.1.1 (line length), §3.3 (dates), RFC 6532 (8-bit headers) and RFC 2045 §4
//! (MIME-Version).

use mail_parser::{Address, Message};

use crate::header::{Entity, Field, lines};
use crate::symbols::*;
use crate::{Scan, spoof};

/// RFC 5322 §3.6's table: fields that may appear at most once.
const SINGLETONS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
    "Date",
];

pub(crate) fn check(scan: &mut Scan, entity: &Entity, fields: &[Field], parsed: Option<&Message>) {
    line_lengths(scan, entity.header);
    eight_bit(scan, fields);
    presence(scan, fields);
    if let Some(message) = parsed {
        addresses(scan, fields, message);
        date(scan, fields, message);
    }
}

fn count(fields: &[Field], name: &str) -> usize {
    fields.iter().filter(|f| f.is(name)).count()
}

fn find<'a>(fields: &[Field<'a>], name: &str) -> Option<Field<'a>> {
    fields.iter().find(|f| f.is(name)).copied()
}

/// RFC 5322 §2.1.1: lines of at most 998 octets (limit configurable).
fn line_lengths(scan: &mut Scan, header: &[u8]) {
    let max = scan.limits().max_header_line;
    if let Some(line) = lines(header).find(|l| l.len() > max) {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let name = String::from_utf8_lossy(&name[..name.len().min(40)]);
        scan.add(
            HEADER_LINE_TOO_LONG,
            format!("{name}: {} octets", line.len()),
        );
    }
}

/// RFC 6532 §3: 8-bit header octets only with SMTPUTF8, and then only as UTF-8.
fn eight_bit(scan: &mut Scan, fields: &[Field]) {
    for field in fields {
        if field.name.is_ascii() && field.value.is_ascii() {
            continue;
        }
        let name = String::from_utf8_lossy(field.name).into_owned();
        if !scan.context.smtputf8 {
            scan.add(HEADER_8BIT_NO_SMTPUTF8, name);
        } else if std::str::from_utf8(field.name).is_err()
            || std::str::from_utf8(field.value).is_err()
        {
            scan.add(HEADER_INVALID_UTF8, name);
        }
    }
}

fn presence(scan: &mut Scan, fields: &[Field]) {
    let required = [
        ("From", MISSING_FROM),
        ("Date", MISSING_DATE),
        ("Message-ID", MISSING_MESSAGE_ID),
        ("Subject", MISSING_SUBJECT),
    ];
    for (name, symbol) in required {
        if count(fields, name) == 0 {
            scan.add(symbol, name);
        }
    }
    if ["To", "Cc", "Bcc"]
        .iter()
        .all(|name| count(fields, name) == 0)
    {
        scan.add(MISSING_RECIPIENTS, "To, Cc, Bcc");
    }
    for name in SINGLETONS {
        let n = count(fields, name);
        if n > 1 {
            scan.add(DUPLICATE_HEADER, format!("{name} x{n}"));
        }
    }
    if count(fields, "Content-Type") > 0 && count(fields, "MIME-Version") == 0 {
        scan.add(MIME_MISSING_VERSION, "Content-Type without MIME-Version");
    }
}

fn addresses(scan: &mut Scan, fields: &[Field], message: &Message) {
    if let Some(field) = find(fields, "From") {
        match message.from() {
            Some(from)
                if from
                    .iter()
                    .all(|a| a.address().is_some_and(spoof::is_mailbox)) =>
            {
                if from.iter().count() > 1 && count(fields, "Sender") == 0 {
                    scan.add(FROM_MULTIPLE_NO_SENDER, raw(field.value));
                }
            }
            _ => scan.add(FROM_UNPARSABLE, raw(field.value)),
        }
    }
    for (name, parsed) in [("To", message.to()), ("Cc", message.cc())] {
        if let Some(field) = find(fields, name)
            && !parsed.is_some_and(recipients_parse)
        {
            scan.add(TO_UNPARSABLE, format!("{name}: {}", raw(field.value)));
        }
    }
}

/// A list of mailboxes, or groups (an empty group such as `undisclosed-recipients:;` is
/// fine, RFC 5322 §3.4).
fn recipients_parse(address: &Address) -> bool {
    match address {
        Address::List(list) => {
            !list.is_empty()
                && list
                    .iter()
                    .all(|a| a.address().is_some_and(spoof::is_mailbox))
        }
        Address::Group(groups) => groups.iter().all(|g| {
            g.addresses
                .iter()
                .all(|a| a.address().is_some_and(spoof::is_mailbox))
        }),
    }
}

/// RFC 5322 §3.3 syntax, then plausibility against `now`.
fn date(scan: &mut Scan, fields: &[Field], message: &Message) {
    let Some(field) = find(fields, "Date") else {
        return;
    };
    let Some(date) = message.date().filter(|d| d.is_valid()) else {
        scan.add(DATE_UNPARSABLE, raw(field.value));
        return;
    };
    let limits = scan.limits();
    let (future, past) = (limits.max_date_future, limits.max_date_past);
    let skew = date.to_timestamp() - scan.context.now;
    if skew > future {
        scan.add(DATE_IN_FUTURE, date.to_rfc822());
    } else if -skew > past {
        scan.add(DATE_IN_PAST, date.to_rfc822());
    }
}

/// A raw value for a detail, trimmed; `Report` shortens it.
fn raw(value: &[u8]) -> String {
    String::from_utf8_lossy(&value[..value.len().min(400)])
        .trim()
        .to_owned()
}
