//! CONDSTORE and QRESYNC (RFC 7162) as a session sees them: which of the two the client
//! has turned on, and the responses that bring a client's cache up to date: VANISHED
//! (EARLIER) for the UIDs expunged since the mod-sequence it knows, and FETCH for the
//! messages changed since. The mod-sequences themselves are the store's
//! (`posthorn_maildir::store::modseq` and the folder's index).

use super::command::{
    Command, FetchAttribute, Qresync, SearchKey, SearchReturn, SeqNumber, SequenceSet, StatusItem,
};
use super::view::View;

/// True for the CONDSTORE-enabling commands (§3.1) other than SELECT and EXAMINE (their
/// parameters are checked first) and ENABLE: FETCH of MODSEQ or with CHANGEDSINCE, STORE
/// with UNCHANGEDSINCE, SEARCH by MODSEQ, STATUS of HIGHESTMODSEQ.
pub fn command_enables(command: &Command) -> bool {
    match command {
        Command::Fetch {
            items, modifiers, ..
        } => items.contains(&FetchAttribute::ModSeq) || modifiers.changed_since.is_some(),
        Command::Store {
            unchanged_since, ..
        } => unchanged_since.is_some(),
        Command::Search { criteria, .. } => search_uses_modseq(criteria),
        Command::Status { items, .. } => items.contains(&StatusItem::HighestModSeq),
        _ => false,
    }
}

/// True when a SEARCH uses the MODSEQ key, which turns CONDSTORE on and adds the highest
/// MODSEQ of the found messages to the response (§3.1.5).
pub fn search_uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().any(search_uses_modseq),
        SearchKey::Or(a, b) => search_uses_modseq(a) || search_uses_modseq(b),
        SearchKey::Not(k) => search_uses_modseq(k),
        k => matches!(k, SearchKey::ModSeq(_)),
    }
}

/// The MODSEQ a SEARCH by MODSEQ reports (§3.1.5, and RFC 7162 §3.1.5's ESEARCH form): the
/// highest among the messages the response names (only MIN's and MAX's when the client
/// asked for no more); `None` for other searches or when nothing matched.
pub fn search_modseq(
    view: &View,
    criteria: &SearchKey,
    found: &[usize],
    returning: Option<&SearchReturn>,
) -> Option<u64> {
    if !search_uses_modseq(criteria) {
        return None;
    }
    let named: Vec<usize> = match returning {
        Some(r) if !r.all && !r.count => {
            [r.min.then(|| found.first()), r.max.then(|| found.last())]
                .into_iter()
                .flatten()
                .flatten()
                .copied()
                .collect()
        }
        _ => found.to_vec(),
    };
    named
        .iter()
        .filter_map(|i| view.messages.get(*i))
        .map(|m| m.modseq)
        .max()
}

/// SELECT's QRESYNC answer (§3.2.5), after the usual SELECT responses: when the client's
/// UIDVALIDITY is still the folder's, `* VANISHED (EARLIER)` with the UIDs (among those it
/// said it knows) expunged since its mod-sequence, then a FETCH with UID, FLAGS and
/// MODSEQ for each message changed or added since. With another UIDVALIDITY the client
/// must throw its cache away, and the plain SELECT responses tell it all.
pub fn resync(view: &View, qresync: &Qresync, out: &mut Vec<u8>) {
    if qresync.uid_validity != view.uid_validity {
        return;
    }
    write_vanished(view, qresync.modseq, qresync.known_uids.as_ref(), true, out);
    for (index, message) in view.messages.iter().enumerate() {
        if message.modseq > qresync.modseq {
            view.write_flags(index, true, true, out);
        }
    }
}

/// `* VANISHED [(EARLIER)] uids` for the UIDs expunged after `since` and not in the view,
/// limited to `within` when given; nothing when there are none.
pub fn write_vanished(
    view: &View,
    since: u64,
    within: Option<&SequenceSet>,
    earlier: bool,
    out: &mut Vec<u8>,
) {
    let mut ranges = view.expunged.since(since);
    if let Some(set) = within {
        ranges = intersect(&ranges, &set_ranges(set, view.uid_next.saturating_sub(1)));
    }
    let present: Vec<u32> = view.messages.iter().map(|m| m.uid).collect();
    let ranges = without(&ranges, &present);
    if ranges.is_empty() {
        return;
    }
    let tag = if earlier { " (EARLIER)" } else { "" };
    out.extend_from_slice(format!("* VANISHED{tag} {}\r\n", uid_set(&ranges)).as_bytes());
}

/// `1:3,7` for numbers (UIDs or sequence numbers) in any order.
pub fn number_set(numbers: &[u32]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for n in sorted {
        match ranges.last_mut() {
            Some(run) if run.1.checked_add(1) == Some(n) => run.1 = n,
            _ => ranges.push((n, n)),
        }
    }
    uid_set(&ranges)
}

/// `1:3,7` for sorted, disjoint, inclusive ranges.
fn uid_set(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A sequence set as sorted, disjoint ranges, `*` standing for `last`.
fn set_ranges(set: &SequenceSet, last: u32) -> Vec<(u32, u32)> {
    let value = |n: SeqNumber| match n {
        SeqNumber::Value(v) => v,
        SeqNumber::Last => last,
    };
    let mut ranges: Vec<(u32, u32)> = set
        .0
        .iter()
        .map(|r| {
            let (a, b) = (value(r.start), value(r.end));
            (a.min(b), a.max(b))
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(prev) if a <= prev.1.saturating_add(1) => prev.1 = prev.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The common part of two lists of sorted, disjoint ranges.
fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut both = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(&(a1, a2)), Some(&(b1, b2))) = (a.get(i), b.get(j)) {
        let (low, high) = (a1.max(b1), a2.min(b2));
        if low <= high {
            both.push((low, high));
        }
        if a2 < b2 {
            i += 1;
        } else {
            j += 1;
        }
    }
    both
}

/// Sorted, disjoint ranges without the sorted UIDs of `present`.
fn without(ranges: &[(u32, u32)], present: &[u32]) -> Vec<(u32, u32)> {
    let mut left = Vec::new();
    for &(a, b) in ranges {
        // The next UID not yet accounted for; u64 so it may pass u32::MAX.
        let mut start = u64::from(a);
        let from = present.partition_point(|&uid| uid < a);
        for &uid in present[from..].iter().take_while(|&&uid| uid <= b) {
            if let Ok(first) = u32::try_from(start)
                && uid > first
            {
                left.push((first, uid - 1));
            }
            start = u64::from(uid) + 1;
        }
        if let Ok(first) = u32::try_from(start)
            && first <= b
        {
            left.push((first, b));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::SeqRange;

    #[test]
    fn range_arithmetic() {
        let set = SequenceSet(vec![
            SeqRange {
                start: SeqNumber::Value(9),
                end: SeqNumber::Last,
            },
            SeqRange {
                start: SeqNumber::Value(2),
                end: SeqNumber::Value(4),
            },
        ]);
        assert_eq!(set_ranges(&set, 12), [(2, 4), (9, 12)]);
        assert_eq!(
            intersect(&[(1, 3), (5, 10)], &[(2, 4), (9, 12)]),
            [(2, 3), (9, 10)]
        );
        assert_eq!(without(&[(1, 10)], &[0, 1, 4, 5, 10, 11]), [(2, 3), (6, 9)]);
        assert_eq!(uid_set(&[(2, 3), (6, 6)]), "2:3,6");
        assert_eq!(number_set(&[7, 3, 2, 4, 3, 9]), "2:4,7,9");
    }
}
