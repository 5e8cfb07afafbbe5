//! Mailbox names as a session speaks them. The store keeps modified UTF-7 (RFC 3501
//! §5.1.3); a client that enabled UTF8=ACCEPT or IMAP4rev2 sends and hears UTF-8 instead
//! (RFC 6855 §3, RFC 9051 §5.1), so its names are encoded on the way in and decoded on the
//! way out, and the store never knows. Their names are also normalised to NFC on the way
//! in: RFC 6855 §3 and RFC 9051 §5.1 hold mailbox names to Net-Unicode, which is NFC
//! (RFC 5198 §2), so "Café" typed with a combining accent (e, U+0301) names the same
//! folder as with the precomposed é (U+00E9).

use std::borrow::Cow;

use posthorn_maildir::store::mutf7;
use unicode_normalization::UnicodeNormalization as _;

use super::command::Command;
use super::enabled::Enabled;
use super::response::{self, Done};

/// The stored form of a name the client sent: a UTF-8 client's in NFC.
fn stored(name: String, enabled: Enabled) -> String {
    if enabled.utf8_names() {
        mutf7::encode(&name.nfc().collect::<String>())
    } else {
        name
    }
}

/// A stored name as the client hears it.
fn shown(name: &str, enabled: Enabled) -> Cow<'_, str> {
    match enabled.utf8_names().then(|| mutf7::decode(name)).flatten() {
        Some(utf8) => Cow::Owned(utf8),
        None => Cow::Borrowed(name),
    }
}

/// Writes the stored name `name` as the client hears it: an astring, quoted even with
/// UTF-8 in it for a UTF-8 client.
pub(super) fn write(out: &mut Vec<u8>, name: &str, enabled: Enabled) {
    response::utf8_astring(out, &shown(name, enabled));
}

/// NO for a new folder name (CREATE, RENAME's target) a UTF-8 client may not give:
/// names are Net-Unicode without control characters, U+2028 and U+2029 (RFC 6855 §3,
/// RFC 9051 §5.1). Other clients' names are checked as modified UTF-7 by the store.
pub(super) fn refusal(command: &Command, enabled: Enabled) -> Option<Done> {
    let new_name = match command {
        Command::Create(name) | Command::Rename { to: name, .. } => name,
        _ => return None,
    };
    // Control characters (C0, DEL, C1) and the line and paragraph separators.
    let banned = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    (enabled.utf8_names() && new_name.chars().any(banned))
        .then(|| Done::no("[CANNOT] mailbox name has a control character"))
}

/// `command` with every mailbox name (and LIST's reference and patterns) in stored form.
pub(super) fn to_store(command: Command, enabled: Enabled) -> Command {
    if !enabled.utf8_names() {
        return command;
    }
    let s = |name| stored(name, enabled);
    match command {
        Command::Select {
            mailbox,
            read_only,
            params,
        } => Command::Select {
            mailbox: s(mailbox),
            read_only,
            params,
        },
        Command::Create(name) => Command::Create(s(name)),
        Command::Delete(name) => Command::Delete(s(name)),
        Command::Subscribe(name) => Command::Subscribe(s(name)),
        Command::Unsubscribe(name) => Command::Unsubscribe(s(name)),
        Command::GetQuotaRoot(name) => Command::GetQuotaRoot(s(name)),
        Command::Rename { from, to } => Command::Rename {
            from: s(from),
            to: s(to),
        },
        Command::List(mut list) => {
            list.reference = s(list.reference);
            list.patterns = list.patterns.into_iter().map(s).collect();
            Command::List(list)
        }
        Command::Lsub { reference, pattern } => Command::Lsub {
            reference: s(reference),
            pattern: s(pattern),
        },
        Command::Status { mailbox, items } => Command::Status {
            mailbox: s(mailbox),
            items,
        },
        Command::Append { mailbox, messages } => Command::Append {
            mailbox: s(mailbox),
            messages,
        },
        Command::Copy { uid, set, mailbox } => Command::Copy {
            uid,
            set,
            mailbox: s(mailbox),
        },
        Command::Move { uid, set, mailbox } => Command::Move {
            uid,
            set,
            mailbox: s(mailbox),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::ListCommand;

    #[test]
    fn names_follow_the_session() {
        let utf8 = Enabled {
            utf8_accept: true,
            ..Enabled::default()
        };
        let rev1 = Enabled::default();
        let create = |name: &str| Command::Create(name.to_owned());
        assert_eq!(to_store(create("Entwürfe"), utf8), create("Entw&APw-rfe"));
        assert_eq!(to_store(create("A&B"), utf8), create("A&-B"));
        assert_eq!(
            to_store(create("Entw&APw-rfe"), rev1),
            create("Entw&APw-rfe")
        );
        assert_eq!(shown("Entw&APw-rfe", utf8), "Entwürfe");
        assert_eq!(shown("Entw&APw-rfe", rev1), "Entw&APw-rfe");
        assert_eq!(shown("bad&", utf8), "bad&");
        assert!(refusal(&create("a\u{7}b"), utf8).is_some());
        assert!(refusal(&create("a\u{85}b"), utf8).is_some());
        assert!(refusal(&create("a\u{2028}b"), utf8).is_some());
        assert!(refusal(&create("Grüße"), utf8).is_none());
    }

    #[test]
    fn utf8_names_are_stored_in_nfc() {
        let utf8 = Enabled {
            utf8_accept: true,
            ..Enabled::default()
        };
        let (nfd, nfc) = ("Cafe\u{301}", "Caf\u{e9}");
        assert_eq!(stored(nfd.into(), utf8), stored(nfc.into(), utf8));
        assert_eq!(stored(nfd.into(), utf8), "Caf&AOk-");
        let list = Command::List(ListCommand {
            reference: String::new(),
            patterns: vec![format!("{nfd}*")],
            ..Default::default()
        });
        let Command::List(list) = to_store(list, utf8) else {
            panic!("still a LIST");
        };
        assert_eq!(list.patterns, ["Caf&AOk-*"]);
        // A client speaking modified UTF-7 has its names taken as sent.
        assert_eq!(stored("Cafe&AwE-".into(), Enabled::default()), "Cafe&AwE-");
    }
}
