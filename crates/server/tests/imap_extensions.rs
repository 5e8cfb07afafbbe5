//! The IMAP extensions modern clients use, against the real server: ESEARCH, SORT (and
//! SORT=DISPLAY), THREAD, MULTIAPPEND and QUOTA, through the raw client and Python's
//! imaplib (which has SORT, THREAD and the QUOTA commands built in).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use common::TestServer;
use common::mailbox::{Imap, imap_server, listeners, python_with_imap};

const PW: &str = "alice-extensions-password";

fn login(server: &TestServer) -> Imap {
    Imap::logged_in(listeners(server, "imap")[0], PW)
}

/// One message; `extra` holds more header fields, each ending in CRLF.
fn message(from: &str, subject: &str, date: &str, id: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: alice@example.com\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}>\r\n{extra}\r\nbody of {id}\r\n"
    )
}

/// The messages the ordering tests share, appended in this order (so sequence numbers
/// 1 to 5), with arrival times a day apart, newest first.
fn conversation() -> Vec<(String, &'static str)> {
    vec![
        (
            message(
                "Zed <zed@example.org>",
                "Lunch",
                "Mon, 3 Jun 2024 12:00:00 +0000",
                "lunch@x",
                "",
            ),
            "05-Jun-2024 00:00:00 +0000",
        ),
        (
            message(
                "Amy <amy@example.org>",
                "Re: Lunch",
                "Mon, 3 Jun 2024 13:00:00 +0000",
                "reply@x",
                "In-Reply-To: <lunch@x>\r\n",
            ),
            "04-Jun-2024 00:00:00 +0000",
        ),
        (
            message(
                "bob@example.org",
                "[team] Budget",
                "Sun, 2 Jun 2024 09:00:00 +0200",
                "budget@x",
                "",
            ),
            "03-Jun-2024 00:00:00 +0000",
        ),
        (
            message(
                "Carl <carl@example.org>",
                "Fwd: lunch (fwd)",
                "Tue, 4 Jun 2024 08:00:00 +0000",
                "again@x",
                "References: <lunch@x> <reply@x>\r\n",
            ),
            "02-Jun-2024 00:00:00 +0000",
        ),
        (
            message(
                "amy@example.org",
                "Budget",
                "Wed, 5 Jun 2024 08:00:00 +0000",
                "budget2@x",
                "References: <lost@x>\r\n",
            ),
            "01-Jun-2024 00:00:00 +0000",
        ),
    ]
}

/// APPENDs the conversation to INBOX in one MULTIAPPEND with non-synchronizing literals.
fn append_conversation(imap: &mut Imap) -> String {
    let mut command = "APPEND INBOX".to_string();
    for (content, date) in conversation() {
        command.push_str(&format!(" \"{date}\" {{{}+}}\r\n{content}", content.len()));
    }
    imap.ok(&command)
}

/// The numbers of an untagged `* NAME ...` response in `text`.
fn untagged<'t>(text: &'t str, name: &str) -> &'t str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("* {name}")))
        .unwrap_or_else(|| panic!("no * {name} in {text:?}"))
        .trim()
}

/// What follows `* ESEARCH (TAG "tag")` in `text`.
fn esearch<'t>(text: &'t str, tag: &str) -> &'t str {
    untagged(text, &format!("ESEARCH (TAG \"{tag}\")"))
}

#[test]
fn capabilities_announce_the_extensions() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    let caps = imap.ok("CAPABILITY");
    for cap in [
        "ESEARCH",
        " SORT ",
        "SORT=DISPLAY",
        "THREAD=ORDEREDSUBJECT",
        "THREAD=REFERENCES",
        "MULTIAPPEND",
        " QUOTA ",
        "QUOTA=RES-STORAGE",
        "LITERAL+",
        "IMAP4rev1 IMAP4rev2 ",
        " BINARY ",
        " UTF8=ACCEPT ",
        " SEARCHRES ",
    ] {
        assert!(caps.contains(cap), "{cap} in {caps}");
    }
    // RFC 7888 §5: LITERAL- is never announced next to LITERAL+, its superset (RFC 9051
    // §4.3 lets an IMAP4rev2 server announce LITERAL+ instead).
    assert!(!caps.contains("LITERAL-"), "{caps}");
}

#[test]
fn multiappend_stores_every_message_or_none() {
    let server = imap_server(PW, "quota = 15000");
    let mut imap = login(&server);
    let done = append_conversation(&mut imap);
    assert!(done.contains("[APPENDUID "), "{done}");
    assert!(done.contains(" 1,2,3,4,5] "), "{done}");
    imap.ok("SELECT INBOX");
    let dates = imap.ok("FETCH 1,5 (INTERNALDATE)");
    assert!(dates.contains("05-Jun-2024"), "{dates}");
    assert!(dates.contains("01-Jun-2024"), "{dates}");

    // The second message is malformed: BAD, and the first is not stored either.
    imap.expect("APPEND INBOX {5+}\r\nfirst (\\Bogus) {6+}\r\nsecond", "BAD");
    // Together over the quota, each within it: refused whole.
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(9000));
    let refused = imap.expect(
        &format!(
            "APPEND INBOX {{{n}+}}\r\n{big} {{{n}+}}\r\n{big}",
            n = big.len()
        ),
        "NO",
    );
    assert!(refused.contains("[OVERQUOTA]"), "{refused}");
    let status = imap.ok("STATUS INBOX (MESSAGES)");
    assert!(status.contains("(MESSAGES 5)"), "{status}");
    // A synchronizing second literal is asked for like the first.
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX {{1}}\r\n"));
    assert!(imap.response().starts_with('+'));
    imap.send("a {1}\r\n");
    assert!(imap.response().starts_with('+'));
    imap.send("b\r\n");
    let done = imap.until_tagged(&tag);
    assert!(done.contains(" 6:7] ") || done.contains(" 6,7] "), "{done}");
}

#[test]
fn esearch_returns_what_was_asked() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    append_conversation(&mut imap);
    imap.ok("SELECT INBOX");
    // Each ESEARCH names the command's tag.
    let all = imap.ok("SEARCH RETURN (MIN MAX COUNT ALL) ALL");
    assert_eq!(esearch(&all, "a4"), "MIN 1 MAX 5 ALL 1:5 COUNT 5");
    let by_default = imap.ok("UID SEARCH RETURN () SUBJECT budget");
    assert_eq!(esearch(&by_default, "a5"), "UID ALL 3,5");
    let counted = imap.ok("SEARCH RETURN (COUNT) CHARSET UTF-8 FROM nobody");
    assert_eq!(esearch(&counted, "a6"), "COUNT 0");
    let plain = imap.ok("SEARCH FROM amy");
    assert_eq!(untagged(&plain, "SEARCH"), "2 5");
    imap.expect("SEARCH RETURN (PARTIAL 1:5) ALL", "BAD");
}

#[test]
fn sort_orders_by_each_key_and_reverse() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    append_conversation(&mut imap);
    imap.ok("SELECT INBOX");
    let sort = |imap: &mut Imap, criteria: &str| {
        let text = imap.ok(&format!("SORT ({criteria}) UTF-8 ALL"));
        untagged(&text, "SORT").to_string()
    };
    // Base subjects: LUNCH, LUNCH, BUDGET, LUNCH, BUDGET; then sent date.
    assert_eq!(sort(&mut imap, "SUBJECT DATE"), "3 5 1 2 4");
    // Sent dates in UTC: 3 (Jun 2 07:00) 1 2 4 5.
    assert_eq!(sort(&mut imap, "DATE"), "3 1 2 4 5");
    assert_eq!(sort(&mut imap, "REVERSE DATE"), "5 4 2 1 3");
    assert_eq!(sort(&mut imap, "ARRIVAL"), "5 4 3 2 1");
    // Mailboxes: ZED AMY BOB CARL AMY; equal keys stay in mailbox order.
    assert_eq!(sort(&mut imap, "FROM"), "2 5 3 4 1");
    assert_eq!(sort(&mut imap, "REVERSE FROM"), "1 4 3 2 5");
    // Display names: ZED AMY BOB@EXAMPLE.ORG CARL AMY@EXAMPLE.ORG.
    assert_eq!(sort(&mut imap, "DISPLAYFROM"), "2 5 3 4 1");
    assert_eq!(sort(&mut imap, "SIZE"), "1 3 5 2 4");
    let uids = imap.ok("UID SORT (REVERSE ARRIVAL) US-ASCII SUBJECT lunch");
    assert_eq!(untagged(&uids, "SORT"), "1 2 4");
    let refused = imap.expect("SORT (DATE) KOI8-R ALL", "NO");
    assert!(refused.contains("[BADCHARSET"), "{refused}");
    imap.expect("SORT (NAME) UTF-8 ALL", "BAD");
}

#[test]
fn thread_by_references_and_by_subject() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    append_conversation(&mut imap);
    imap.ok("SELECT INBOX");
    // 2 replies to 1, 4 to 2; 5 refers to a message we do not have and joins 3 by
    // subject under a dummy; threads by their first message's sent date.
    let references = imap.ok("THREAD REFERENCES UTF-8 ALL");
    assert_eq!(untagged(&references, "THREAD"), "((3)(5))(1 2 4)");
    let ordered = imap.ok("THREAD ORDEREDSUBJECT UTF-8 ALL");
    assert_eq!(untagged(&ordered, "THREAD"), "(3 5)(1 (2)(4))");
    let uids = imap.ok("UID THREAD REFERENCES UTF-8 NOT FROM carl");
    assert_eq!(untagged(&uids, "THREAD"), "((3)(5))(1 2)");
    imap.expect("THREAD FOO UTF-8 ALL", "BAD");
}

#[test]
fn a_long_reply_chain_is_one_thread() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    let mut command = "APPEND INBOX".to_string();
    let count = 300;
    for n in 0..count {
        let parent = if n == 0 {
            String::new()
        } else {
            format!("In-Reply-To: <m{}@x>\r\n", n - 1)
        };
        let content = message(
            "a@example.org",
            "chain",
            "Mon, 3 Jun 2024 12:00:00 +0000",
            &format!("m{n}@x"),
            &parent,
        );
        command.push_str(&format!(" {{{}+}}\r\n{content}", content.len()));
    }
    imap.ok(&command);
    imap.ok("SELECT INBOX");
    let threads = imap.ok("THREAD REFERENCES UTF-8 ALL");
    let expected: Vec<String> = (1..=count).map(|n| n.to_string()).collect();
    assert_eq!(
        untagged(&threads, "THREAD"),
        format!("({})", expected.join(" "))
    );
}

#[test]
fn imaplib_sort_thread_and_quota() {
    let server = imap_server(PW, "quota = 1048576");
    let mut imap = login(&server);
    append_conversation(&mut imap);
    let script = r#"
import imaplib, os
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]), timeout=10)
M.login("alice", os.environ["PW"])
M.select("INBOX")
print("sort", M.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")[1][0].decode())
print("thread", M.thread("REFERENCES", "UTF-8", "ALL")[1][0].decode())
typ, data = M.getquotaroot("INBOX")
print("quotaroot", typ, [d.decode() for group in data for d in group])
typ, data = M.getquota('""')
print("quota", typ, data[0].decode())
typ, data = M.setquota('""', "(STORAGE 10)")
print("setquota", typ, data[0].decode())
typ, data = M.getquota("other")
print("other", typ)
M.logout()
"#;
    let stdout = imaplib(&server, script);
    let line = |key: &str| keyed(&stdout, key);
    assert_eq!(line("sort"), "1 2 4 3 5");
    assert_eq!(line("thread"), "((3)(5))(1 2 4)");
    let usage = std::fs::read_to_string(server.maildir("alice").join("maildirsize")).unwrap();
    let used: u64 = usage
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let storage = format!("(STORAGE {} 1024)", used.div_ceil(1024));
    let root = line("quotaroot");
    assert!(root.starts_with("OK"), "{root}");
    assert!(root.contains("INBOX \"\""), "{root}");
    assert!(root.contains(&storage), "{root} {storage}");
    assert_eq!(line("quota"), format!("OK \"\" {storage}"));
    assert!(line("setquota").starts_with("NO [NOPERM]"), "{stdout}");
    assert_eq!(line("other"), "NO");
}

#[test]
fn an_account_without_a_limit_has_no_quota_root() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    let root = imap.ok("GETQUOTAROOT INBOX");
    assert!(root.contains("* QUOTAROOT INBOX\r\n"), "{root}");
    assert!(!root.contains("* QUOTA "), "{root}");
    imap.expect("GETQUOTA \"\"", "NO");
    let missing = imap.expect("GETQUOTAROOT Nowhere", "NO");
    assert!(missing.contains("[NONEXISTENT]"), "{missing}");
}

/// A message of four parts: base64, quoted-printable, an encoding we do not know, and a
/// base64 part larger than a FETCH chunk.
fn encoded_parts(large: &[u8]) -> String {
    use base64::Engine;
    let mut large_b64 = String::new();
    let encoded = base64::engine::general_purpose::STANDARD.encode(large);
    for line in encoded.as_bytes().chunks(76) {
        large_b64.push_str(std::str::from_utf8(line).unwrap());
        large_b64.push_str("\r\n");
    }
    format!(
        "From: bob@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8gd29y bGQ=\r\n\
         --b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9  \r\nsoft=\r\nbreak\r\n\
         --b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {large_b64}--b--\r\n"
    )
}

#[test]
fn binary_fetches_decoded_parts() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    let caps = imap.ok("CAPABILITY");
    assert!(caps.contains(" BINARY "), "{caps}");
    let large: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let content = encoded_parts(&large);
    imap.ok(&format!("APPEND INBOX {{{}+}}\r\n{content}", content.len()));
    imap.ok("SELECT INBOX");

    let sizes = imap.ok("FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[4])");
    assert!(
        sizes.contains("BINARY.SIZE[1] 11 BINARY.SIZE[2] 16 BINARY.SIZE[4] 300000"),
        "{sizes}"
    );
    let parts = imap.ok("FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[1]<6.100>)");
    assert!(parts.contains("BINARY[1] {11}\r\nhello world"), "{parts}");
    assert!(
        parts.contains("BINARY[2] {16}\r\ncafé\r\nsoftbreak"),
        "{parts}"
    );
    assert!(parts.contains("BINARY[1]<6> {5}\r\nworld"), "{parts}");
    assert!(!parts.contains("\\Seen"), "{parts}");

    // The large part comes as a literal8 (it holds NULs), decoded exactly, a window too.
    let tag = imap.tag();
    imap.send(format!(
        "{tag} FETCH 1 (BINARY.PEEK[4] BINARY.PEEK[4]<100000.70000>)\r\n"
    ));
    let bytes = read_fetch_literals(&mut imap, &tag);
    assert_eq!(bytes.len(), 2);
    assert_eq!(bytes[0], large);
    assert_eq!(bytes[1], large[100_000..170_000]);

    let unknown = imap.expect("FETCH 1 (BINARY.PEEK[3])", "NO");
    assert!(unknown.contains("[UNKNOWN-CTE]"), "{unknown}");
    let unknown = imap.expect("FETCH 1 (BINARY.SIZE[3])", "NO");
    assert!(unknown.contains("[UNKNOWN-CTE]"), "{unknown}");
    // BINARY without PEEK sets \Seen, like BODY.
    let seen = imap.ok("FETCH 1 (BINARY[1])");
    assert!(seen.contains("\\Seen"), "{seen}");
    let whole = imap.ok("FETCH 1 (BINARY.SIZE[])");
    assert!(
        whole.contains(&format!("BINARY.SIZE[] {}", content.len())),
        "{whole}"
    );
}

/// The literals of the responses up to `tag`, as octets.
fn read_fetch_literals(imap: &mut Imap, tag: &str) -> Vec<Vec<u8>> {
    let mut literals = Vec::new();
    loop {
        let (text, carried) = imap.response_octets();
        literals.extend(carried);
        if text.starts_with(format!("{tag} ").as_bytes()) {
            assert!(text.starts_with(format!("{tag} OK").as_bytes()));
            return literals;
        }
    }
}

#[test]
fn literal8_appends_binary_content_stored_as_base64() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    let body: &[u8] = b"\0\x01\xe4\r\nbinary\n";
    let mut content =
        b"Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\
        Content-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
    content.extend_from_slice(body);
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX ~{{{}}}\r\n", content.len()));
    assert!(imap.response().starts_with('+'));
    imap.send(&content);
    imap.send("\r\n");
    assert!(imap.until_tagged(&tag).contains(&format!("{tag} OK")));
    imap.ok("SELECT INBOX");
    // BODY[] never carries a NUL: the part was stored base64-encoded.
    let stored = imap.ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME])");
    assert!(!stored.contains('\0'), "{stored:?}");
    assert!(
        stored.contains("Content-Transfer-Encoding: base64"),
        "{stored}"
    );
    let tag = imap.tag();
    imap.send(format!("{tag} FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])\r\n"));
    let (text, literals) = imap.response_octets();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(&format!("BINARY.SIZE[1] {} BINARY[1] ~{{", body.len())),
        "{text}"
    );
    assert_eq!(literals, [body.to_vec()]);
    imap.until_tagged(&tag);
    // A literal8 is message data only: not a string argument.
    imap.expect("LOGIN ~{1+}\r\na b", "BAD");
}

#[test]
fn non_synchronizing_literals_over_the_limit() {
    let server = imap_server(PW, "");
    let addr = listeners(&server, "imap")[0];
    // Before login a literal may be 8 KiB: a larger {n+} is read, dropped and answered
    // BAD [TOOBIG] (RFC 7888 §4, §5), and the session goes on.
    let (mut imap, _) = Imap::connect(addr);
    let tag = imap.tag();
    imap.send(format!(
        "{tag} LOGIN {{9000+}}\r\n{} x\r\n",
        "u".repeat(9000)
    ));
    let refused = imap.until_tagged(&tag);
    assert!(
        refused.contains(&format!("{tag} BAD [TOOBIG] ")),
        "{refused}"
    );
    imap.ok("NOOP");
    imap.ok(&format!("LOGIN alice \"{PW}\""));
    // One far over the limit is not read: BYE, and the connection ends.
    let tag = imap.tag();
    imap.send(format!("{tag} SEARCH TEXT {{10000000+}}\r\n"));
    let bye = imap.response();
    assert!(bye.starts_with("* BYE [TOOBIG]"), "{bye}");
    assert!(imap.closed());
}

#[test]
fn searchres_saves_a_result_for_later_commands() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    append_conversation(&mut imap);
    imap.ok("SELECT INBOX");
    // SAVE alone answers only OK (RFC 5182 §2.1); `$` then names those messages.
    let saved = imap.ok("SEARCH RETURN (SAVE) SUBJECT lunch");
    assert!(
        !saved.contains("* SEARCH") && !saved.contains("ESEARCH"),
        "{saved}"
    );
    let fetched = imap.ok("FETCH $ (UID)");
    assert_eq!(fetched.matches(" FETCH (").count(), 3, "{fetched}");
    let by_uid = imap.ok("UID FETCH $ (FLAGS)");
    assert_eq!(by_uid.matches(" FETCH (").count(), 3, "{by_uid}");
    imap.ok("STORE $ +FLAGS (\\Flagged)");
    let flagged = imap.ok("SEARCH FLAGGED");
    assert_eq!(
        untagged(&flagged, "SEARCH"),
        untagged(&imap.ok("SEARCH $"), "SEARCH")
    );
    // With MIN only the lowest is kept; with other options ESEARCH still answers.
    let min = imap.ok("SEARCH RETURN (SAVE MIN) ALL");
    assert!(min.contains("ESEARCH") && min.contains("MIN 1"), "{min}");
    assert_eq!(untagged(&imap.ok("SEARCH $"), "SEARCH"), "1");
    // `$` within search keys, and after a failed SAVE it names nothing.
    let or = imap.ok("SEARCH OR $ 5");
    assert_eq!(untagged(&or, "SEARCH"), "1 5");
    imap.expect("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL", "NO");
    assert_eq!(untagged(&imap.ok("SEARCH $"), "SEARCH"), "");
    // A new selection starts with an empty result.
    imap.ok("SEARCH RETURN (SAVE) ALL");
    imap.ok("SELECT INBOX");
    assert_eq!(untagged(&imap.ok("SEARCH $"), "SEARCH"), "");
}

#[test]
fn imap4rev2_session_differs_only_once_enabled() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    append_conversation(&mut imap);
    imap.ok("CREATE Parent");
    imap.ok("CREATE Parent.Child");
    // IMAP4rev1 as before: RECENT and UNSEEN in SELECT, SEARCH answers SEARCH, INUSE.
    let select = imap.ok("SELECT INBOX");
    assert!(
        select.contains(" RECENT\r\n") && select.contains("[UNSEEN 1]"),
        "{select}"
    );
    assert!(!select.contains("* LIST"), "{select}");
    assert!(imap.ok("SEARCH ALL").contains("* SEARCH 1 2 3 4 5"));
    assert!(imap.ok("FETCH 1 FLAGS").contains("\\Recent"));
    let refused = imap.expect("DELETE Parent", "NO");
    assert!(refused.contains("[INUSE]"), "{refused}");

    let enabled = imap.ok("ENABLE IMAP4rev2");
    assert!(enabled.contains("* ENABLED IMAP4rev2"), "{enabled}");
    let select = imap.ok("SELECT INBOX");
    assert!(select.contains("* OK [CLOSED]"), "{select}");
    assert!(
        !select.contains("RECENT") && !select.contains("UNSEEN"),
        "{select}"
    );
    assert!(
        select.contains("* LIST (\\HasNoChildren) \".\" INBOX"),
        "{select}"
    );
    assert!(!imap.ok("FETCH 1:* FLAGS").contains("\\Recent"));
    let search = imap.ok("SEARCH ALL");
    assert!(
        search.contains(" ALL 1:5\r\n") && search.contains("* ESEARCH (TAG "),
        "{search}"
    );
    let search = imap.ok("UID SEARCH RETURN (COUNT) ALL");
    assert!(search.contains(" UID COUNT 5"), "{search}");
    let refused = imap.expect("DELETE Parent", "NO");
    assert!(refused.contains("[HASCHILDREN]"), "{refused}");
    let status = imap.ok("STATUS INBOX (MESSAGES DELETED SIZE)");
    assert!(status.contains("DELETED 0"), "{status}");
    imap.expect("STATUS INBOX (RECENT)", "BAD");
    // `$` in SORT's criteria too.
    imap.ok("SEARCH RETURN (SAVE) SUBJECT budget");
    let sorted = imap.ok("SORT (SUBJECT) UTF-8 $");
    assert!(
        sorted.contains("* SORT 3 5") || sorted.contains("* SORT 5 3"),
        "{sorted}"
    );
}

#[test]
fn utf8_accept_names_and_messages() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    // Before ENABLE: modified UTF-7, and no UTF8 data item.
    imap.ok("CREATE Entw&APw-rfe");
    imap.expect("APPEND INBOX UTF8 (~{3+}\r\nx\r\n)", "BAD");
    // RFC 6855 §4: 8-bit header fields only from a client that enabled UTF-8.
    let raw = "Subject: caf\u{e9}\r\n\r\nbody\r\n";
    imap.expect(&format!("APPEND INBOX {{{}+}}\r\n{raw}", raw.len()), "NO");
    let raw = "Subject: cafe\r\n\r\ncaf\u{e9} in the body\r\n";
    imap.ok(&format!("APPEND INBOX {{{}+}}\r\n{raw}", raw.len()));
    let enabled = imap.ok("ENABLE UTF8=ACCEPT");
    assert!(enabled.contains("* ENABLED UTF8=ACCEPT"), "{enabled}");
    let list = imap.ok("LIST \"\" \"Entw*\"");
    assert!(
        list.contains("Entwürfe") && !list.contains("&APw-"),
        "{list}"
    );
    imap.ok("CREATE \"Tom & Jerry\"");
    let status = imap.ok("STATUS \"Tom & Jerry\" (MESSAGES)");
    assert!(
        status.contains("* STATUS \"Tom & Jerry\" (MESSAGES 0)"),
        "{status}"
    );
    let message = "Subject: Grüße aus Köln\r\nFrom: Jörg <jörg@example.com>\r\n\r\nhallo\r\n";
    let appended = imap.ok(&format!(
        "APPEND \"Entwürfe\" UTF8 (~{{{}+}}\r\n{message})",
        message.len()
    ));
    assert!(appended.contains("[APPENDUID "), "{appended}");
    imap.ok("SELECT \"Entwürfe\"");
    let found = imap.ok("SEARCH CHARSET UTF-8 SUBJECT \"grüße\"");
    assert_eq!(untagged(&found, "SEARCH"), "1");
    // Header fields with raw UTF-8 come back as they are.
    let envelope = imap.ok("FETCH 1 (ENVELOPE)");
    assert!(envelope.contains("Grüße aus Köln"), "{envelope}");
    let header = imap.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM)])");
    assert!(header.contains("From: Jörg <jörg@example.com>"), "{header}");
    // A client without UTF8=ACCEPT still sees the stored, modified UTF-7 names.
    let mut other = login(&server);
    let list = other.ok("LIST \"\" *");
    assert!(
        list.contains("Entw&APw-rfe") && list.contains("Tom &- Jerry"),
        "{list}"
    );
}

#[test]
fn utf8_names_are_taken_in_nfc() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    imap.ok("ENABLE UTF8=ACCEPT");
    // "Café" with a combining accent (NFD) and with the precomposed é (NFC): one folder.
    let (nfd, nfc) = ("Cafe\u{301}", "Caf\u{e9}");
    imap.ok(&format!("CREATE \"{nfd}\""));
    imap.expect(&format!("CREATE \"{nfc}\""), "NO");
    let message = "Subject: hi\r\n\r\nbody\r\n";
    imap.ok(&format!(
        "APPEND \"{nfd}\" {{{}+}}\r\n{message}",
        message.len()
    ));
    let selected = imap.ok(&format!("SELECT \"{nfc}\""));
    assert!(selected.contains("* 1 EXISTS"), "{selected}");
    let status = imap.ok(&format!("STATUS \"{nfd}\" (MESSAGES)"));
    assert!(
        status.contains(&format!("* STATUS \"{nfc}\" (MESSAGES 1)")),
        "{status}"
    );
    for pattern in ["Caf*", nfd] {
        let list = imap.ok(&format!("LIST \"\" \"{pattern}\""));
        assert!(
            list.contains(&format!("\"{nfc}\"")) && !list.contains(nfd),
            "{list}"
        );
    }
    // A client speaking modified UTF-7 sees the one folder by its stored name.
    let list = login(&server).ok("LIST \"\" \"Caf*\"");
    assert_eq!(list.matches("Caf&AOk-").count(), 1, "{list}");
}

#[test]
fn imaplib_utf8_names_binary_and_rev2() {
    let server = imap_server(PW, "");
    let mut imap = login(&server);
    let large: Vec<u8> = (0..1000u32).map(|i| (i % 200) as u8 + 20).collect();
    let content = encoded_parts(&large);
    imap.ok(&format!("APPEND INBOX {{{}+}}\r\n{content}", content.len()));
    let script = r#"
import imaplib, os
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]), timeout=10)
M.login("alice", os.environ["PW"])
M.enable("UTF8=ACCEPT")
M.enable("IMAP4rev2")
print("enabled", b" ".join(M.response("ENABLED")[1]).decode())
print("create", M.create('"Grüße.Köln"')[0], M.create('"Grüße"')[0])
print("list", sorted(l.decode() for l in M.list('""', '"Gr*"')[1]))
typ, data = M.select("INBOX")
print("select", typ, data[0].decode())
typ, data = M.fetch("1", "(BINARY.SIZE[2] BINARY.PEEK[2])")
print("binary", typ, data[0][0].decode(), ascii(data[0][1].decode()))
typ, data = M.uid("SEARCH", "RETURN", "(SAVE)", "ALL")
print("save", typ, data)
typ, data = M.fetch("$", "(UID)")
print("fetch", typ, [d.decode() for d in data])
print("delete", M.delete('"Grüße"')[1][0].decode())
M.logout()
"#;
    let stdout = imaplib(&server, script);
    let line = |key: &str| keyed(&stdout, key);
    assert_eq!(line("enabled"), "UTF8=ACCEPT IMAP4rev2");
    assert_eq!(line("create"), "OK OK");
    let list = line("list");
    assert!(
        list.contains("Grüße") && list.contains("Grüße.Köln"),
        "{list}"
    );
    assert!(!list.contains('&'), "{list}");
    assert!(line("select").starts_with("OK"), "{stdout}");
    let binary = line("binary");
    assert!(
        binary.contains("BINARY.SIZE[2] 16 BINARY[2] {16}"),
        "{binary}"
    );
    assert!(binary.ends_with(r"'caf\xe9\r\nsoftbreak'"), "{binary:?}");
    assert_eq!(line("save"), "OK [None]");
    assert_eq!(line("fetch"), "OK ['1 (UID 1)']");
    assert!(line("delete").starts_with("[HASCHILDREN]"), "{stdout}");
}

/// Runs the imaplib `script` against `server`'s IMAP listener (its `PORT` and alice's
/// `PW` in the environment) and returns what it printed; it must succeed.
fn imaplib(server: &TestServer, script: &str) -> String {
    python_with_imap(server, PW, script)
}

/// The rest of the line of `stdout` that starts with `key` and a space.
fn keyed(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"))
        .to_string()
}
