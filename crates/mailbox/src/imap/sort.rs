//! SORT (RFC 5256 §3) and its DISPLAYFROM/DISPLAYTO keys (RFC 5957): the matching
//! messages ordered by their header keys, read a message at a time.

use std::cmp::Ordering;

use tracing::warn;

use super::command::{SearchKey, SortCriterion, SortKey};
use super::keys::{self, Keys, Wanted};
use super::response::Done;
use super::selected::{matching, number, unsupported_charset};
use super::view::View;
use crate::blocking;

/// SORT / UID SORT: writes `* SORT n ...`.
pub(super) fn sort(
    view: &View,
    uid: bool,
    order: &[SortCriterion],
    charset: &str,
    criteria: &SearchKey,
    out: &mut Vec<u8>,
) -> Done {
    if let Some(refused) = unsupported_charset(charset) {
        return refused;
    }
    let wanted = wanted(order);
    let mut keyed = match read_keys(view, criteria, wanted) {
        Ok(keyed) => keyed,
        Err(done) => return done,
    };
    keyed.sort_by(|a, b| compare(a, b, order));
    out.extend_from_slice(b"* SORT");
    for keys in keyed {
        out.extend_from_slice(format!(" {}", number(view, keys.index, uid)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Done::ok("SORT completed")
}

/// The keys of the messages matching `criteria`, in mailbox order; messages expunged
/// meanwhile are left out. SORT and THREAD share it.
pub(super) fn read_keys(
    view: &View,
    criteria: &SearchKey,
    wanted: Wanted,
) -> Result<Vec<Keys>, Done> {
    let found = matching(view, criteria);
    // One blocking stretch for all the messages (see `matching`).
    blocking(|| {
        let mut keyed = Vec::new();
        for index in found {
            match keys::read(view, index, wanted) {
                Ok(Some(keys)) => keyed.push(keys),
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "cannot read a message");
                    return Err(Done::no("[SERVERBUG] some messages could not be read"));
                }
            }
        }
        Ok(keyed)
    })
}

/// The header keys `order` needs.
fn wanted(order: &[SortCriterion]) -> Wanted {
    let uses = |wanted: &[SortKey]| order.iter().any(|c| wanted.contains(&c.key));
    Wanted {
        subject: uses(&[SortKey::Subject]),
        sent: uses(&[SortKey::Date]),
        addresses: uses(&[
            SortKey::From,
            SortKey::To,
            SortKey::Cc,
            SortKey::DisplayFrom,
            SortKey::DisplayTo,
        ]),
        ids: false,
    }
}

/// Orders two messages by each criterion in turn, then by sequence number (RFC 5256 §3:
/// messages equal by every key stay in mailbox order, whatever REVERSE says).
fn compare(a: &Keys, b: &Keys, order: &[SortCriterion]) -> Ordering {
    order
        .iter()
        .map(|criterion| {
            let ordering = compare_key(a, b, criterion.key);
            if criterion.reverse {
                ordering.reverse()
            } else {
                ordering
            }
        })
        .find(|ordering| ordering.is_ne())
        .unwrap_or_else(|| a.index.cmp(&b.index))
}

/// Two messages by one key.
fn compare_key(a: &Keys, b: &Keys, key: SortKey) -> Ordering {
    match key {
        SortKey::Arrival => a.arrival.cmp(&b.arrival),
        SortKey::Date => a.sent.cmp(&b.sent),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => a.subject.key.cmp(&b.subject.key),
        SortKey::From => a.from.cmp(&b.from),
        SortKey::To => a.to.cmp(&b.to),
        SortKey::Cc => a.cc.cmp(&b.cc),
        SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
        SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
    }
}
