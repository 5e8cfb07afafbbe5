//! The folder header cache (issue 19) against the real server: ENVELOPE and
//! HEADER.FIELDS answered from it are the octets the whole message gives; a damaged
//! cache file is ignored and rebuilt; a UID reused after a UIDVALIDITY change never
//! finds the old message's fields; sessions appending to it side by side lose nothing;
//! SEARCH answers from the folded fields of the cache as from the files, whatever state
//! the cache is in (none, of the old format, torn, filled at APPEND).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::fs;
use std::path::PathBuf;

use common::TestServer;
use common::mailbox::{Imap, deliver, deliver_raw, imap_server, listeners};

const PW: &str = "alice-cache-password";
/// The fields Thunderbird asks for with each new message.
const THUNDERBIRD: &str = "FROM TO CC BCC SUBJECT DATE MESSAGE-ID PRIORITY X-PRIORITY \
                           REFERENCES NEWSGROUPS IN-REPLY-TO CONTENT-TYPE REPLY-TO";

fn cache_file(server: &TestServer) -> PathBuf {
    server.maildir("alice").join("posthorn-cache")
}

fn session(server: &TestServer) -> Imap {
    let mut imap = Imap::logged_in(listeners(server, "imap")[0], PW);
    imap.ok("SELECT INBOX");
    imap
}

/// The untagged part of a command's answer.
fn untagged(answer: &str) -> &str {
    let end = answer.trim_end().rfind("\r\n").map_or(0, |at| at + 2);
    &answer[..end]
}

/// Message `n`'s answer to FETCH `items`, without the tagged line.
fn fetch(imap: &mut Imap, n: usize, items: &str) -> String {
    untagged(&imap.ok(&format!("FETCH {n} ({items})"))).to_string()
}

/// Asserts that FETCH `item` (served from the cache or the header alone) answers as the
/// same item does when fetched after `whole`, an item that needs the whole message.
fn same_as_uncached(imap: &mut Imap, n: usize, item: &str, whole: &str) {
    let cached = fetch(imap, n, item);
    let uncached = fetch(imap, n, &format!("{whole} {item}"));
    let own = cached
        .strip_prefix(&format!("* {n} FETCH ("))
        .unwrap_or_else(|| panic!("{cached}"));
    assert!(
        uncached.ends_with(&format!(" {own}")),
        "message {n}, {item}:\ncached:   {cached}\nuncached: {uncached}"
    );
}

/// Messages with folded fields, encoded words, groups, missing and repeated fields and
/// 8-bit (UTF-8) header text.
fn messages() -> Vec<String> {
    [
        "From: Alice <alice@example.org>\r\nX-Other: between\r\nTo: Team: bob@example.org,\r\n \
         =?utf-8?q?J=C3=BCrgen?= <juergen@example.net>;\r\nCc: carol@example.com\r\n\
         Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the\r\n\tlake\r\n\
         Date: Mon, 31 Dec 2018 23:30:00 -0500\r\nMessage-ID: <unique@example.org>\r\n\
         References: <a@x>\r\n <b@x>\r\nIn-Reply-To: <b@x>\r\nX-Priority: 1\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nbody\r\n--b--\r\n",
        "Subject: no addresses at all\r\n\r\nbody\r\n",
        "From: Ümläut <u@example.org>\r\nSubject: 8-bit été\r\n\
         Reply-To: group:;, other: (comment) ;\r\nSender:\r\n\r\nbody\r\n",
        "Subject: first\r\nSubject: second\r\nFrom: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect()
}

#[test]
fn cached_answers_are_the_octets_of_uncached_ones() {
    let server = imap_server(PW, "");
    deliver_raw(&server, &messages());
    let mut imap = session(&server);
    // Twice: the first fills the cache from the files, the second reads the cache.
    for round in 0..2 {
        for n in 1..=4 {
            same_as_uncached(&mut imap, n, "ENVELOPE", "BODYSTRUCTURE");
            let fields = format!("BODY.PEEK[HEADER.FIELDS ({THUNDERBIRD})]");
            same_as_uncached(&mut imap, n, &fields, "BODY.PEEK[TEXT]");
            let one = "BODY.PEEK[HEADER.FIELDS (subject)]";
            same_as_uncached(&mut imap, n, one, "BODY.PEEK[TEXT]");
            // Served from the header section alone.
            same_as_uncached(&mut imap, n, "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]");
            same_as_uncached(&mut imap, n, "RFC822.HEADER", "BODY.PEEK[TEXT]");
            let others = "BODY.PEEK[HEADER.FIELDS (X-Other Subject)]";
            same_as_uncached(&mut imap, n, others, "BODY.PEEK[TEXT]");
        }
        assert!(cache_file(&server).exists(), "round {round}");
    }
    // Header keys from the cache, BODY from the files: the same messages.
    for (key, value, expected) in [
        ("SUBJECT", "grüße", "1"),
        ("SUBJECT", "from the lake", "1"),
        ("FROM", "ümläut", "3"),
        ("FROM", "b@example.org", "4"),
        ("TO", "jürgen", "1"),
        ("HEADER X-Priority", "1", "1"),
        ("HEADER X-Other", "between", "1"),
        ("OR SUBJECT second BODY", "body", "1 2 3 4"),
    ] {
        // Non-ASCII text goes as a literal (LITERAL+).
        let value = if value.is_ascii() {
            format!("\"{value}\"")
        } else {
            format!("{{{}+}}\r\n{value}", value.len())
        };
        let found = imap.ok(&format!("SEARCH CHARSET UTF-8 {key} {value}"));
        assert_eq!(
            untagged(&found),
            format!("* SEARCH {expected}\r\n"),
            "{key}"
        );
    }
    let sent = imap.ok("SEARCH SENTBEFORE 1-Jan-2019");
    assert_eq!(untagged(&sent), "* SEARCH 1\r\n");
    let sorted = imap.ok("SORT (SUBJECT) UTF-8 ALL");
    // mail-parser's subject is the last Subject field's: "second".
    assert_eq!(untagged(&sorted), "* SORT 3 1 2 4\r\n", "{sorted}");
}

#[test]
fn a_damaged_cache_is_ignored_and_rebuilt() {
    let server = imap_server(PW, "");
    deliver_raw(&server, &messages());
    let mut imap = session(&server);
    let envelopes: Vec<String> = (1..=4).map(|n| fetch(&mut imap, n, "ENVELOPE")).collect();
    drop(imap);
    let file = cache_file(&server);
    let whole = fs::read(&file).unwrap();
    assert!(whole.starts_with(b"PHCACHE2"));
    for damaged in [
        b"garbage that is no cache file at all".to_vec(),
        [&whole[..whole.len() - 7], b"torn"].concat(),
        whole.iter().map(|b| b ^ 0x55).collect(),
    ] {
        fs::write(&file, &damaged).unwrap();
        let mut imap = session(&server);
        for (n, envelope) in (1..=4).zip(&envelopes) {
            assert_eq!(&fetch(&mut imap, n, "ENVELOPE"), envelope);
        }
        let subject = imap.ok("SEARCH SUBJECT second");
        assert_eq!(untagged(&subject), "* SEARCH 4\r\n");
        assert!(fs::read(&file).unwrap().starts_with(b"PHCACHE2"));
    }
}

#[test]
fn a_reused_uid_never_finds_the_old_message() {
    let server = imap_server(PW, "");
    deliver(&server, &["old one"]);
    let mut imap = session(&server);
    assert!(fetch(&mut imap, 1, "UID ENVELOPE").contains("\"old one\""));
    imap.ok("LOGOUT");
    // The message goes, and with the UID list UIDVALIDITY: UID 1 is given again.
    let dir = server.maildir("alice");
    for entry in fs::read_dir(dir.join("cur")).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    fs::remove_file(dir.join("posthorn-uidlist")).unwrap();
    deliver(&server, &["new one"]);
    let mut imap = session(&server);
    let envelope = fetch(&mut imap, 1, "UID ENVELOPE");
    assert!(envelope.contains("UID 1 "), "{envelope}");
    assert!(envelope.contains("\"new one\""), "{envelope}");
    let found = imap.ok("SEARCH SUBJECT \"old one\"");
    assert_eq!(untagged(&found), "* SEARCH\r\n");
}

#[test]
fn sessions_fill_the_cache_side_by_side_and_survive_an_expunge() {
    let server = imap_server(PW, "");
    let subjects: Vec<String> = (0..40).map(|i| format!("message {i:02}")).collect();
    let names: Vec<&str> = subjects.iter().map(String::as_str).collect();
    deliver(&server, &names);
    let mut a = session(&server);
    let mut b = session(&server);
    // Interleaved: each session appends records the other has not read.
    for n in 1..=40 {
        let (first, second) = if n % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let envelope = fetch(first, n, "ENVELOPE");
        assert!(envelope.contains(&format!("\"message {:02}\"", n - 1)));
        assert_eq!(fetch(second, n, "ENVELOPE"), envelope);
    }
    let mut c = session(&server);
    let all = untagged(&c.ok("FETCH 1:* (ENVELOPE)")).to_string();
    let from_files = untagged(&c.ok("FETCH 1:* (BODYSTRUCTURE ENVELOPE)")).to_string();
    assert_eq!(all.matches("* ").count(), 40);
    for line in all.split("\r\n").filter(|l| !l.is_empty()) {
        let own = line.split_once(" FETCH (").unwrap().1;
        assert!(from_files.contains(&format!(" {own}")), "{line}");
    }
    let sorted = c.ok("SORT (REVERSE SUBJECT) US-ASCII SUBJECT message");
    assert!(
        untagged(&sorted).starts_with("* SORT 40 39 38 "),
        "{sorted}"
    );
    assert!(
        fs::read(cache_file(&server))
            .unwrap()
            .starts_with(b"PHCACHE2"),
        "one file, not torn by the two appenders"
    );
    c.ok("STORE 1:39 +FLAGS.SILENT (\\Deleted)");
    c.ok("EXPUNGE");
    assert!(fetch(&mut c, 1, "ENVELOPE").contains("\"message 39\""));
    let found = a.ok("NOOP");
    assert!(found.contains("EXPUNGE"), "{found}");
    assert!(fetch(&mut a, 1, "ENVELOPE").contains("\"message 39\""));
}

#[test]
fn search_answers_from_folded_fields_as_from_the_files() {
    let server = imap_server(PW, "");
    deliver_raw(&server, &messages());
    let searches = [
        "SEARCH CHARSET UTF-8 SUBJECT {7+}\r\ngrüße",
        "SEARCH SUBJECT \"FROM THE LAKE\"",
        "SEARCH CHARSET UTF-8 FROM {8+}\r\nümläut",
        "SEARCH FROM \"Alice <alice@\"",
        "SEARCH FROM b@example.org",
        "SEARCH CHARSET UTF-8 TO {7+}\r\njürgen",
        "SEARCH TO team",
        "SEARCH CC \"\"",
        "SEARCH BCC \"\"",
        "SEARCH SUBJECT \"\"",
        "SEARCH NOT FROM alice",
        "SEARCH OR TO team SUBJECT second",
        "SEARCH SEEN SUBJECT no",
        "UID SEARCH 2:* SUBJECT a",
        // Not folded: from the cached fields, or from the files.
        "SEARCH HEADER REPLY-TO group",
        "SEARCH OR SUBJECT second BODY body",
    ];
    let answers = |imap: &mut Imap| -> Vec<String> {
        searches
            .iter()
            .map(|search| untagged(&imap.ok(search)).to_string())
            .collect()
    };
    let file = cache_file(&server);
    // Without the records delivery wrote, every message is read from its file (and
    // cached on the way).
    fs::remove_file(&file).unwrap();
    let mut imap = session(&server);
    imap.ok("STORE 2 +FLAGS (\\Seen)");
    let from_files = answers(&mut imap);
    assert_eq!(from_files[0], "* SEARCH 1\r\n");
    assert_eq!(from_files[11], "* SEARCH 1 4\r\n");
    assert_eq!(from_files[12], "* SEARCH 2\r\n");
    drop(imap);
    let whole = fs::read(&file).unwrap();
    assert!(whole.starts_with(b"PHCACHE2"));
    // PHCACHE1 had raw fields only: such a file is never read as folded fields, and is
    // replaced; a torn last record is ignored.
    let old = [&b"PHCACHE1"[..], &whole[8..]].concat();
    let torn = [&whole[..], &whole[8..40]].concat();
    for cache in [Some(whole.clone()), None, Some(old), Some(torn)] {
        match &cache {
            Some(bytes) => fs::write(&file, bytes).unwrap(),
            None => fs::remove_file(&file).unwrap(),
        }
        let mut imap = session(&server);
        assert_eq!(answers(&mut imap), from_files);
        let now = fs::read(&file).unwrap();
        assert!(now.starts_with(b"PHCACHE2"));
        if cache.as_ref() == Some(&whole) {
            assert_eq!(now, whole, "answered from the cache alone");
        }
    }
}

#[test]
fn delivery_and_append_fill_the_cache() {
    let server = imap_server(PW, "");
    let file = cache_file(&server);
    deliver_raw(&server, &messages()[..2]);
    let delivered = fs::read(&file).expect("written at delivery");
    assert!(delivered.starts_with(b"PHCACHE2"));
    let mut imap = session(&server);
    let appended =
        "From: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>\r\nSubject: appended, cached\r\n\r\nbody\r\n";
    imap.ok(&format!(
        "APPEND INBOX {{{}+}}\r\n{appended}",
        appended.len()
    ));
    imap.ok("NOOP");
    let filled = fs::read(&file).unwrap();
    assert!(filled.len() > delivered.len(), "the APPEND's record");
    // Found in the records delivery and APPEND wrote: nothing is read and cached again.
    for (search, expected) in [
        ("SEARCH SUBJECT \"appended, CACHED\"", "* SEARCH 3\r\n"),
        (
            "SEARCH CHARSET UTF-8 SUBJECT {7+}\r\ngrüße",
            "* SEARCH 1\r\n",
        ),
        ("SEARCH FROM \"\"", "* SEARCH 1 3\r\n"),
    ] {
        assert_eq!(untagged(&imap.ok(search)), expected, "{search}");
    }
    assert_eq!(fs::read(&file).unwrap(), filled);
    // A delivered message's record is given its UID when first fetched.
    same_as_uncached(&mut imap, 1, "ENVELOPE", "BODYSTRUCTURE");
    let keyed = fs::read(&file).unwrap().len();
    assert!(keyed > filled.len());
    fetch(&mut imap, 1, "ENVELOPE");
    assert_eq!(fs::read(&file).unwrap().len(), keyed, "once");
}
