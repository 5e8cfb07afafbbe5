//! SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) keeps its matches, and `$` names them in
//! later commands of the same selection. They are kept as UIDs, so a message expunged
//! since simply drops out (§2.1), and `$` means the same messages in UID and sequence
//! number commands alike.

use super::command::{SearchKey, SearchReturn, SequenceSet};
use super::search;
use super::view::View;

/// The indexes of the saved messages still in the view.
pub(super) fn indexes(view: &View) -> Vec<usize> {
    view.messages
        .iter()
        .enumerate()
        .filter(|(_, m)| view.saved.binary_search(&m.uid).is_ok())
        .map(|(i, _)| i)
        .collect()
}

/// True when `uid` is in the UID set `set` (`$` included), `*` being `last`.
pub(super) fn uid_in(view: &View, set: &SequenceSet, uid: u32, last: u32) -> bool {
    if set.is_saved() {
        view.saved.binary_search(&uid).is_ok()
    } else {
        search::in_set(set, uid, last)
    }
}

/// `criteria` with every `$` replaced by the saved UIDs, so SEARCH, SORT and THREAD know
/// nothing of saving.
pub(super) fn with_saved(view: &View, criteria: &SearchKey) -> SearchKey {
    match criteria {
        SearchKey::Sequence(set) | SearchKey::Uid(set) if set.is_saved() => {
            match search::uid_set(&view.saved) {
                Some(set) => SearchKey::Uid(set),
                None => SearchKey::Not(Box::new(SearchKey::All)),
            }
        }
        SearchKey::And(keys) => SearchKey::And(keys.iter().map(|k| with_saved(view, k)).collect()),
        SearchKey::Or(a, b) => {
            SearchKey::Or(Box::new(with_saved(view, a)), Box::new(with_saved(view, b)))
        }
        SearchKey::Not(key) => SearchKey::Not(Box::new(with_saved(view, key))),
        other => other.clone(),
    }
}

/// Which of the matches SAVE keeps: all of them, except that with MIN or MAX and neither
/// ALL nor COUNT only the messages those name (§2.1).
pub(super) fn kept(found: &[usize], returning: SearchReturn) -> Vec<usize> {
    if returning.all || returning.count || !(returning.min || returning.max) {
        return found.to_vec();
    }
    let mut kept: Vec<usize> = Vec::new();
    kept.extend(found.first().filter(|_| returning.min));
    kept.extend(
        found
            .last()
            .filter(|_| (returning.max && found.len() > 1) || !returning.min),
    );
    kept
}

/// Keeps the UIDs of the messages at `indexes` for `$` (an empty result after a failed
/// SEARCH, §2.1).
pub(super) fn save(view: &mut View, indexes: &[usize]) {
    let mut uids: Vec<u32> = indexes
        .iter()
        .filter_map(|&i| view.messages.get(i).map(|m| m.uid))
        .collect();
    uids.sort_unstable();
    view.saved = uids;
}
