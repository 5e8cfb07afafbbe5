//! The mailbox-level commands: LIST, LSUB, STATUS, CREATE, DELETE, RENAME, (UN)SUBSCRIBE
//! and APPEND, on a user's Maildir++ store.

use std::collections::BTreeMap;

use posthorn_maildir::Quota;
use posthorn_maildir::store::mailbox::{DELIMITER, is_inbox};
use posthorn_maildir::store::{FolderError, Mailbox};
use tracing::warn;

use super::command::{AppendMessage, Flag, ListCommand, StatusItem};
use super::enabled::Enabled;
use super::headers;
use super::names;
use super::response::Done;
use super::training::{self, Lessons};
use crate::blocking;

/// The NO for a refused folder operation, with its RFC 5530 response code.
pub(super) fn refusal(error: &FolderError) -> Done {
    let code = match error {
        FolderError::NotFound => "NONEXISTENT",
        FolderError::Exists => "ALREADYEXISTS",
        FolderError::BadName(_) | FolderError::Cannot(_) => "CANNOT",
        FolderError::HasChildren => "INUSE",
        FolderError::Io(e) => {
            warn!(error = %e, "mailbox operation failed");
            "SERVERBUG"
        }
    };
    Done::no(format!("[{code}] {error}"))
}

fn outcome(result: Result<(), FolderError>, what: &str) -> Done {
    match result {
        Ok(()) => Done::ok(format!("{what} completed")),
        Err(e) => refusal(&e),
    }
}

/// CREATE
pub(super) fn create(mailbox: &Mailbox, name: &str) -> Done {
    outcome(blocking(|| mailbox.create(name)), "CREATE")
}

/// DELETE. A folder with subfolders cannot go (Maildir++ keeps them beside it): an
/// IMAP4rev2 client is told so with HASCHILDREN (RFC 9051 §7.1), others with INUSE.
pub(super) fn delete(mailbox: &Mailbox, name: &str, enabled: Enabled) -> Done {
    match blocking(|| mailbox.delete(name)) {
        Err(e @ FolderError::HasChildren) if enabled.imap4rev2 => {
            Done::no(format!("[HASCHILDREN] {e}"))
        }
        result => outcome(result, "DELETE"),
    }
}

/// RENAME
pub(super) fn rename(mailbox: &Mailbox, from: &str, to: &str) -> Done {
    outcome(blocking(|| mailbox.rename(from, to)), "RENAME")
}

/// SUBSCRIBE / UNSUBSCRIBE
pub(super) fn subscribe(mailbox: &Mailbox, name: &str, on: bool) -> Done {
    outcome(blocking(|| mailbox.subscribe(name, on)), "SUBSCRIBE")
}

/// LIST, with the RFC 5258 options we take.
pub(super) fn list(
    mailbox: &Mailbox,
    command: &ListCommand,
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Done {
    // `LIST "" ""` asks only for the delimiter.
    if command.patterns.iter().all(String::is_empty) {
        out.extend_from_slice(b"* LIST (\\Noselect) \".\" \"\"\r\n");
        return Done::ok("LIST completed");
    }
    let listed = blocking(|| Ok::<_, std::io::Error>((mailbox.list()?, mailbox.subscriptions()?)));
    let (names, subscribed) = match listed {
        Ok(lists) => lists,
        Err(e) => return refusal(&FolderError::Io(e)),
    };
    let patterns: Vec<String> = command
        .patterns
        .iter()
        .map(|p| format!("{}{p}", command.reference))
        .collect();
    let matches = |name: &str| patterns.iter().any(|p| matches_pattern(p, name));
    let exists = |name: &str| names.iter().any(|n| n == name);
    // The names the selection options pick: subscribed ones (existing or not) or the
    // existing ones, perhaps only those with a special use.
    let selected: Vec<&String> = if command.subscribed {
        subscribed.iter().collect()
    } else {
        names.iter().collect()
    };
    let selected: Vec<&String> = selected
        .into_iter()
        .filter(|name| !command.special_use || Mailbox::special_use(name).is_some())
        .collect();
    // Name -> whether it is listed for a descendant's sake (CHILDINFO).
    let mut answer: BTreeMap<&str, bool> = BTreeMap::new();
    for name in &selected {
        if matches(name) {
            answer.entry(name.as_str()).or_insert(false);
        } else if command.subscribed && command.recursive_match {
            // RFC 5258 §3.5: a parent matching the pattern is listed with CHILDINFO
            // when a descendant meets the selection but not the pattern.
            for parent in ancestors(name).filter(|p| matches(p)) {
                answer.insert(parent, true);
            }
        } else if !command.subscribed && !command.special_use {
            // RFC 3501 §6.3.8: a level of hierarchy that `%` stops at is listed even
            // when it is no mailbox itself (Maildir++ keeps `a.b` without `a`).
            for parent in ancestors(name).filter(|p| matches(p) && !exists(p)) {
                answer.entry(parent).or_insert(false);
            }
        }
    }
    let mut order: Vec<(&str, bool)> = answer.into_iter().collect();
    order.sort_by_key(|(name, _)| !is_inbox(name));
    for (name, child_info) in order {
        let exists = exists(name);
        let mut attributes = Vec::new();
        if !exists {
            // RFC 5258 §3: \NonExistent implies \Noselect, which is all a client of
            // plain RFC 3501 LIST knows.
            attributes.push(if command.extended {
                "\\NonExistent"
            } else {
                "\\Noselect"
            });
        }
        let below = format!("{name}{DELIMITER}");
        if names.iter().any(|n| n.starts_with(&below)) {
            attributes.push("\\HasChildren");
        } else if exists {
            attributes.push("\\HasNoChildren");
        }
        if (command.subscribed || command.return_subscribed) && subscribed.iter().any(|s| s == name)
        {
            attributes.push("\\Subscribed");
        }
        attributes.extend(Mailbox::special_use(name));
        out.extend_from_slice(format!("* LIST ({}) \".\" ", attributes.join(" ")).as_bytes());
        names::write(out, name, enabled);
        if child_info {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        if let (Some(items), true) = (&command.return_status, exists) {
            status(mailbox, name, items, enabled, out);
        }
    }
    Done::ok("LIST completed")
}

/// The LIST response of the one folder `name` (stored form), which an IMAP4rev2 SELECT
/// includes (RFC 9051 §6.3.2).
pub(super) fn list_one(mailbox: &Mailbox, name: &str, enabled: Enabled) -> String {
    let command = ListCommand {
        patterns: vec![name.to_owned()],
        ..ListCommand::default()
    };
    let mut out = Vec::new();
    list(mailbox, &command, enabled, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// LSUB: the subscribed names matching the pattern, and, flagged `\Noselect`, the parents
/// that a `%` stops at above subscribed names, themselves not subscribed (RFC 3501 §6.3.9).
pub(super) fn lsub(
    mailbox: &Mailbox,
    reference: &str,
    pattern: &str,
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Done {
    let subscribed = match blocking(|| mailbox.subscriptions()) {
        Ok(list) => list,
        Err(e) => return refusal(&FolderError::Io(e)),
    };
    let pattern = format!("{reference}{pattern}");
    // Name -> listed only as the parent of subscribed names.
    let mut answer: BTreeMap<&str, bool> = BTreeMap::new();
    for name in &subscribed {
        if matches_pattern(&pattern, name) {
            answer.insert(name, false);
        } else if pattern.contains('%') {
            for parent in ancestors(name).filter(|p| matches_pattern(&pattern, p)) {
                answer.entry(parent).or_insert(true);
            }
        }
    }
    for (name, parent_only) in answer {
        let attributes = if parent_only { "\\Noselect" } else { "" };
        out.extend_from_slice(format!("* LSUB ({attributes}) \".\" ").as_bytes());
        names::write(out, name, enabled);
        out.extend_from_slice(b"\r\n");
    }
    Done::ok("LSUB completed")
}

/// The names above `name` in the hierarchy, nearest last: `a`, `a.b` for `a.b.c`.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER).map(|(at, _)| &name[..at])
}

/// STATUS: counts of a folder without selecting it (and without claiming \Recent).
pub(super) fn status(
    mailbox: &Mailbox,
    name: &str,
    items: &[StatusItem],
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Done {
    // RFC 9051 §6.3.11: IMAP4rev2 has no RECENT status item (nor \Recent).
    if enabled.imap4rev2 && items.contains(&StatusItem::Recent) {
        return Done::bad("RECENT is no IMAP4rev2 status item");
    }
    let folder = match mailbox.folder(name) {
        Ok(folder) => folder,
        Err(e) => return refusal(&e),
    };
    let snapshot = match blocking(|| folder.sync(false)) {
        Ok(snapshot) => snapshot,
        Err(e) => return refusal(&FolderError::Io(e)),
    };
    let messages = &snapshot.messages;
    let count = |flag: Flag, wanted: bool| {
        messages
            .iter()
            .filter(|m| m.flags.contains(&flag) == wanted)
            .count() as u64
    };
    let values: Vec<String> = items
        .iter()
        .map(|item| {
            let (key, value) = match item {
                StatusItem::Messages => ("MESSAGES", messages.len() as u64),
                StatusItem::Recent => ("RECENT", snapshot.recent.len() as u64),
                StatusItem::UidNext => ("UIDNEXT", u64::from(snapshot.uid_next)),
                StatusItem::UidValidity => ("UIDVALIDITY", u64::from(snapshot.uid_validity)),
                StatusItem::Unseen => ("UNSEEN", count(Flag::Seen, false)),
                StatusItem::Size => ("SIZE", messages.iter().map(|m| m.size).sum()),
                StatusItem::Deleted => ("DELETED", count(Flag::Deleted, true)),
                StatusItem::HighestModSeq => ("HIGHESTMODSEQ", snapshot.highest_modseq),
            };
            format!("{key} {value}")
        })
        .collect();
    out.extend_from_slice(b"* STATUS ");
    names::write(out, name, enabled);
    out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
    Done::ok("STATUS completed")
}

/// APPEND: one message, or with MULTIAPPEND (RFC 3502) several, stored all or none: a
/// message that cannot be stored takes the ones before it away again.
pub(super) fn append(
    mailbox: &Mailbox,
    quota: Option<u64>,
    name: &str,
    messages: &[AppendMessage],
    lessons: &mut Lessons,
) -> Done {
    let folder = match mailbox.folder(name) {
        Ok(folder) => folder,
        Err(FolderError::NotFound) => return Done::no("[TRYCREATE] no such mailbox"),
        Err(e) => return refusal(&e),
    };
    let total = messages.iter().map(|m| m.message.len() as u64).sum();
    if let Some(done) = over_quota(mailbox, quota, total) {
        return done;
    }
    let mut stored = Vec::with_capacity(messages.len());
    for m in messages {
        match blocking(|| folder.append(&m.message, &m.flags, m.date)) {
            Ok(appended) => {
                // The header is in hand: cached now, not read back by the first FETCH.
                blocking(|| {
                    headers::fill(
                        folder.dir(),
                        appended.uid,
                        appended.base(),
                        &m.message,
                        true,
                    );
                });
                stored.push(appended);
            }
            Err(e) => {
                let undo: Vec<(u32, String)> =
                    stored.iter().map(|a| (a.uid, a.file.clone())).collect();
                if let Err(undo_error) = blocking(|| folder.expunge(&undo)) {
                    warn!(error = %undo_error, "cannot take back a failed APPEND's messages");
                }
                return refusal(&FolderError::Io(e));
            }
        }
    }
    if let Some(class) = training::of_append(name) {
        for appended in &stored {
            lessons.add(&folder, &appended.file, class);
        }
    }
    let validity = stored.first().map_or(0, |a| a.uid_validity);
    let uids: Vec<String> = stored.iter().map(|a| a.uid.to_string()).collect();
    Done::ok(format!(
        "[APPENDUID {validity} {}] APPEND completed",
        uids.join(",")
    ))
}

/// The NO for adding `size` octets to a mailbox at or over its quota, checked against the
/// mailbox's cached figure (the store records APPEND, COPY and EXPUNGE in it).
pub(super) fn over_quota(mailbox: &Mailbox, quota: Option<u64>, size: u64) -> Option<Done> {
    let quota = Quota::new(quota?);
    match blocking(|| quota.usage(mailbox.root())) {
        Ok(used) if used.saturating_add(size) > quota.limit() => Some(Done::no(format!(
            "[OVERQUOTA] mailbox is full ({used} of {} octets used)",
            quota.limit()
        ))),
        Ok(_) => None,
        Err(e) => Some(refusal(&FolderError::Io(e))),
    }
}

/// LIST pattern matching: `*` matches anything, `%` anything but the delimiter; INBOX
/// matches case-insensitively.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    if is_inbox(name) {
        return wildcard(&pattern.to_ascii_uppercase(), "INBOX");
    }
    wildcard(pattern, name)
}

/// Longest pattern we match: with the name at most 255 characters this bounds the work.
const MAX_PATTERN: usize = 1024;

/// Wildcard matching by dynamic programming over one row, so a hostile pattern of many
/// wildcards costs pattern × name steps, never exponential backtracking.
fn wildcard(pattern: &str, name: &str) -> bool {
    if pattern.len() > MAX_PATTERN {
        return false;
    }
    let name: Vec<char> = name.chars().collect();
    // row[j]: the pattern so far matches the first j characters of the name.
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for p in pattern.chars() {
        let mut next = vec![false; name.len() + 1];
        next[0] = row[0] && (p == '*' || p == '%');
        for j in 1..=name.len() {
            let c = name[j - 1];
            next[j] = match p {
                '*' => row[j] || next[j - 1],
                '%' => row[j] || (next[j - 1] && c != DELIMITER),
                p => row[j - 1] && p == c,
            };
        }
        row = next;
    }
    row[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches_pattern("*", "Archive.2024"));
        assert!(matches_pattern("%", "Sent"));
        assert!(!matches_pattern("%", "Archive.2024"));
        assert!(matches_pattern("Archive.%", "Archive.2024"));
        assert!(matches_pattern("A*4", "Archive.2024"));
        assert!(!matches_pattern("Sent", "Sent.x"));
        assert!(matches_pattern("inbox", "INBOX"));
        assert!(matches_pattern(
            "%*%*%*%*%*%*%*%*x",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x"
        ));
        assert!(!matches_pattern(
            "%*%*%*%*%*%*%*%*y",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x"
        ));
    }
}
