//! CONDSTORE and QRESYNC (RFC 7162) against the real server with a raw client: MODSEQ
//! through FETCH, STORE, SEARCH and STATUS, conditional STORE, and the resync a phone or
//! Thunderbird does when it comes back to a mailbox another session changed (flags
//! changed, messages expunged, new mail delivered by SMTP).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::net::SocketAddr;

use common::TestServer;
use common::mailbox::{Imap, deliver, imap_server, listeners};

const PW: &str = "alice-imap-password";

fn imap(server: &TestServer) -> SocketAddr {
    listeners(server, "imap")[0]
}

/// The number after `key ` in `text` (`HIGHESTMODSEQ 17` -> 17).
fn number_after(text: &str, key: &str) -> u64 {
    let at = text
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("no {key} in {text:?}"));
    text[at + key.len() + 1..]
        .trim_start_matches('(')
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key} in {text:?}"))
}

/// The untagged FETCH lines of a response, in order.
fn fetches(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(" FETCH (")).collect()
}

/// The MODSEQ of the FETCH line in `text` for `uid`.
fn modseq_of(text: &str, uid: u32) -> u64 {
    let line = fetches(text)
        .into_iter()
        .find(|l| l.contains(&format!("UID {uid} ")))
        .unwrap_or_else(|| panic!("no FETCH for UID {uid} in {text:?}"));
    number_after(line, "MODSEQ")
}

#[test]
fn condstore_fetch_store_search_and_status() {
    let server = imap_server(PW, "");
    deliver(&server, &["c1", "c2", "c3"]);
    let mut a = Imap::logged_in(imap(&server), PW);
    let caps = a.ok("CAPABILITY");
    assert!(
        caps.contains(" CONDSTORE") && caps.contains(" QRESYNC"),
        "{caps}"
    );
    let status = a.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)");
    let arrived = number_after(&status, "HIGHESTMODSEQ");
    assert!(arrived >= 1, "{status}");
    let select = a.ok("SELECT INBOX (CONDSTORE)");
    assert!(
        select.contains(&format!("* OK [HIGHESTMODSEQ {arrived}]")),
        "{select}"
    );
    let all = a.ok("FETCH 1:* (MODSEQ)");
    assert_eq!(fetches(&all).len(), 3, "{all}");
    assert!(
        fetches(&all)
            .iter()
            .all(|l| number_after(l, "MODSEQ") <= arrived),
        "{all}"
    );

    // A flag change raises the message's MODSEQ past HIGHESTMODSEQ, and CONDSTORE's FETCH
    // carries UID and MODSEQ.
    let seen = a.ok("STORE 1 +FLAGS (\\Seen)");
    let first = modseq_of(&seen, 1);
    assert!(first > arrived, "{seen}");
    assert!(seen.contains("FLAGS (\\Seen"), "{seen}");
    // UNCHANGEDSINCE below it: refused with MODIFIED, nothing changed.
    let refused = a.ok("STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Flagged)");
    assert!(refused.contains("[MODIFIED 1]"), "{refused}");
    assert!(fetches(&refused).is_empty(), "{refused}");
    // At or above it: done; .SILENT still tells the new MODSEQ, without FLAGS.
    let stored = a.ok(&format!(
        "STORE 2:3 (UNCHANGEDSINCE {first}) +FLAGS.SILENT (\\Answered)"
    ));
    assert!(!stored.contains("MODIFIED"), "{stored}");
    assert_eq!(fetches(&stored).len(), 2, "{stored}");
    assert!(!stored.contains("FLAGS ("), "{stored}");
    let second = modseq_of(&stored, 2);
    assert_eq!(modseq_of(&stored, 3), second, "one STORE, one mod-sequence");
    assert!(second > first);
    // A mixed set: UID STORE names the UIDs that failed.
    let mixed = a.ok(&format!(
        "UID STORE 1:3 (UNCHANGEDSINCE {first}) -FLAGS (\\Answered)"
    ));
    assert!(mixed.contains("[MODIFIED 2:3]"), "{mixed}");

    // CHANGEDSINCE: only what changed after, with MODSEQ.
    let changed = a.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {first})"));
    assert_eq!(fetches(&changed).len(), 2, "{changed}");
    assert!(changed.contains("* 2 FETCH") && changed.contains("* 3 FETCH"));
    assert!(changed.contains("MODSEQ ("), "{changed}");
    // SEARCH MODSEQ, with the highest MODSEQ found.
    let search = a.ok(&format!("SEARCH MODSEQ {second}"));
    assert!(
        search.contains(&format!("* SEARCH 2 3 (MODSEQ {second})")),
        "{search}"
    );
    let none = a.ok(&format!(
        "SEARCH MODSEQ \"/flags/\\\\seen\" all {}",
        second + 1
    ));
    assert!(none.contains("* SEARCH\r\n"), "{none}");
    let status = a.ok("STATUS INBOX (HIGHESTMODSEQ)");
    assert_eq!(number_after(&status, "HIGHESTMODSEQ"), second, "{status}");

    // Another session sees the same MODSEQs, kept in the folder's index.
    let mut b = Imap::logged_in(imap(&server), PW);
    let select = b.ok("EXAMINE INBOX");
    assert!(
        select.contains(&format!("* OK [HIGHESTMODSEQ {second}]")),
        "{select}"
    );
    let again = b.ok("FETCH 1:3 (UID MODSEQ)");
    assert_eq!(modseq_of(&again, 1), first, "{again}");
    assert_eq!(modseq_of(&again, 3), second, "{again}");
    // B's change reaches A (CONDSTORE on) with UID and MODSEQ at its next NOOP.
    b.ok("SELECT INBOX");
    let flagged = b.ok("STORE 1 +FLAGS (\\Flagged)");
    let third = modseq_of(&flagged, 1);
    let noop = a.ok("NOOP");
    assert!(
        noop.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen")
            && noop.contains(&format!("MODSEQ ({third}))")),
        "{noop}"
    );
    // A FETCH that sets \Seen tells a CONDSTORE client the new MODSEQ.
    let read = a.ok("FETCH 2 (BODY[TEXT])");
    assert!(read.contains("* 2 FETCH (UID 2 BODY[TEXT]"), "{read}");
    assert!(number_after(&read, "MODSEQ") > third, "{read}");
}

#[test]
fn qresync_select_after_another_session_changed_the_mailbox() {
    let server = imap_server(PW, "");
    deliver(&server, &["q1", "q2", "q3", "q4", "q5"]);
    let addr = imap(&server);

    // The client's first visit: what it caches.
    let mut phone = Imap::logged_in(addr, PW);
    let enabled = phone.ok("ENABLE QRESYNC");
    assert!(enabled.contains("* ENABLED QRESYNC"), "{enabled}");
    let select = phone.ok("SELECT INBOX");
    let validity = number_after(&select, "UIDVALIDITY");
    let cached = number_after(&select, "HIGHESTMODSEQ");
    phone.ok("LOGOUT");

    // Meanwhile, on the desktop: a flag changed, two messages expunged, new mail.
    let mut desktop = Imap::logged_in(addr, PW);
    desktop.ok("SELECT INBOX");
    desktop.ok("UID STORE 2 +FLAGS (\\Flagged)");
    desktop.ok("UID STORE 3:4 +FLAGS.SILENT (\\Deleted)");
    desktop.ok("EXPUNGE");
    deliver(&server, &["q6"]);
    desktop.ok("NOOP");

    // The phone comes back: VANISHED (EARLIER) for the expunged, FETCH for the changed and
    // the new, nothing for the untouched.
    let mut phone = Imap::logged_in(addr, PW);
    phone.ok("ENABLE QRESYNC");
    let resync = phone.ok(&format!("SELECT INBOX (QRESYNC ({validity} {cached} 1:5))"));
    assert!(resync.contains("* VANISHED (EARLIER) 3:4\r\n"), "{resync}");
    assert!(number_after(&resync, "HIGHESTMODSEQ") > cached, "{resync}");
    let updated = fetches(&resync);
    assert_eq!(updated.len(), 2, "{resync}");
    assert!(
        updated[0].starts_with("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ("),
        "{resync}"
    );
    assert!(
        updated[1].starts_with("* 4 FETCH (UID 6 FLAGS ("),
        "{resync}"
    );
    let exists = resync.find("* 4 EXISTS").expect(&resync);
    let vanished = resync.find("* VANISHED").unwrap();
    assert!(
        exists < vanished,
        "the usual SELECT responses come first: {resync}"
    );

    // The known UIDs limit VANISHED; another UIDVALIDITY means a full resync, no VANISHED.
    let known = phone.ok(&format!("SELECT INBOX (QRESYNC ({validity} {cached} 1:3))"));
    assert!(known.starts_with("* OK [CLOSED]"), "{known}");
    assert!(known.contains("* VANISHED (EARLIER) 3\r\n"), "{known}");
    let stale = phone.ok(&format!(
        "SELECT INBOX (QRESYNC ({} {cached}))",
        validity + 1
    ));
    assert!(
        !stale.contains("VANISHED") && fetches(&stale).is_empty(),
        "{stale}"
    );

    // UID FETCH with CHANGEDSINCE and VANISHED tells the same.
    let fetched = phone.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {cached} VANISHED)"
    ));
    assert!(
        fetched.contains("* VANISHED (EARLIER) 3:4\r\n"),
        "{fetched}"
    );
    assert_eq!(fetches(&fetched).len(), 2, "{fetched}");

    // While selected: expunges elsewhere come as VANISHED, never EXPUNGE; flag changes
    // as FETCH with MODSEQ; our own expunges as VANISHED too.
    desktop.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    desktop.ok("UID EXPUNGE 1");
    desktop.ok("UID STORE 5 +FLAGS (\\Seen)");
    let noop = phone.ok("NOOP");
    assert!(noop.contains("* VANISHED 1\r\n"), "{noop}");
    assert!(!noop.contains("EXPUNGE"), "{noop}");
    assert!(noop.contains("UID 5 FLAGS (\\Seen) MODSEQ ("), "{noop}");
    phone.ok("UID STORE 6 +FLAGS.SILENT (\\Deleted)");
    let expunged = phone.ok("EXPUNGE");
    assert!(expunged.contains("* VANISHED 6\r\n"), "{expunged}");
    assert!(!expunged.contains(" EXPUNGE\r\n"), "{expunged}");
    // And the next resync from the first cache reports all four gone.
    let last = number_after(&phone.ok("STATUS INBOX (HIGHESTMODSEQ)"), "HIGHESTMODSEQ");
    let mut tablet = Imap::logged_in(addr, PW);
    tablet.ok("ENABLE QRESYNC");
    let resync = tablet.ok(&format!("SELECT INBOX (QRESYNC ({validity} {cached}))"));
    assert!(
        resync.contains("* VANISHED (EARLIER) 1,3:4,6\r\n"),
        "{resync}"
    );
    let up_to_date = tablet.ok(&format!("SELECT INBOX (QRESYNC ({validity} {last}))"));
    assert!(
        !up_to_date.contains("VANISHED") && fetches(&up_to_date).is_empty(),
        "{up_to_date}"
    );
}

#[test]
fn qresync_needs_enable_and_vanished_needs_uid_fetch() {
    let server = imap_server(PW, "");
    deliver(&server, &["e1"]);
    let mut a = Imap::logged_in(imap(&server), PW);
    a.expect("SELECT INBOX (QRESYNC (1 1))", "BAD");
    // The first CONDSTORE-enabling command in a selected mailbox tells HIGHESTMODSEQ.
    a.ok("SELECT INBOX");
    let first = a.ok("FETCH 1 (MODSEQ)");
    assert!(first.contains("* OK [HIGHESTMODSEQ "), "{first}");
    let again = a.ok("FETCH 1 (MODSEQ)");
    assert!(!again.contains("HIGHESTMODSEQ"), "{again}");
    a.ok("SELECT INBOX (CONDSTORE)");
    a.expect("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD");
    let enabled = a.ok("ENABLE CONDSTORE");
    assert!(enabled.contains("* ENABLED CONDSTORE"), "{enabled}");
    // Without QRESYNC an expunge is still an EXPUNGE.
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    let expunged = a.ok("EXPUNGE");
    assert!(expunged.contains("* 1 EXPUNGE"), "{expunged}");
    a.ok("ENABLE QRESYNC");
    a.expect("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD");
}
