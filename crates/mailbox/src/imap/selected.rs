//! The commands on messages of the selected mailbox: FETCH, STORE, SEARCH, EXPUNGE, COPY
//! and MOVE (and their UID forms).

use tracing::warn;

use super::blocking;
use super::command::{
    FetchAttribute, Flag, SearchKey, Section, SectionText, SequenceSet, StoreOperation,
};
use super::folders::{over_quota, refusal};
use super::message::Parsed;
use super::response;
use super::search::{self, Candidate};
use super::session::Done;
use super::view::View;
use crate::store::{FolderError, Mailbox, Message};

/// (UID, file) pairs of the messages at `indexes`, as the store takes them.
fn pairs(view: &View, indexes: &[usize]) -> Vec<(u32, String)> {
    indexes
        .iter()
        .filter_map(|i| view.messages.get(*i))
        .map(|m| (m.uid, m.file.clone()))
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
        .filter(|m| uids.is_none_or(|set| search::in_set(set, m.uid, last)))
        .map(|m| (m.uid, m.file.clone()))
        .collect();
    match blocking(|| view.folder.expunge(&doomed)) {
        Ok(gone) => {
            view.remove(&gone, out);
            Done::ok("EXPUNGE completed")
        }
        Err(e) => refusal(&FolderError::Io(e)),
    }
}

/// SEARCH / UID SEARCH.
pub(super) fn search(
    view: &View,
    uid: bool,
    charset: Option<&str>,
    criteria: &SearchKey,
    out: &mut Vec<u8>,
) -> Done {
    if charset.is_some_and(|c| !matches!(c, "US-ASCII" | "UTF-8")) {
        return Done::no("[BADCHARSET (US-ASCII UTF-8)] unsupported charset");
    }
    let needs_content = search::needs_content(criteria);
    let needs_date = search::needs_internal_date(criteria);
    let last_seq = view.messages.len() as u32;
    let last_uid = view.messages.last().map_or(0, |m| m.uid);
    let mut found = Vec::new();
    for (index, m) in view.messages.iter().enumerate() {
        let candidate = Candidate {
            seq: index as u32 + 1,
            uid: m.uid,
            flags: &m.flags,
            recent: view.recent.contains(&m.uid),
            internal_date: if needs_date {
                view.folder.internal_date(&m.file)
            } else {
                0
            },
            size: m.size,
            last_seq,
            last_uid,
        };
        let content = if needs_content {
            blocking(|| view.folder.read(&m.file)).ok().flatten()
        } else {
            None
        };
        if search::matches(criteria, &candidate, content.as_deref()) {
            found.push(if uid { m.uid } else { candidate.seq });
        }
    }
    out.extend_from_slice(b"* SEARCH");
    for n in found {
        out.extend_from_slice(format!(" {n}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Done::ok("SEARCH completed")
}

/// STORE / UID STORE.
pub(super) fn store(
    view: &mut View,
    uid: bool,
    set: &SequenceSet,
    operation: StoreOperation,
    silent: bool,
    flags: &[Flag],
    out: &mut Vec<u8>,
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
    let changed = match blocking(|| view.folder.store_flags(&targets, operation, &flags)) {
        Ok(changed) => changed,
        Err(e) => return refusal(&FolderError::Io(e)),
    };
    for (message_uid, file, new_flags) in changed {
        if let Some(index) = view.set_flags(message_uid, file, new_flags)
            && !silent
        {
            flags_response(view, index, uid, out);
        }
    }
    Done::ok("STORE completed")
}

/// `* n FETCH (FLAGS (...))`, with the UID for UID commands.
fn flags_response(view: &View, index: usize, uid: bool, out: &mut Vec<u8>) {
    let Some(m) = view.messages.get(index) else {
        return;
    };
    let recent = view.recent.contains(&m.uid);
    let uid_item = if uid {
        format!("UID {} ", m.uid)
    } else {
        String::new()
    };
    out.extend_from_slice(
        format!(
            "* {} FETCH ({uid_item}FLAGS ({}))\r\n",
            index + 1,
            m.flags.to_imap(recent)
        )
        .as_bytes(),
    );
}

/// COPY or MOVE (and UID forms) into `target`, answering with COPYUID (RFC 4315).
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
    if destination.dir() == view.folder.dir() {
        return Done::no("[CANNOT] source and target are the same mailbox");
    }
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
    let code = if transfer.uids.is_empty() {
        String::new()
    } else {
        let (from, to): (Vec<String>, Vec<String>) = transfer
            .uids
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
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
        let moved: Vec<u32> = transfer.uids.iter().map(|(uid, _)| *uid).collect();
        view.remove(&moved, out);
        Done::ok("MOVE completed")
    } else {
        Done::ok(format!("{code}COPY completed"))
    }
}

/// The first half of FETCH / UID FETCH: which messages, and \Seen set on them where the
/// items call for it. The session then renders them a batch at a time with
/// `fetch_messages`, writing as it goes, so `FETCH 1:* BODY[]` of a large mailbox is never
/// held in memory whole.
pub(super) fn fetch_prepare(
    view: &mut View,
    uid: bool,
    set: &SequenceSet,
    items: &[FetchAttribute],
) -> Result<Vec<usize>, Done> {
    let indexes = view.resolve(set, uid).map_err(Done::bad)?;
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
                for (message_uid, file, flags) in changed {
                    view.set_flags(message_uid, file, flags);
                }
            }
            Err(e) => warn!(error = %e, "cannot set \\Seen"),
        }
    }
    Ok(indexes)
}

/// The FETCH responses of the messages at `indexes`; false if some had vanished (expunged
/// by another session since this one last looked).
pub(super) fn fetch_messages(
    view: &View,
    uid: bool,
    indexes: &[usize],
    items: &[FetchAttribute],
    out: &mut Vec<u8>,
) -> bool {
    let marks_seen = !view.read_only && items.iter().any(sets_seen);
    let needs_content = items.iter().any(needs_content);
    let mut complete = true;
    for &index in indexes {
        let Some(m) = view.messages.get(index) else {
            continue;
        };
        let content = if needs_content {
            match blocking(|| view.folder.read(&m.file)) {
                Ok(Some(content)) => Some(content),
                Ok(None) => {
                    complete = false;
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "cannot read a message");
                    complete = false;
                    continue;
                }
            }
        } else {
            None
        };
        out.extend_from_slice(format!("* {} FETCH (", index + 1).as_bytes());
        let mut first = true;
        let mut item = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b' ');
            }
        };
        if uid && !items.contains(&FetchAttribute::Uid) {
            item(out);
            out.extend_from_slice(format!("UID {}", m.uid).as_bytes());
        }
        let parsed = Parsed::new(content.as_deref().unwrap_or_default());
        for attribute in items {
            item(out);
            render(view, m, attribute, &parsed, out);
        }
        if marks_seen && !items.contains(&FetchAttribute::Flags) {
            item(out);
            render(view, m, &FetchAttribute::Flags, &parsed, out);
        }
        out.extend_from_slice(b")\r\n");
    }
    complete
}

/// True for the items that mark a message \Seen when fetched.
fn sets_seen(attribute: &FetchAttribute) -> bool {
    matches!(
        attribute,
        FetchAttribute::Rfc822
            | FetchAttribute::Rfc822Text
            | FetchAttribute::BodySection { peek: false, .. }
    )
}

/// True for the items that need the message's text.
fn needs_content(attribute: &FetchAttribute) -> bool {
    !matches!(
        attribute,
        FetchAttribute::Flags
            | FetchAttribute::Uid
            | FetchAttribute::InternalDate
            | FetchAttribute::Rfc822Size
    )
}

/// One FETCH data item.
fn render(
    view: &View,
    m: &Message,
    attribute: &FetchAttribute,
    content: &Parsed<'_>,
    out: &mut Vec<u8>,
) {
    match attribute {
        FetchAttribute::Flags => {
            let recent = view.recent.contains(&m.uid);
            out.extend_from_slice(format!("FLAGS ({})", m.flags.to_imap(recent)).as_bytes());
        }
        FetchAttribute::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
        FetchAttribute::InternalDate => {
            let date = internal_date(view.folder.internal_date(&m.file));
            out.extend_from_slice(format!("INTERNALDATE \"{date}\"").as_bytes());
        }
        FetchAttribute::Rfc822Size => {
            out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes());
        }
        FetchAttribute::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            out.extend_from_slice(&content.envelope());
        }
        FetchAttribute::Body => {
            out.extend_from_slice(b"BODY ");
            out.extend_from_slice(&content.body_structure(false));
        }
        FetchAttribute::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            out.extend_from_slice(&content.body_structure(true));
        }
        FetchAttribute::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            response::string(out, content.raw());
        }
        FetchAttribute::Rfc822Header => {
            let header = content.section(&section(SectionText::Header));
            out.extend_from_slice(b"RFC822.HEADER ");
            response::string(out, &header);
        }
        FetchAttribute::Rfc822Text => {
            let text = content.section(&section(SectionText::Text));
            out.extend_from_slice(b"RFC822.TEXT ");
            response::string(out, &text);
        }
        FetchAttribute::BodySection {
            section, partial, ..
        } => {
            let data = content.section(section);
            out.extend_from_slice(format!("BODY[{}]", section_name(section)).as_bytes());
            let data = match partial {
                Some((origin, length)) => {
                    out.extend_from_slice(format!("<{origin}> ").as_bytes());
                    let start = (*origin as usize).min(data.len());
                    let end = start.saturating_add(*length as usize).min(data.len());
                    &data[start..end]
                }
                None => {
                    out.push(b' ');
                    &data[..]
                }
            };
            response::string(out, data);
        }
    }
}

fn section(text: SectionText) -> Section {
    Section {
        part: Vec::new(),
        text: Some(text),
    }
}

/// The section as the response names it: `1.2.HEADER.FIELDS (FROM TO)`.
fn section_name(section: &Section) -> String {
    let mut parts: Vec<String> = section.part.iter().map(u32::to_string).collect();
    match &section.text {
        None => {}
        Some(SectionText::Header) => parts.push("HEADER".into()),
        Some(SectionText::Text) => parts.push("TEXT".into()),
        Some(SectionText::Mime) => parts.push("MIME".into()),
        Some(SectionText::HeaderFields { not, fields }) => parts.push(format!(
            "HEADER.FIELDS{} ({})",
            if *not { ".NOT" } else { "" },
            fields.join(" ")
        )),
    }
    parts.join(".")
}

/// INTERNALDATE as IMAP writes it (`17-Jul-1996 02:44:25 +0000`), in UTC.
fn internal_date(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = mail_parser::DateTime::from_timestamp(unix);
    let month = MONTHS
        .get(usize::from(t.month).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{:02}-{month}-{:04} {:02}:{:02}:{:02} +0000",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_section_names() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_000_000_000), "09-Sep-2001 01:46:40 +0000");
        let fields = Section {
            part: vec![1, 2],
            text: Some(SectionText::HeaderFields {
                not: true,
                fields: vec!["FROM".into(), "TO".into()],
            }),
        };
        assert_eq!(section_name(&fields), "1.2.HEADER.FIELDS.NOT (FROM TO)");
        assert_eq!(section_name(&Section::default()), "");
    }
}
