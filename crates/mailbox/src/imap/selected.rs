//! The commands on messages of the selected mailbox: FETCH, STORE, SEARCH, EXPUNGE, COPY
//! and MOVE (and their UID forms).

use std::collections::HashMap;

use posthorn_maildir::store::cache::NO_UID;
use posthorn_maildir::store::{FolderError, Mailbox};
use tracing::warn;

use super::command::{FetchAttribute, Flag, SearchKey, SearchReturn, SequenceSet, StoreOperation};
use super::condstore;
use super::esearch;
use super::fetch::sets_seen;
use super::folded;
use super::folders::{over_quota, refusal};
use super::headers;
use super::response::Done;
use super::search::{self, Candidate};
use super::searchres;
use super::training::{self, Lessons};
use super::view::View;
use crate::blocking;

/// (UID, file) pairs of the messages at `indexes`, as the store takes them.
fn pairs(view: &View, indexes: &[usize]) -> Vec<(u32, String)> {
    indexes
        .iter()
        .filter_map(|i| view.messages.get(*i))
        .map(|m| (m.uid, m.file.to_string()))
        .collect()
}

/// EXPUNGE (all \Deleted) or UID EXPUNGE (those of them in `uids`).
pub(super) fn expunge(view: &mut View, uids: Option<&SequenceSet>, out: &mut Vec<u8>) -> Done {
    if view.read_only {
        return Done::no("[READ-ONLY] mailbox is read-only");
    }
    let last = view.messages.last().map_or(1, |m| m.uid);
    let doomed: Vec<(u32, String)> = view
        .messages
        .iter()
        .filter(|m| m.flags.contains(&Flag::Deleted))
        .filter(|m| uids.is_none_or(|set| searchres::uid_in(view, set, m.uid, last)))
        .map(|m| (m.uid, m.file.to_string()))
        .collect();
    match blocking(|| view.folder.expunge(&doomed)) {
        Ok(gone) => {
            view.remove(&gone, out);
            let messages = &view.messages;
            let base_of = |uid: u32| {
                let at = messages.binary_search_by_key(&uid, |m| m.uid).ok()?;
                messages.get(at).map(|m| m.base())
            };
            blocking(|| view.cache.compact(&base_of));
            Done::ok("EXPUNGE completed")
        }
        Err(e) => refusal(&FolderError::Io(e)),
    }
}

/// SEARCH / UID SEARCH, answered with ESEARCH when the client asked for `RETURN`.
pub(super) fn search(
    view: &mut View,
    tag: &str,
    uid: bool,
    charset: Option<&str>,
    criteria: &SearchKey,
    returning: Option<SearchReturn>,
    out: &mut Vec<u8>,
) -> Done {
    if let Some(refused) = charset.and_then(unsupported_charset) {
        if returning.is_some_and(|r| r.save) {
            searchres::save(view, &[]);
        }
        return refused;
    }
    let criteria = &searchres::with_saved(view, criteria);
    let indexes = matching(view, criteria);
    let found: Vec<u32> = indexes.iter().map(|i| number(view, *i, uid)).collect();
    let modseq = condstore::search_modseq(view, criteria, &indexes, returning.as_ref());
    // RFC 9051 §6.4.4: an IMAP4rev2 client hears ESEARCH, ALL unless it asked otherwise.
    let returning = returning.or(view.enabled.imap4rev2.then_some(SearchReturn {
        all: true,
        ..SearchReturn::default()
    }));
    match returning {
        Some(returning) if returning.save => {
            searchres::save(view, &searchres::kept(&indexes, returning));
            // RFC 5182 §2.1: SAVE alone answers nothing but the tagged OK.
            if returning
                != (SearchReturn {
                    save: true,
                    ..SearchReturn::default()
                })
            {
                esearch::write(out, tag, uid, &found, returning, modseq);
            }
        }
        Some(returning) => esearch::write(out, tag, uid, &found, returning, modseq),
        None => {
            out.extend_from_slice(b"* SEARCH");
            for n in found {
                out.extend_from_slice(format!(" {n}").as_bytes());
            }
            if let Some(modseq) = modseq {
                out.extend_from_slice(format!(" (MODSEQ {modseq})").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    Done::ok("SEARCH completed")
}

/// NO [BADCHARSET] unless `charset` is one we search in (RFC 3501 §6.4.4).
pub(super) fn unsupported_charset(charset: &str) -> Option<Done> {
    (!matches!(charset, "US-ASCII" | "UTF-8"))
        .then(|| Done::no("[BADCHARSET (US-ASCII UTF-8)] unsupported charset"))
}

/// The sequence number (index + 1) or the UID of the message at `index`.
pub(super) fn number(view: &View, index: usize, uid: bool) -> u32 {
    match view.messages.get(index) {
        Some(m) if uid => m.uid,
        _ => index as u32 + 1,
    }
}

/// How much of each message a search reads.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// Nothing: the index answers.
    Nothing,
    /// The cached header fields.
    Cached,
    /// The header section.
    Header,
    /// The message.
    Message,
}

/// What `criteria` need read of each message.
fn reading(criteria: &SearchKey) -> Reading {
    match search::fields_needed(criteria) {
        Some(names) if names.is_empty() => Reading::Nothing,
        Some(names) if names.iter().all(|name| headers::is_cached(name)) => Reading::Cached,
        Some(_) => Reading::Header,
        None => Reading::Message,
    }
}

/// The indexes of the messages that match `criteria`, in mailbox order; SEARCH, SORT and
/// THREAD all start from them. Content keys read one message at a time, and only as much
/// of it as they need: header keys the cached fields or the header section.
pub(super) fn matching(view: &View, criteria: &SearchKey) -> Vec<usize> {
    // One blocking stretch for the whole loop: `block_in_place` per message handed the
    // worker's other tasks to another thread 2000 times per SEARCH of 2000 messages.
    blocking(|| matching_here(view, criteria))
}

/// [`matching`], on a thread that may block.
fn matching_here(view: &View, criteria: &SearchKey) -> Vec<usize> {
    let pass = Pass::new(view, criteria);
    if pass.reading == Reading::Cached
        && let Some(plan) = folded::Plan::new(criteria)
    {
        return pass.through_cache(&plan);
    }
    (0..view.messages.len())
        .filter(|index| pass.reads_and_matches(*index))
        .collect()
}

/// One SEARCH over the selected folder.
struct Pass<'v> {
    view: &'v View,
    criteria: &'v SearchKey,
    reading: Reading,
    /// The header fields the criteria look at.
    needed: Vec<&'v str>,
    needs_date: bool,
}

impl<'v> Pass<'v> {
    fn new(view: &'v View, criteria: &'v SearchKey) -> Pass<'v> {
        Pass {
            view,
            criteria,
            reading: reading(criteria),
            needed: search::fields_needed(criteria).unwrap_or_default(),
            needs_date: search::needs_internal_date(criteria),
        }
    }

    /// What SEARCH knows of the message at `index` without reading it.
    fn candidate(&self, index: usize) -> Candidate<'v> {
        let view = self.view;
        let m = &view.messages[index];
        Candidate {
            seq: index as u32 + 1,
            uid: m.uid,
            flags: &m.flags,
            recent: view.recent.contains(&m.uid),
            internal_date: if self.needs_date {
                view.folder.internal_date(&m.file)
            } else {
                0
            },
            size: m.size,
            modseq: m.modseq,
            last_seq: view.messages.len() as u32,
            last_uid: view.messages.last().map_or(0, |m| m.uid),
        }
    }

    /// Whether the message at `index` matches, reading as much of it as needed.
    fn reads_and_matches(&self, index: usize) -> bool {
        let view = self.view;
        let m = &view.messages[index];
        let content = match self.reading {
            Reading::Nothing => None,
            Reading::Cached => headers::cached(view, m)
                .ok()
                .flatten()
                .map(|fields| headers::pick(&fields, &self.needed)),
            Reading::Header => headers::header(view, m).ok().flatten(),
            Reading::Message => view.folder.read(&m.file).ok().flatten(),
        };
        search::matches(self.criteria, &self.candidate(index), content.as_deref())
    }

    /// The matches when the folded search fields answer `plan`: the header cache read once
    /// in file order through its bounded buffer, each record a substring scan, instead of
    /// a read and a parse per message; messages it lacks are read as
    /// [`Pass::reads_and_matches`] reads them (and so cached).
    fn through_cache(&self, plan: &folded::Plan<'_>) -> Vec<usize> {
        let messages = &self.view.messages;
        // One answer per message, the last record of its UID winning.
        let mut answers: Vec<Option<bool>> = vec![None; messages.len()];
        // Records of messages that had no UID yet (local delivery) name their base only.
        let mut by_base: Option<HashMap<&str, usize>> = None;
        self.view.cache.for_each(&mut |uid, base, bytes| {
            let found = if uid == NO_UID {
                by_base
                    .get_or_insert_with(|| {
                        messages
                            .iter()
                            .enumerate()
                            .map(|(i, m)| (m.base(), i))
                            .collect()
                    })
                    .get(base)
                    .copied()
            } else {
                messages.binary_search_by_key(&uid, |m| m.uid).ok()
            };
            let Some(index) = found else {
                return;
            };
            if messages[index].base() == base
                && let Some(record) = folded::Record::split(bytes)
            {
                answers[index] = Some(plan.matches(&self.candidate(index), &record));
            }
        });
        answers
            .iter()
            .enumerate()
            .filter(|(index, answer)| answer.unwrap_or_else(|| self.reads_and_matches(*index)))
            .map(|(index, _)| index)
            .collect()
    }
}

/// STORE / UID STORE; a message whose `$Junk`/`$NotJunk` verdict it changes is a lesson.
/// With UNCHANGEDSINCE (RFC 7162 §3.1.3) messages changed after it are left alone and
/// named in the tagged response's MODIFIED code.
#[allow(clippy::too_many_arguments)]
pub(super) fn store(
    view: &mut View,
    uid: bool,
    set: &SequenceSet,
    operation: StoreOperation,
    silent: bool,
    flags: &[Flag],
    unchanged_since: Option<u64>,
    out: &mut Vec<u8>,
    lessons: &mut Lessons,
) -> Done {
    if view.read_only {
        return Done::no("[READ-ONLY] mailbox is read-only");
    }
    let indexes = match view.resolve(set, uid) {
        Ok(indexes) => indexes,
        Err(e) => return Done::bad(e),
    };
    let flags: Vec<Flag> = flags
        .iter()
        .filter(|f| **f != Flag::Recent)
        .cloned()
        .collect();
    let targets = pairs(view, &indexes);
    let stored = match blocking(|| {
        view.folder
            .store_flags_if(&targets, operation, &flags, unchanged_since)
    }) {
        Ok(stored) => stored,
        Err(e) => return refusal(&FolderError::Io(e)),
    };
    view.learn_keywords(stored.changed.iter().flat_map(|c| c.flags.keywords()), out);
    for change in stored.changed {
        if let Some(class) = training::of_keywords(&change.before, &change.flags) {
            lessons.add(&view.folder, &change.file, class);
        }
        let index = view.set_flags(change.uid, change.file, change.flags, change.modseq);
        // .SILENT keeps FLAGS out, but a CONDSTORE client still learns the new MODSEQ.
        if let Some(index) = index
            && (!silent || view.enabled.condstore)
        {
            view.write_flags(index, uid, !silent, out);
        }
    }
    if stored.modified.is_empty() {
        return Done::ok("STORE completed");
    }
    let modified: Vec<u32> = if uid {
        stored.modified
    } else {
        view.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| stored.modified.contains(&m.uid))
            .map(|(i, _)| i as u32 + 1)
            .collect()
    };
    Done::ok(format!(
        "[MODIFIED {}] conditional STORE failed",
        condstore::number_set(&modified)
    ))
}

/// COPY or MOVE (and UID forms) into `target`, answering with COPYUID (RFC 4315); each
/// message filed into or out of Junk is a lesson. The target may be the selected mailbox
/// itself (RFC 6851 §3.3): the copies, or the moved messages under their new UIDs, then
/// show up as EXISTS after the moved ones' EXPUNGE.
#[allow(clippy::too_many_arguments)]
pub(super) fn copy(
    view: &mut View,
    mailbox: &Mailbox,
    quota: Option<u64>,
    uid: bool,
    set: &SequenceSet,
    target: &str,
    remove: bool,
    out: &mut Vec<u8>,
    lessons: &mut Lessons,
) -> Done {
    if remove && view.read_only {
        return Done::no("[READ-ONLY] mailbox is read-only");
    }
    let indexes = match view.resolve(set, uid) {
        Ok(indexes) => indexes,
        Err(e) => return Done::bad(e),
    };
    let destination = match mailbox.folder(target) {
        Ok(folder) => folder,
        Err(FolderError::NotFound) => return Done::no("[TRYCREATE] no such mailbox"),
        Err(e) => return refusal(&e),
    };
    let messages = pairs(view, &indexes);
    if !remove {
        let size = indexes
            .iter()
            .filter_map(|i| view.messages.get(*i))
            .map(|m| m.size)
            .sum();
        if let Some(done) = over_quota(mailbox, quota, size) {
            return done;
        }
    }
    let result = blocking(|| {
        if remove {
            view.folder.move_to(&messages, &destination)
        } else {
            view.folder.copy_to(&messages, &destination)
        }
    });
    let transfer = match result {
        Ok(transfer) => transfer,
        Err(e) => return refusal(&FolderError::Io(e)),
    };
    if let Some(class) = training::of_filing(&view.name, target) {
        for placed in &transfer.placed {
            lessons.add(&destination, &placed.file, class);
        }
    }
    let code = if transfer.placed.is_empty() {
        String::new()
    } else {
        let (from, to): (Vec<String>, Vec<String>) = transfer
            .placed
            .iter()
            .map(|p| (p.source_uid.to_string(), p.uid.to_string()))
            .unzip();
        format!(
            "[COPYUID {} {} {}] ",
            transfer.uid_validity,
            from.join(","),
            to.join(",")
        )
    };
    if remove {
        out.extend_from_slice(format!("* OK {code}moved\r\n").as_bytes());
        let moved: Vec<u32> = transfer.placed.iter().map(|p| p.source_uid).collect();
        view.remove(&moved, out);
        Done::ok("MOVE completed")
    } else {
        Done::ok(format!("{code}COPY completed"))
    }
}

/// The first half of FETCH / UID FETCH: which messages (those changed after
/// `changed_since` only, when given: RFC 7162 §3.1.4.1), and \Seen set on them where the
/// items call for it. The session then writes their responses one by one as `fetch`
/// builds them, so `FETCH 1:* BODY[]` of a large mailbox is never held in memory whole.
pub(super) fn fetch_prepare(
    view: &mut View,
    uid: bool,
    set: &SequenceSet,
    items: &[FetchAttribute],
    changed_since: Option<u64>,
) -> Result<Vec<usize>, Done> {
    let mut indexes = view.resolve(set, uid).map_err(Done::bad)?;
    if let Some(since) = changed_since {
        indexes.retain(|i| view.messages.get(*i).is_some_and(|m| m.modseq > since));
    }
    if !view.read_only && items.iter().any(sets_seen) {
        let unseen: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|i| {
                view.messages
                    .get(*i)
                    .is_some_and(|m| !m.flags.contains(&Flag::Seen))
            })
            .collect();
        let targets = pairs(view, &unseen);
        match blocking(|| {
            view.folder
                .store_flags(&targets, StoreOperation::Add, &[Flag::Seen])
        }) {
            Ok(changed) => {
                for change in changed {
                    view.set_flags(change.uid, change.file, change.flags, change.modseq);
                }
            }
            Err(e) => warn!(error = %e, "cannot set \\Seen"),
        }
    }
    Ok(indexes)
}
