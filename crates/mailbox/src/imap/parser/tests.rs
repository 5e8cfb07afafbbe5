//! The command reader from bytes to requests: framing, grammar, dates, limits.

use super::super::command::*;
use super::dates::MONTHS;
use super::grammar::is_astring_char;
use super::*;
use proptest::prelude::*;

const MIB: usize = 1024 * 1024;

fn limits() -> Limits {
    Limits {
        max_line: 1024,
        max_literal: 4096,
        max_append: 2 * MIB,
    }
}

/// Every event the reader has, up to Incomplete.
fn drain(reader: &mut CommandReader) -> Vec<Input> {
    let mut events = Vec::new();
    loop {
        match reader.next() {
            Input::Incomplete => return events,
            event => events.push(event),
        }
    }
}

fn events(input: &[u8]) -> Vec<Input> {
    let mut reader = CommandReader::new(limits());
    reader.feed(input);
    drain(&mut reader)
}

/// The command of `input` + CRLF, which must parse with tag `a`.
fn command(input: &str) -> Command {
    let events: Vec<Input> = events(format!("{input}\r\n").as_bytes())
        .into_iter()
        .filter(|event| *event != Input::Continue)
        .collect();
    match events.as_slice() {
        [Input::Request(request)] if request.tag == "a" => request.command.clone(),
        other => panic!("{input:?} gave {other:?}"),
    }
}

/// The BAD message of `input` + CRLF, which must be tagged `a`.
fn bad(input: &str) -> String {
    let events: Vec<Input> = events(format!("{input}\r\n").as_bytes())
        .into_iter()
        .filter(|event| *event != Input::Continue)
        .collect();
    match events.as_slice() {
        [Input::Bad { tag, message }] if tag.as_deref() == Some("a") => message.clone(),
        other => panic!("{input:?} gave {other:?}"),
    }
}

fn set(ranges: &[(u32, u32)]) -> SequenceSet {
    let number = |n| {
        if n == 0 {
            SeqNumber::Last
        } else {
            SeqNumber::Value(n)
        }
    };
    SequenceSet(
        ranges
            .iter()
            .map(|&(start, end)| SeqRange {
                start: number(start),
                end: number(end),
            })
            .collect(),
    )
}

fn fetch_items(input: &str) -> Vec<FetchAttribute> {
    match command(input) {
        Command::Fetch { items, .. } => items,
        other => panic!("{other:?}"),
    }
}

fn criteria(input: &str) -> Vec<SearchKey> {
    match command(input) {
        Command::Search {
            criteria: SearchKey::And(keys),
            ..
        } => keys,
        other => panic!("{other:?}"),
    }
}

fn one_key(input: &str) -> SearchKey {
    match criteria(input).as_slice() {
        [key] => key.clone(),
        other => panic!("{other:?}"),
    }
}

fn date(year: u16, month: u8, day: u8) -> Date {
    Date { year, month, day }
}

fn section(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

fn body(peek: bool, section: Section, partial: Option<(u32, u32)>) -> FetchAttribute {
    FetchAttribute::BodySection {
        peek,
        section,
        partial,
    }
}

#[test]
fn commands_without_arguments() {
    let cases = [
        ("CAPABILITY", Command::Capability),
        ("noop", Command::Noop),
        ("Logout", Command::Logout),
        ("STARTTLS", Command::StartTls),
        ("CHECK", Command::Check),
        ("CLOSE", Command::Close),
        ("UNSELECT", Command::Unselect),
        ("EXPUNGE", Command::Expunge { uids: None }),
        ("IDLE", Command::Idle),
        ("NAMESPACE", Command::Namespace),
    ];
    for (name, expected) in cases {
        assert_eq!(command(&format!("a {name}")), expected);
        assert_eq!(
            bad(&format!("a {name} extra")),
            "unexpected text after the command"
        );
    }
}

#[test]
fn tags() {
    assert_eq!(
        events(b"A001.x] NOOP\r\n"),
        [Input::Request(Request {
            tag: "A001.x]".into(),
            command: Command::Noop
        })]
    );
    for line in ["+ NOOP", "a+b NOOP", " NOOP", "NOOP", "a(b NOOP"] {
        assert!(
            matches!(
                events(format!("{line}\r\n").as_bytes()).as_slice(),
                [Input::Bad { tag: None, .. }]
            ),
            "{line}"
        );
    }
    assert_eq!(
        events(b"a\r\n"),
        [Input::Bad {
            tag: None,
            message: "expected SP after the tag".into()
        }]
    );
}

#[test]
fn unknown_command() {
    assert_eq!(bad("a FOO bar"), "unknown command FOO");
    assert_eq!(bad("a UID FOO 1"), "unknown UID command FOO");
    assert_eq!(bad("a  NOOP"), "expected a command name");
}

#[test]
fn empty_lines_are_ignored() {
    assert_eq!(
        events(b"\r\n\n\r\na NOOP\r\n"),
        [Input::Request(Request {
            tag: "a".into(),
            command: Command::Noop
        })]
    );
}

#[test]
fn bare_lf_ends_a_command() {
    assert_eq!(command("a NOOP\n"), Command::Noop);
}

#[test]
fn id() {
    assert_eq!(command("a ID NIL"), Command::Id(vec![]));
    assert_eq!(command("a ID ()"), Command::Id(vec![]));
    assert_eq!(
        command(r#"a ID ("name" "x" "version" NIL)"#),
        Command::Id(vec![
            ("name".into(), Some("x".into())),
            ("version".into(), None)
        ])
    );
    assert_eq!(
        command(r#"a ID ("name" "NIL")"#),
        Command::Id(vec![("name".into(), Some("NIL".into()))])
    );
    bad(r#"a ID ("name")"#);
    bad("a ID");
}

#[test]
fn enable() {
    assert_eq!(
        command("a ENABLE CONDSTORE UTF8=ACCEPT"),
        Command::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()])
    );
    bad("a ENABLE");
}

#[test]
fn login() {
    let login = |user: &str, password: &str| Command::Login {
        user: user.into(),
        password: password.into(),
    };
    assert_eq!(command("a LOGIN joe secret"), login("joe", "secret"));
    assert_eq!(
        command(r#"a login "joe smith" "pa\"ss\\word""#),
        login("joe smith", r#"pa"ss\word"#)
    );
    assert_eq!(
        command("a LOGIN {3}\r\njoe {6}\r\nse\r\nct"),
        login("joe", "se\r\nct")
    );
    assert_eq!(command("a LOGIN {3+}\r\njoe \"\""), login("joe", ""));
    assert_eq!(
        command("a LOGIN \"\u{e9}t\u{e9}\" x"),
        login("\u{e9}t\u{e9}", "x")
    );
    bad("a LOGIN joe");
    bad(r#"a LOGIN "joe secret"#);
    bad(r#"a LOGIN "j\oe" secret"#);
    bad("a LOGIN {3}\r\nj\0e x");
    bad("a LOGIN {1}\r\n\u{ff} x");
    bad("a LOGIN joe{6}\r\nsecret");
}

#[test]
fn authenticate() {
    assert_eq!(
        command("a AUTHENTICATE plain"),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial: None
        }
    );
    assert_eq!(
        command("a AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ="),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some("AGpvZQBzZWNyZXQ=".into())
        }
    );
    assert_eq!(
        command("a AUTHENTICATE EXTERNAL ="),
        Command::Authenticate {
            mechanism: "EXTERNAL".into(),
            initial: Some("=".into())
        }
    );
    bad("a AUTHENTICATE");
}

#[test]
fn select_and_examine() {
    let select = |mailbox: &str, read_only| Command::Select {
        mailbox: mailbox.into(),
        read_only,
        params: SelectParams::default(),
    };
    let with = |params: SelectParams| Command::Select {
        mailbox: "INBOX".into(),
        read_only: false,
        params,
    };
    assert_eq!(command("a SELECT INBOX"), select("INBOX", false));
    assert_eq!(command("a EXAMINE inbox"), select("inbox", true));
    assert_eq!(
        command(r#"a SELECT "Sent Items""#),
        select("Sent Items", false)
    );
    assert_eq!(command("a SELECT {5}\r\nDraft"), select("Draft", false));
    assert_eq!(
        command("a SELECT INBOX (CONDSTORE)"),
        with(SelectParams {
            condstore: true,
            qresync: None
        })
    );
    let qresync = |known_uids: Option<SequenceSet>| {
        with(SelectParams {
            condstore: false,
            qresync: Some(Qresync {
                uid_validity: 67890007,
                modseq: 20050715194045000,
                known_uids,
            }),
        })
    };
    let known = Some(set(&[(41, 41), (43, 211)]));
    assert_eq!(
        command("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1:* 1:2)))"),
        qresync(known.clone())
    );
    assert_eq!(
        command("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))"),
        qresync(known)
    );
    assert_eq!(
        command("a select INBOX (qresync (67890007 20050715194045000))"),
        qresync(None)
    );
    assert_eq!(
        command("a SELECT INBOX (QRESYNC (67890007 20050715194045000 (1,5 3,9)))"),
        qresync(None)
    );
    bad("a SELECT INBOX (QRESYNC (0 5))");
    bad("a SELECT INBOX (QRESYNC (1 9223372036854775808))");
    bad("a SELECT INBOX (QRESYNC (1 5 1:3 (1:2)))");
    bad("a SELECT INBOX (BOGUS)");
    assert_eq!(
        command("a SELECT &AMk-t&AOk-"),
        select("&AMk-t&AOk-", false)
    );
    bad("a SELECT");
    bad("a SELECT INBOX (CONDSTORE");
    bad("a SELECT INBOX CONDSTORE");
    bad(&format!("a SELECT INBOX {}", "(".repeat(40)));
}

#[test]
fn mailbox_commands() {
    assert_eq!(command("a CREATE foo"), Command::Create("foo".into()));
    assert_eq!(command(r#"a DELETE "a b""#), Command::Delete("a b".into()));
    assert_eq!(command("a SUBSCRIBE x"), Command::Subscribe("x".into()));
    assert_eq!(command("a UNSUBSCRIBE x"), Command::Unsubscribe("x".into()));
    assert_eq!(
        command("a RENAME old {3}\r\nnew"),
        Command::Rename {
            from: "old".into(),
            to: "new".into()
        }
    );
    assert_eq!(
        command(r#"a LSUB "" *"#),
        Command::Lsub {
            reference: "".into(),
            pattern: "*".into()
        }
    );
    bad("a CREATE");
    bad("a RENAME a");
    bad("a CREATE a%");
}

#[test]
fn list() {
    let list = |reference: &str, patterns: &[&str]| ListCommand {
        reference: reference.into(),
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        ..ListCommand::default()
    };
    assert_eq!(command(r#"a LIST "" *"#), Command::List(list("", &["*"])));
    assert_eq!(command(r#"a LIST "" """#), Command::List(list("", &[""])));
    assert_eq!(
        command("a LIST ~/Mail/ %/x*"),
        Command::List(list("~/Mail/", &["%/x*"]))
    );
    assert_eq!(
        command(r#"a LIST "" (INBOX "Sent*" %)"#),
        Command::List(ListCommand {
            extended: true,
            ..list("", &["INBOX", "Sent*", "%"])
        })
    );
    assert_eq!(
        command(
            r#"a LIST (SUBSCRIBED SPECIAL-USE RECURSIVEMATCH REMOTE) "" * RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))"#
        ),
        Command::List(ListCommand {
            subscribed: true,
            special_use: true,
            return_subscribed: true,
            return_children: true,
            return_special_use: true,
            return_status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
            recursive_match: true,
            extended: true,
            ..list("", &["*"])
        })
    );
    assert_eq!(
        command(r#"a list () "" % return ()"#),
        Command::List(ListCommand {
            extended: true,
            ..list("", &["%"])
        })
    );
    // RFC 5258 §3: RECURSIVEMATCH must come with a selection option other than REMOTE.
    bad("a LIST (RECURSIVEMATCH) \"\" \"\"");
    bad("a LIST (RECURSIVEMATCH REMOTE) \"\" *");
    assert!(bad("a LIST (FOO) \"\" *").contains("FOO"));
    assert!(bad("a LIST \"\" * RETURN (FOO)").contains("FOO"));
    bad("a LIST \"\" * (CHILDREN)");
    bad("a LIST \"\" ()");
    bad("a LIST \"\"");
}

#[test]
fn status() {
    use StatusItem::*;
    assert_eq!(
        command("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED)"),
        Command::Status {
            mailbox: "INBOX".into(),
            items: vec![
                Messages,
                Recent,
                UidNext,
                UidValidity,
                Unseen,
                Size,
                Deleted
            ]
        }
    );
    assert_eq!(
        bad("a STATUS INBOX (MESSAGES FOO)"),
        "unknown status item FOO"
    );
    bad("a STATUS INBOX ()");
    bad("a STATUS INBOX MESSAGES");
}

#[test]
fn append() {
    assert_eq!(
        command(
            "a APPEND saved-messages (\\Seen $Forwarded) \"17-Jul-1996 02:44:25 -0700\" {5}\r\nHello"
        ),
        Command::Append {
            mailbox: "saved-messages".into(),
            messages: vec![AppendMessage {
                flags: vec![Flag::Seen, Flag::Keyword("$Forwarded".into())],
                date: Some(837_596_665),
                message: b"Hello".to_vec(),
                binary: false,
                utf8: false,
            }],
        }
    );
    assert_eq!(
        command("a APPEND INBOX {4+}\r\n\0\r\n\x01"),
        Command::Append {
            mailbox: "INBOX".into(),
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                message: b"\0\r\n\x01".to_vec(),
                binary: false,
                utf8: false,
            }],
        }
    );
    assert_eq!(
        command("a APPEND {5}\r\nDraft () {0}\r\n"),
        Command::Append {
            mailbox: "Draft".into(),
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                message: vec![],
                binary: false,
                utf8: false,
            }],
        }
    );
}

#[test]
fn multiappend() {
    assert_eq!(
        command("a APPEND x (\\Seen) {1}\r\nm {2+}\r\nno \"1-Jan-1970 00:00:00 +0000\" {0}\r\n"),
        Command::Append {
            mailbox: "x".into(),
            messages: vec![
                AppendMessage {
                    flags: vec![Flag::Seen],
                    date: None,
                    message: b"m".to_vec(),
                    binary: false,
                    utf8: false,
                },
                AppendMessage {
                    flags: vec![],
                    date: None,
                    message: b"no".to_vec(),
                    binary: false,
                    utf8: false,
                },
                AppendMessage {
                    flags: vec![],
                    date: Some(0),
                    message: vec![],
                    binary: false,
                    utf8: false,
                },
            ],
        }
    );
}

#[test]
fn append_flags() {
    let flags = |input: &str| match command(&format!("a APPEND x ({input}) {{1}}\r\nm")) {
        Command::Append { mut messages, .. } => messages.remove(0).flags,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        flags("\\seen \\ANSWERED \\Flagged \\Deleted \\Draft \\Recent Junk"),
        vec![
            Flag::Seen,
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Draft,
            Flag::Recent,
            Flag::Keyword("Junk".into())
        ]
    );
    assert_eq!(
        bad("a APPEND x (\\Foo) {1}\r\nm"),
        "unknown system flag \\Foo"
    );
    bad("a APPEND x (\\*) {1}\r\nm");
}

#[test]
fn append_dates() {
    let date = |input: &str| match command(&format!("a APPEND x \"{input}\" {{1}}\r\nm")) {
        Command::Append { mut messages, .. } => messages.remove(0).date,
        other => panic!("{other:?}"),
    };
    let july_7 = Some(1_720_326_600);
    assert_eq!(date(" 7-Jul-2024 10:00:00 +0530"), july_7);
    assert_eq!(date("07-jul-2024 10:00:00 +0530"), july_7);
    assert_eq!(date("7-JUL-2024 10:00:00 +0530"), july_7);
    assert_eq!(date("01-Jan-1970 00:00:00 +0000"), Some(0));
    assert_eq!(date("29-Feb-2024 00:00:00 +0000"), Some(1_709_164_800));
    for invalid in [
        "30-Feb-2024 00:00:00 +0000",
        "29-Feb-2023 00:00:00 +0000",
        "32-Jan-2024 00:00:00 +0000",
        "0-Jan-2024 00:00:00 +0000",
        "1-Foo-2024 00:00:00 +0000",
        "1-Jan-24 00:00:00 +0000",
        "1-Jan-2024 24:00:00 +0000",
        "1-Jan-2024 00:60:00 +0000",
        "1-Jan-2024 0:00:00 +0000",
        "1-Jan-2024 00:00:00 0000",
        "1-Jan-2024 00:00:00 +00000",
        "1-Jan-2024 00:00:00 +0060",
        "1-Jan-2024 00:00:00:00 +0000",
        "1-Jan-2024",
        "",
    ] {
        assert!(
            bad(&format!("a APPEND x \"{invalid}\" {{1}}\r\nm")).starts_with("invalid date-time"),
            "{invalid}"
        );
    }
}

#[test]
fn append_errors() {
    assert_eq!(
        bad("a APPEND x {1}\r\nm "),
        "expected the message as a literal"
    );
    assert_eq!(bad("a APPEND x hello"), "expected the message as a literal");
    assert_eq!(bad("a APPEND x \"hello\""), "invalid date-time \"hello\"");
    bad("a APPEND x");
    bad("a APPEND x {1}\r\nmjunk");
}

#[test]
fn sequence_sets() {
    let fetch_set = |input: &str| match command(&format!("a FETCH {input} FLAGS")) {
        Command::Fetch { set, .. } => set,
        other => panic!("{other:?}"),
    };
    assert_eq!(fetch_set("1"), set(&[(1, 1)]));
    assert_eq!(fetch_set("1:5"), set(&[(1, 5)]));
    assert_eq!(fetch_set("5:1"), set(&[(5, 1)]));
    assert_eq!(fetch_set("*"), set(&[(0, 0)]));
    assert_eq!(fetch_set("1:*"), set(&[(1, 0)]));
    assert_eq!(fetch_set("1,3:4,7:*"), set(&[(1, 1), (3, 4), (7, 0)]));
    assert_eq!(fetch_set("4294967295"), set(&[(u32::MAX, u32::MAX)]));
    for invalid in ["0", "1:0", "1,", ",1", "1:", "a", "1;2", "-1"] {
        bad(&format!("a FETCH {invalid} FLAGS"));
    }
    assert_eq!(
        bad("a FETCH 99999999999 FLAGS"),
        "number 99999999999 is too large"
    );
    assert_eq!(
        bad("a FETCH 4294967296 FLAGS"),
        "number 4294967296 is too large"
    );
    assert!(bad(&format!("a FETCH 1:{} FLAGS", "9".repeat(500))).contains("too large"));
}

#[test]
fn fetch_macros() {
    use FetchAttribute::*;
    assert_eq!(
        fetch_items("a FETCH 1 FAST"),
        vec![Flags, InternalDate, Rfc822Size]
    );
    assert_eq!(
        fetch_items("a FETCH 1 all"),
        vec![Flags, InternalDate, Rfc822Size, Envelope]
    );
    assert_eq!(
        fetch_items("a FETCH 1 Full"),
        vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
    );
    bad("a FETCH 1 (ALL)");
    bad("a FETCH 1 (FLAGS FAST)");
}

#[test]
fn fetch_items_simple() {
    use FetchAttribute::*;
    assert_eq!(
        fetch_items(
            "a FETCH 1:* (FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER RFC822.TEXT)"
        ),
        vec![
            Flags,
            Uid,
            InternalDate,
            Rfc822Size,
            Envelope,
            Body,
            BodyStructure,
            Rfc822,
            Rfc822Header,
            Rfc822Text
        ]
    );
    assert_eq!(fetch_items("a fetch 2 uid"), vec![Uid]);
    assert_eq!(
        command("a UID FETCH 1:5 (FLAGS)"),
        Command::Fetch {
            uid: true,
            set: set(&[(1, 5)]),
            items: vec![Flags],
            modifiers: FetchModifiers::default(),
        }
    );
}

#[test]
fn condstore_arguments() {
    use FetchAttribute::*;
    assert_eq!(
        command("a UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)"),
        Command::Fetch {
            uid: true,
            set: SequenceSet(vec![SeqRange {
                start: SeqNumber::Value(1),
                end: SeqNumber::Last
            }]),
            items: vec![Flags, ModSeq],
            modifiers: FetchModifiers {
                changed_since: Some(12345),
                vanished: true
            },
        }
    );
    assert_eq!(
        fetch_items("a FETCH 1 modseq (changedsince 0)"),
        vec![ModSeq]
    );
    bad("a UID FETCH 1 FLAGS (VANISHED)");
    bad("a FETCH 1 FLAGS (CHANGEDSINCE)");
    bad("a FETCH 1 FLAGS (BOGUS 1)");
    assert_eq!(
        command("a STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Deleted)"),
        Command::Store {
            uid: false,
            set: set(&[(1, 3)]),
            operation: StoreOperation::Add,
            silent: true,
            flags: vec![Flag::Deleted],
            unchanged_since: Some(0),
        }
    );
    let search = |text: &str| match command(text) {
        Command::Search { criteria, .. } => criteria,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        search("a SEARCH MODSEQ 7"),
        SearchKey::And(vec![SearchKey::ModSeq(7)])
    );
    assert_eq!(
        search(r#"a SEARCH MODSEQ "/flags/\\draft" all 620162338 SEEN"#),
        SearchKey::And(vec![
            SearchKey::ModSeq(620162338),
            SearchKey::Flag(Flag::Seen)
        ])
    );
    bad(r#"a SEARCH MODSEQ "/flags/\\draft" mine 5"#);
    assert_eq!(
        command("a STATUS INBOX (HIGHESTMODSEQ MESSAGES)"),
        Command::Status {
            mailbox: "INBOX".into(),
            items: vec![StatusItem::HighestModSeq, StatusItem::Messages],
        }
    );
}

#[test]
fn fetch_sections() {
    use SectionText::*;
    assert_eq!(
        fetch_items("a FETCH 1 BODY[]"),
        vec![body(false, section(&[], None), None)]
    );
    assert_eq!(
        fetch_items(
            "a FETCH 1 (BODY.PEEK[HEADER] BODY[TEXT] body[1.2] BODY[1.2.MIME] BODY[1.HEADER] BODY[3.TEXT])"
        ),
        vec![
            body(true, section(&[], Some(Header)), None),
            body(false, section(&[], Some(Text)), None),
            body(false, section(&[1, 2], None), None),
            body(false, section(&[1, 2], Some(Mime)), None),
            body(false, section(&[1], Some(Header)), None),
            body(false, section(&[3], Some(Text)), None),
        ]
    );
    assert_eq!(
        fetch_items(
            "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To \"Message-ID\")] BODY[2.header.fields.not (X-A)])"
        ),
        vec![
            body(
                true,
                section(
                    &[],
                    Some(HeaderFields {
                        not: false,
                        fields: vec!["FROM".into(), "TO".into(), "MESSAGE-ID".into()]
                    })
                ),
                None
            ),
            body(
                false,
                section(
                    &[2],
                    Some(HeaderFields {
                        not: true,
                        fields: vec!["X-A".into()]
                    })
                ),
                None
            ),
        ]
    );
    assert_eq!(
        fetch_items("a FETCH 1 BODY[]<0.100>"),
        vec![body(false, section(&[], None), Some((0, 100)))]
    );
    assert_eq!(
        fetch_items("a FETCH 1 (BODY.PEEK[1]<4294967295.4294967295> FLAGS)"),
        vec![
            body(true, section(&[1], None), Some((u32::MAX, u32::MAX))),
            FetchAttribute::Flags
        ]
    );
}

#[test]
fn fetch_errors() {
    assert_eq!(bad("a FETCH 1 BODY[MIME]"), "MIME needs a part number");
    assert_eq!(bad("a FETCH 1 FOO"), "unknown fetch item FOO");
    for invalid in [
        "a FETCH 1 BODY.PEEK",
        "a FETCH 1 BODY[",
        "a FETCH 1 BODY[0]",
        "a FETCH 1 BODY[1.]",
        "a FETCH 1 BODY[FOO]",
        "a FETCH 1 BODY[HEADER.FIELDS]",
        "a FETCH 1 BODY[HEADER.FIELDS ()]",
        "a FETCH 1 BODY[]<0>",
        "a FETCH 1 BODY[]<0.0>",
        "a FETCH 1 BODY[]<4294967296.1>",
        "a FETCH 1 BODY[]<1.99999999999999999999999>",
        "a FETCH 1 ()",
        "a FETCH 1 (FLAGS",
        "a FETCH 1 (FLAGS) (CHANGEDSINCE x)",
        "a FETCH 1",
        "a FETCH FLAGS",
        "a FETCH 1 BINARY.SIZE[1]<0.5>",
        "a FETCH 1 BINARY[0]",
    ] {
        bad(invalid);
    }
}

#[test]
fn store() {
    let store = |operation, silent, flags: Vec<Flag>| Command::Store {
        uid: false,
        set: set(&[(1, 3)]),
        operation,
        silent,
        flags,
        unchanged_since: None,
    };
    assert_eq!(
        command("a STORE 1:3 FLAGS (\\Seen $Junk)"),
        store(
            StoreOperation::Replace,
            false,
            vec![Flag::Seen, Flag::Keyword("$Junk".into())]
        )
    );
    assert_eq!(
        command("a STORE 1:3 +flags.silent (\\Deleted)"),
        store(StoreOperation::Add, true, vec![Flag::Deleted])
    );
    assert_eq!(
        command("a STORE 1:3 -FLAGS \\Seen \\Flagged"),
        store(
            StoreOperation::Remove,
            false,
            vec![Flag::Seen, Flag::Flagged]
        )
    );
    assert_eq!(
        command("a STORE 1:3 FLAGS.SILENT ()"),
        store(StoreOperation::Replace, true, vec![])
    );
    assert_eq!(
        command("a UID STORE 1:3 +FLAGS \\Seen"),
        Command::Store {
            uid: true,
            set: set(&[(1, 3)]),
            operation: StoreOperation::Add,
            silent: false,
            flags: vec![Flag::Seen],
            unchanged_since: None,
        }
    );
    assert_eq!(bad("a STORE 1 +FLAGZ \\Seen"), "unknown STORE item +FLAGZ");
    bad("a STORE 1 FLAGS");
    bad("a STORE 1 FLAGS \\Bogus");
    bad("a STORE 1 (UNCHANGEDSINCE) FLAGS \\Seen");
    bad("a STORE 1 FLAGS (\\Seen");
}

#[test]
fn copy_move_expunge() {
    assert_eq!(
        command("a COPY 2:4 MEETING"),
        Command::Copy {
            uid: false,
            set: set(&[(2, 4)]),
            mailbox: "MEETING".into()
        }
    );
    assert_eq!(
        command("a UID MOVE 1,* \"Deleted Items\""),
        Command::Move {
            uid: true,
            set: set(&[(1, 1), (0, 0)]),
            mailbox: "Deleted Items".into()
        }
    );
    assert_eq!(
        command("a move 1 Trash"),
        Command::Move {
            uid: false,
            set: set(&[(1, 1)]),
            mailbox: "Trash".into()
        }
    );
    assert_eq!(
        command("a UID COPY 7 x"),
        Command::Copy {
            uid: true,
            set: set(&[(7, 7)]),
            mailbox: "x".into()
        }
    );
    assert_eq!(
        command("a UID EXPUNGE 3000:3002"),
        Command::Expunge {
            uids: Some(set(&[(3000, 3002)]))
        }
    );
    bad("a UID EXPUNGE");
    bad("a COPY 1");
}

#[test]
fn search_simple_keys() {
    use SearchKey as K;
    let cases = [
        ("ALL", K::All),
        ("answered", K::Flag(Flag::Answered)),
        ("DELETED", K::Flag(Flag::Deleted)),
        ("DRAFT", K::Flag(Flag::Draft)),
        ("FLAGGED", K::Flag(Flag::Flagged)),
        ("SEEN", K::Flag(Flag::Seen)),
        ("RECENT", K::Flag(Flag::Recent)),
        ("NEW", K::New),
        ("OLD", K::Old),
        ("UNANSWERED", K::NotFlag(Flag::Answered)),
        ("UNDELETED", K::NotFlag(Flag::Deleted)),
        ("UNDRAFT", K::NotFlag(Flag::Draft)),
        ("UNFLAGGED", K::NotFlag(Flag::Flagged)),
        ("UNSEEN", K::NotFlag(Flag::Seen)),
        ("KEYWORD $Junk", K::Flag(Flag::Keyword("$Junk".into()))),
        ("UNKEYWORD foo", K::NotFlag(Flag::Keyword("foo".into()))),
        ("FROM joe", K::Header("FROM".into(), "joe".into())),
        ("to \"a b\"", K::Header("TO".into(), "a b".into())),
        ("CC x", K::Header("CC".into(), "x".into())),
        ("BCC x", K::Header("BCC".into(), "x".into())),
        (
            "SUBJECT {4}\r\nmeet",
            K::Header("SUBJECT".into(), "meet".into()),
        ),
        ("HEADER x-spam \"\"", K::Header("X-SPAM".into(), "".into())),
        ("BODY hello", K::Body("hello".into())),
        ("TEXT \"hi there\"", K::Text("hi there".into())),
        ("BEFORE 1-Feb-1994", K::Before(date(1994, 2, 1))),
        ("ON 01-feb-1994", K::On(date(1994, 2, 1))),
        ("SINCE \"31-Dec-2023\"", K::Since(date(2023, 12, 31))),
        ("SENTBEFORE 1-Jan-2000", K::SentBefore(date(2000, 1, 1))),
        ("SENTON 15-Jun-2010", K::SentOn(date(2010, 6, 15))),
        ("SENTSINCE 9-Sep-1999", K::SentSince(date(1999, 9, 9))),
        ("LARGER 10000", K::Larger(10000)),
        ("SMALLER 18446744073709551615", K::Smaller(u64::MAX)),
        ("UID 1:*", K::Uid(set(&[(1, 0)]))),
        ("2,4:7", K::Sequence(set(&[(2, 2), (4, 7)]))),
        ("*", K::Sequence(set(&[(0, 0)]))),
        ("NOT SEEN", K::Not(Box::new(K::Flag(Flag::Seen)))),
        (
            "OR SEEN FROM x",
            K::Or(
                Box::new(K::Flag(Flag::Seen)),
                Box::new(K::Header("FROM".into(), "x".into())),
            ),
        ),
        (
            "(SEEN 1:2)",
            K::And(vec![K::Flag(Flag::Seen), K::Sequence(set(&[(1, 2)]))]),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(one_key(&format!("a SEARCH {input}")), expected, "{input}");
    }
}

#[test]
fn search_combinations() {
    use SearchKey as K;
    assert_eq!(
        command("a UID SEARCH CHARSET utf-8 UNSEEN (OR FROM a NOT TO b) SINCE 1-Jan-2024"),
        Command::Search {
            uid: true,
            charset: Some("UTF-8".into()),
            criteria: K::And(vec![
                K::NotFlag(Flag::Seen),
                K::And(vec![K::Or(
                    Box::new(K::Header("FROM".into(), "a".into())),
                    Box::new(K::Not(Box::new(K::Header("TO".into(), "b".into()))))
                )]),
                K::Since(date(2024, 1, 1)),
            ]),
            returning: None,
        }
    );
    assert_eq!(
        command("a SEARCH ALL"),
        Command::Search {
            uid: false,
            charset: None,
            criteria: K::And(vec![K::All]),
            returning: None,
        }
    );
}

#[test]
fn search_return_sort_and_thread() {
    use SearchKey as K;
    let all = K::And(vec![K::All]);
    assert_eq!(
        command("a UID SEARCH RETURN (min COUNT) CHARSET UTF-8 ALL"),
        Command::Search {
            uid: true,
            charset: Some("UTF-8".into()),
            criteria: all.clone(),
            returning: Some(SearchReturn {
                min: true,
                count: true,
                ..SearchReturn::default()
            }),
        }
    );
    match command("a SEARCH RETURN () ALL") {
        Command::Search {
            returning: Some(returning),
            ..
        } => assert!(returning.all && !returning.min && !returning.count),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        command("a UID SORT (REVERSE date subject) utf-8 ALL"),
        Command::Sort {
            uid: true,
            order: vec![
                SortCriterion {
                    reverse: true,
                    key: SortKey::Date,
                },
                SortCriterion {
                    reverse: false,
                    key: SortKey::Subject,
                },
            ],
            charset: "UTF-8".into(),
            criteria: all.clone(),
        }
    );
    assert_eq!(
        command("a THREAD REFERENCES US-ASCII ALL"),
        Command::Thread {
            uid: false,
            algorithm: ThreadAlgorithm::References,
            charset: "US-ASCII".into(),
            criteria: all,
        }
    );
    assert_eq!(
        command("a UID SEARCH RETURN (SAVE MIN) $"),
        Command::Search {
            uid: true,
            charset: None,
            criteria: SearchKey::And(vec![SearchKey::Sequence(SequenceSet::saved())]),
            returning: Some(SearchReturn {
                min: true,
                save: true,
                ..SearchReturn::default()
            }),
        }
    );
    assert_eq!(
        command("a UID FETCH $ FLAGS"),
        Command::Fetch {
            uid: true,
            set: SequenceSet::saved(),
            items: vec![FetchAttribute::Flags],
            modifiers: FetchModifiers::default(),
        }
    );
    assert_eq!(bad("a SORT (ARRIVAL REVERSE) UTF-8 ALL"), "expected SP");
    assert_eq!(bad("a SORT () UTF-8 ALL"), "expected a sort key");
    assert_eq!(bad("a THREAD X UTF-8 ALL"), "unknown thread algorithm X");
    bad("a SORT (DATE) UTF-8");
}

#[test]
fn quota_commands() {
    assert_eq!(command("a GETQUOTA \"\""), Command::GetQuota(String::new()));
    assert_eq!(
        command("a GETQUOTAROOT INBOX"),
        Command::GetQuotaRoot("INBOX".into())
    );
    assert_eq!(
        command("a SETQUOTA \"\" (STORAGE 512)"),
        Command::SetQuota(String::new())
    );
    bad("a SETQUOTA \"\" (STORAGE)");
}

#[test]
fn search_errors() {
    assert_eq!(bad("a SEARCH FOO"), "unknown search key FOO");
    for invalid in [
        "a SEARCH",
        "a SEARCH ",
        "a SEARCH ALL ",
        "a SEARCH CHARSET UTF-8",
        "a SEARCH ()",
        "a SEARCH (ALL",
        "a SEARCH OR ALL",
        "a SEARCH NOT",
        "a SEARCH 0",
        "a SEARCH KEYWORD \\Seen",
        "a SEARCH HEADER From",
        "a SEARCH ON 32-Jan-2000",
        "a SEARCH ON 0-Jan-2000",
        "a SEARCH ON 1-Foo-2000",
        "a SEARCH ON 1-Jan-20",
        "a SEARCH ON 1-Jan-2000-1",
        "a SEARCH ON 123-Jan-2000",
        "a SEARCH LARGER 18446744073709551616",
        "a SEARCH LARGER x",
        "a SEARCH $:4",
        "a FETCH $,1 FLAGS",
    ] {
        bad(invalid);
    }
}

#[test]
fn nesting_is_bounded() {
    let nested = |depth: usize| format!("a SEARCH {}ALL{}", "(".repeat(depth), ")".repeat(depth));
    assert!(matches!(command(&nested(10)), Command::Search { .. }));
    assert_eq!(bad(&nested(40)), "search keys nested deeper than 32");
    assert_eq!(
        bad(&format!("a SEARCH {}ALL", "NOT ".repeat(200))),
        "search keys nested deeper than 32"
    );
    assert_eq!(
        bad(&format!("a SEARCH {}ALL", "OR ALL ".repeat(100))),
        "search keys nested deeper than 32"
    );
}

#[test]
fn literal_across_feeds() {
    let input = b"a LOGIN {5}\r\nhe\r\no {3+}\r\nx y\r\n";
    let expected = Command::Login {
        user: "he\r\no".into(),
        password: "x y".into(),
    };
    for chunk in [1, 2, 3, 7, 13] {
        let mut reader = CommandReader::new(limits());
        let mut events = Vec::new();
        for piece in input.chunks(chunk) {
            reader.feed(piece);
            events.extend(drain(&mut reader));
        }
        assert_eq!(
            events,
            [
                Input::Continue,
                Input::Request(Request {
                    tag: "a".into(),
                    command: expected.clone()
                })
            ],
            "chunks of {chunk}"
        );
        assert_eq!(reader.buffered(), 0);
    }
}

#[test]
fn pipelined_commands() {
    let events = events(b"a NOOP\r\nb LOGIN {1+}\r\nx y\r\nc CAPABILITY\r\nd LOGOUT\r\ne NO");
    let tags: Vec<&str> = events
        .iter()
        .map(|event| match event {
            Input::Request(request) => request.tag.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tags, ["a", "b", "c", "d"]);
}

#[test]
fn sync_literal_continues_before_its_data() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a CREATE {4}\r\n");
    assert_eq!(reader.next(), Input::Continue);
    assert_eq!(reader.next(), Input::Incomplete);
    reader.feed(b"Test\r\n");
    assert_eq!(
        reader.next(),
        Input::Request(Request {
            tag: "a".into(),
            command: Command::Create("Test".into())
        })
    );
    assert_eq!(reader.next(), Input::Incomplete);
}

#[test]
fn non_sync_literal_does_not_continue() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a CREATE {4+}\r\n");
    assert_eq!(reader.next(), Input::Incomplete);
    reader.feed(b"Test\r\n");
    assert!(matches!(reader.next(), Input::Request(_)));
}

#[test]
fn zero_length_literal() {
    assert_eq!(command("a CREATE {0}\r\n"), Command::Create(String::new()));
}

#[test]
fn append_size_limits() {
    let message = vec![b'x'; MIB];
    let mut reader = CommandReader::new(limits());
    reader.feed(format!("a APPEND INBOX {{{}}}\r\n", message.len()).as_bytes());
    assert_eq!(reader.next(), Input::Continue);
    for chunk in message.chunks(4096) {
        reader.feed(chunk);
        assert_eq!(reader.next(), Input::Incomplete);
    }
    reader.feed(b"\r\n");
    match reader.next() {
        Input::Request(Request {
            command: Command::Append { messages, .. },
            ..
        }) => assert_eq!(messages[0].message, message),
        other => panic!("{other:?}"),
    }

    let mut reader = CommandReader::new(limits());
    reader.feed(format!("a append INBOX {{{}}}\r\n", 3 * MIB).as_bytes());
    assert_eq!(
        reader.next(),
        Input::TooBig {
            tag: Some("a".into()),
            message: "literal of 3145728 bytes is over the limit of 2097152".into()
        }
    );
    assert_eq!(reader.buffered(), 0);
    reader.feed(b"b NOOP\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));

    let mut reader = CommandReader::new(limits());
    reader.feed(format!("a APPEND INBOX {{{}+}}\r\n", 3 * MIB).as_bytes());
    assert!(matches!(reader.next(), Input::Fatal { .. }));
    reader.feed(&vec![b'x'; 64 * 1024]);
    assert_eq!(reader.next(), Input::Incomplete);
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn new_limits_apply_from_the_next_command() {
    let small = Limits {
        max_line: 64,
        max_literal: 16,
        max_append: 16,
    };
    let mut reader = CommandReader::new(small);
    reader.feed(b"a LOGIN u p\r\nb APPEND INBOX {1000+}\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "a"));
    reader.set_limits(limits());
    assert_eq!(reader.next(), Input::Incomplete);
    reader.feed(&[b'x'; 1000]);
    reader.feed(b"\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));

    let mut reader = CommandReader::new(small);
    reader.feed(b"a APPEND INBOX {17}\r\n");
    assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "a"));
    reader.feed(format!("b LOGIN {}\r\n", "x".repeat(64)).as_bytes());
    assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "b"));
    reader.feed(b"c APPEND INBOX {17+}\r\n");
    assert!(matches!(reader.next(), Input::Bad { tag: Some(t), message }
        if t == "c" && message.starts_with("[TOOBIG] ")));
    reader.feed(b"0123456789abcdefg (\\Seen) {2+}\r\nxx\r\nd NOOP\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "d"));
    reader.feed(format!("e APPEND INBOX {{{}+}}\r\n", 64 * 1024 + 1).as_bytes());
    assert!(matches!(reader.next(), Input::Fatal { .. }));
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn other_literals_use_max_literal() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a LOGIN {4097}\r\n");
    assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "a"));
    reader.feed(b"a LOGIN {4096}\r\n");
    assert_eq!(reader.next(), Input::Continue);
}

#[test]
fn literals_of_one_command_share_the_budget() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a LOGIN {3000+}\r\n");
    reader.feed(&[b'x'; 3000]);
    assert_eq!(reader.next(), Input::Incomplete);
    reader.feed(b" {3000}\r\n");
    assert_eq!(
        reader.next(),
        Input::TooBig {
            tag: Some("a".into()),
            message: "literal of 3000 bytes is over the limit of 1096".into()
        }
    );
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn huge_literal_sizes() {
    assert_eq!(
        events(b"a LOGIN {99999999999999999999999}\r\n"),
        [Input::TooBig {
            tag: Some("a".into()),
            message: "literal size is out of range".into()
        }]
    );
    assert!(matches!(
        events(b"a LOGIN {99999999999999999999999+}\r\n").as_slice(),
        [Input::Fatal { .. }]
    ));
    assert!(matches!(
        events(b"{99999999999}\r\n").as_slice(),
        [Input::Bad { tag: None, .. }]
    ));
}

#[test]
fn literal8_carries_append_messages_only() {
    assert_eq!(
        command("a APPEND x ~{3+}\r\n\0\x01\x7f"),
        Command::Append {
            mailbox: "x".into(),
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                message: b"\0\x01\x7f".to_vec(),
                binary: true,
                utf8: false,
            }],
        }
    );
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a APPEND x ~{5}\r\n");
    assert_eq!(reader.next(), Input::Continue);
    reader.feed(b"hello\r\nb LOGIN ~{1+}\r\nx y\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "a"));
    assert!(matches!(
        reader.next(),
        Input::Bad { tag: Some(t), message } if t == "b" && message.contains("literal8")
    ));
    assert_eq!(reader.next(), Input::Incomplete);
}

#[test]
fn binary_fetch_items() {
    assert_eq!(
        command("a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY[] BINARY.SIZE[3])"),
        Command::Fetch {
            uid: false,
            set: set(&[(1, 1)]),
            items: vec![
                FetchAttribute::Binary {
                    peek: true,
                    part: vec![1, 2],
                    partial: Some((0, 10)),
                },
                FetchAttribute::Binary {
                    peek: false,
                    part: vec![],
                    partial: None,
                },
                FetchAttribute::BinarySize { part: vec![3] },
            ],
            modifiers: FetchModifiers::default(),
        }
    );
    assert!(bad("a FETCH 1 BINARY[1.TEXT]").contains("part number"));
    assert!(bad("a FETCH 1 BINARY.SIZE").contains("'['"));
}

#[test]
fn over_long_line_is_rejected_then_skipped() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a SEARCH ");
    reader.feed(&[b'x'; 1100]);
    assert_eq!(
        reader.next(),
        Input::TooBig {
            tag: Some("a".into()),
            message: "command line longer than 1024 bytes".into()
        }
    );
    assert_eq!(reader.buffered(), 0);
    reader.feed(&[b'y'; 5000]);
    assert_eq!(reader.next(), Input::Incomplete);
    assert_eq!(reader.buffered(), 0);
    reader.feed(b"yyy\r\nb NOOP\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));
    assert_eq!(reader.next(), Input::Incomplete);
}

#[test]
fn over_long_line_without_tag_is_bad() {
    let mut input = vec![b'x'; 2000];
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    let events = events(&input);
    assert!(
        matches!(&events[0], Input::Bad { tag: None, .. }),
        "{events:?}"
    );
    assert!(matches!(&events[1], Input::Request(r) if r.tag == "b"));
    assert_eq!(events.len(), 2);
}

#[test]
fn over_long_line_whole_in_buffer() {
    let mut input = b"t1 FETCH ".to_vec();
    input.extend(std::iter::repeat_n(b'1', 1100));
    input.extend_from_slice(b" FLAGS\r\nb NOOP\r\n");
    let events = events(&input);
    assert!(matches!(&events[0], Input::TooBig { tag: Some(t), .. } if t == "t1"));
    assert!(matches!(&events[1], Input::Request(r) if r.tag == "b"));
}

#[test]
fn over_long_line_after_a_literal() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a LOGIN {3+}\r\nabc ");
    reader.feed(&[b'p'; 1100]);
    assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "a"));
    reader.feed(b"\r\nb NOOP\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));
}

#[test]
fn skipped_line_with_non_sync_literal_stays_in_step() {
    let mut input = b"a LOGIN ".to_vec();
    input.extend(std::iter::repeat_n(b'u', 1100));
    input.extend_from_slice(b" {10+}\r\nb NOOP\r\n\r\n ccc\r\nd NOOP\r\n");
    let got = events(&input);
    assert!(matches!(&got[0], Input::TooBig { tag: Some(t), .. } if t == "a"));
    assert!(
        matches!(&got[1], Input::Request(r) if r.tag == "d"),
        "{got:?}"
    );
    assert_eq!(got.len(), 2);

    let mut input = b"a LOGIN ".to_vec();
    input.extend(std::iter::repeat_n(b'u', 1100));
    input.extend_from_slice(b" {5000+}\r\n");
    assert!(matches!(
        events(&input).as_slice(),
        [Input::TooBig { .. }, Input::Fatal { .. }]
    ));
}

#[test]
fn skipped_line_with_sync_literal_ends_the_command() {
    let mut input = b"a LOGIN ".to_vec();
    input.extend(std::iter::repeat_n(b'u', 1100));
    input.extend_from_slice(b" {10}\r\nb NOOP\r\n");
    let events = events(&input);
    assert!(matches!(&events[0], Input::TooBig { tag: Some(t), .. } if t == "a"));
    assert!(matches!(&events[1], Input::Request(r) if r.tag == "b"));
}

#[test]
fn next_line_for_idle_and_authenticate() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a IDLE\r\nDO");
    assert!(matches!(reader.next(), Input::Request(r) if r.command == Command::Idle));
    assert_eq!(reader.next_line(), None);
    reader.feed(b"NE\r\nAGpvZQ==\nb NOOP\r\n");
    assert_eq!(reader.next_line(), Some(Ok("DONE".into())));
    assert_eq!(reader.next_line(), Some(Ok("AGpvZQ==".into())));
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));
    reader.feed(b"\r\n");
    assert_eq!(reader.next_line(), Some(Ok(String::new())));
}

#[test]
fn next_line_too_long() {
    let mut reader = CommandReader::new(limits());
    let mut long = vec![b'x'; 1500];
    long.extend_from_slice(b"\r\nDONE\r\n");
    reader.feed(&long);
    assert_eq!(reader.next_line(), Some(Err(())));
    assert_eq!(reader.next_line(), Some(Ok("DONE".into())));

    let mut reader = CommandReader::new(limits());
    reader.feed(&[b'x'; 1500]);
    assert_eq!(reader.next_line(), Some(Err(())));
    assert_eq!(reader.buffered(), 0);
    reader.feed(&[b'x'; 1500]);
    assert_eq!(reader.next_line(), None);
    assert_eq!(reader.buffered(), 0);
    reader.feed(b"x\r\nDONE\r\n");
    assert_eq!(reader.next_line(), Some(Ok("DONE".into())));
}

#[test]
fn starttls_sees_and_clears_injected_plaintext() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a STARTTLS\r\nb LOGIN joe secret\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.command == Command::StartTls));
    assert_eq!(reader.buffered(), "b LOGIN joe secret\r\n".len());
    reader.clear();
    assert_eq!(reader.buffered(), 0);
    assert_eq!(reader.next(), Input::Incomplete);
    reader.feed(b"c NOOP\r\n");
    assert!(matches!(reader.next(), Input::Request(r) if r.tag == "c"));
}

#[test]
fn buffered_counts_a_partial_command() {
    let mut reader = CommandReader::new(limits());
    reader.feed(b"a LOGIN {5+}\r\nab");
    assert_eq!(reader.next(), Input::Incomplete);
    assert_eq!(reader.buffered(), "a LOGIN ".len() + 2);
}

// Generators and renderers for the round-trip properties.

fn seq_number() -> impl Strategy<Value = SeqNumber> {
    prop_oneof![
        Just(SeqNumber::Last),
        (1..=u32::MAX).prop_map(SeqNumber::Value),
        (1..20u32).prop_map(SeqNumber::Value),
    ]
}

fn sequence_set() -> impl Strategy<Value = SequenceSet> {
    let range = prop_oneof![
        seq_number().prop_map(|n| SeqRange { start: n, end: n }),
        (seq_number(), seq_number()).prop_map(|(start, end)| SeqRange { start, end }),
    ];
    prop::collection::vec(range, 1..4).prop_map(SequenceSet)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,12}", "[a-zA-Z0-9]{1,8}", "\\PC{0,6}"]
}

fn keyword() -> impl Strategy<Value = String> {
    "[A-Za-z$][A-Za-z0-9_$.-]{0,8}"
}

fn header_name() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9-]{0,10}"
}

fn search_date() -> impl Strategy<Value = Date> {
    (1970..=2100u16, 1..=12u8, 1..=31u8).prop_map(|(year, month, day)| Date { year, month, day })
}

fn system_flag() -> impl Strategy<Value = Flag> {
    prop::sample::select(vec![
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Draft,
    ])
}

fn search_key() -> impl Strategy<Value = SearchKey> {
    use SearchKey as K;
    let dated: [fn(Date) -> SearchKey; 6] = [
        K::Before,
        K::On,
        K::Since,
        K::SentBefore,
        K::SentOn,
        K::SentSince,
    ];
    let leaf = prop_oneof![
        prop::sample::select(vec![K::All, K::New, K::Old, K::Flag(Flag::Recent)]),
        system_flag().prop_map(K::Flag),
        system_flag().prop_map(K::NotFlag),
        keyword().prop_map(|k| K::Flag(Flag::Keyword(k))),
        keyword().prop_map(|k| K::NotFlag(Flag::Keyword(k))),
        (header_name(), text()).prop_map(|(name, value)| K::Header(name, value)),
        text().prop_map(K::Body),
        text().prop_map(K::Text),
        (0..6usize, search_date()).prop_map(move |(i, date)| dated[i](date)),
        any::<u64>().prop_map(K::Larger),
        any::<u64>().prop_map(K::Smaller),
        any::<u64>().prop_map(K::ModSeq),
        sequence_set().prop_map(K::Uid),
        sequence_set().prop_map(K::Sequence),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|key| K::Not(Box::new(key))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| K::Or(Box::new(a), Box::new(b))),
            prop::collection::vec(inner, 1..4).prop_map(K::And),
        ]
    })
}

fn section_strategy() -> impl Strategy<Value = Section> {
    (
        prop::collection::vec(1..=u32::MAX, 0..3),
        0..5u8,
        prop::collection::vec(header_name(), 1..3),
        any::<bool>(),
    )
        .prop_map(|(part, kind, fields, not)| {
            let text = match kind {
                0 => None,
                1 => Some(SectionText::Header),
                2 => Some(SectionText::Text),
                3 => Some(SectionText::HeaderFields { not, fields }),
                _ if part.is_empty() => None,
                _ => Some(SectionText::Mime),
            };
            Section { part, text }
        })
}

fn fetch_attribute() -> impl Strategy<Value = FetchAttribute> {
    use FetchAttribute as A;
    prop_oneof![
        prop::sample::select(vec![
            A::Flags,
            A::Uid,
            A::InternalDate,
            A::Rfc822Size,
            A::Envelope,
            A::Body,
            A::BodyStructure,
            A::Rfc822,
            A::Rfc822Header,
            A::Rfc822Text,
            A::ModSeq,
        ]),
        (
            any::<bool>(),
            section_strategy(),
            prop::option::of((any::<u32>(), 1..=u32::MAX))
        )
            .prop_map(|(peek, section, partial)| A::BodySection {
                peek,
                section,
                partial
            }),
        (
            any::<bool>(),
            prop::collection::vec(1..=u32::MAX, 0..4),
            prop::option::of((any::<u32>(), 1..=u32::MAX))
        )
            .prop_map(|(peek, part, partial)| A::Binary {
                peek,
                part,
                partial
            }),
        prop::collection::vec(1..=u32::MAX, 0..4).prop_map(|part| A::BinarySize { part }),
    ]
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        system_flag(),
        Just(Flag::Recent),
        keyword().prop_map(Flag::Keyword)
    ]
}

fn command_strategy() -> impl Strategy<Value = Command> {
    let fetch = (
        any::<bool>(),
        sequence_set(),
        prop::collection::vec(fetch_attribute(), 1..5),
    )
        .prop_map(|(uid, set, items)| Command::Fetch {
            uid,
            set,
            items,
            modifiers: FetchModifiers::default(),
        });
    let operation = prop::sample::select(vec![
        StoreOperation::Replace,
        StoreOperation::Add,
        StoreOperation::Remove,
    ]);
    let store = (
        any::<bool>(),
        sequence_set(),
        operation,
        any::<bool>(),
        prop::collection::vec(flag(), 0..4),
    )
        .prop_map(|(uid, set, operation, silent, flags)| Command::Store {
            uid,
            set,
            operation,
            silent,
            flags,
            unchanged_since: None,
        });
    let charset = prop::option::of(prop::sample::select(vec!["UTF-8", "US-ASCII"]));
    let search = (
        any::<bool>(),
        charset,
        prop::collection::vec(search_key(), 1..4),
    )
        .prop_map(|(uid, charset, keys)| Command::Search {
            uid,
            charset: charset.map(str::to_owned),
            criteria: SearchKey::And(keys),
            returning: None,
        });
    prop_oneof![fetch, store, search]
}

/// Renders commands as a client would, picking among equivalent spellings with `styles`.
struct Renderer<'a> {
    out: Vec<u8>,
    styles: std::iter::Cycle<std::slice::Iter<'a, u8>>,
}

impl Renderer<'_> {
    fn style(&mut self) -> u8 {
        self.styles.next().copied().unwrap_or(0)
    }

    fn push(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn astring(&mut self, value: &str) {
        let atom = !value.is_empty() && value.bytes().all(is_astring_char);
        match self.style() % 4 {
            0 if atom => self.push(value),
            1 => self.push(&format!("{{{}}}\r\n{value}", value.len())),
            2 => self.push(&format!("{{{}+}}\r\n{value}", value.len())),
            _ => self.push(&quote(value)),
        }
    }

    fn set(&mut self, set: &SequenceSet) {
        let number = |n: &SeqNumber| match n {
            SeqNumber::Value(v) => v.to_string(),
            SeqNumber::Last => "*".into(),
        };
        let ranges: Vec<String> = set
            .0
            .iter()
            .map(|r| {
                if r.start == r.end {
                    number(&r.start)
                } else {
                    format!("{}:{}", number(&r.start), number(&r.end))
                }
            })
            .collect();
        self.push(&ranges.join(","));
    }

    fn flag(&mut self, flag: &Flag) {
        let text = match flag {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\answered",
            Flag::Flagged => "\\FLAGGED",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Recent => "\\Recent",
            Flag::Keyword(k) => k,
        };
        self.push(text);
    }

    fn flag_name(flag: &Flag) -> &'static str {
        match flag {
            Flag::Seen => "SEEN",
            Flag::Answered => "ANSWERED",
            Flag::Flagged => "FLAGGED",
            Flag::Deleted => "DELETED",
            Flag::Draft => "DRAFT",
            Flag::Recent => "RECENT",
            Flag::Keyword(_) => "KEYWORD",
        }
    }

    fn date(&mut self, date: &Date) {
        let month = MONTHS
            .get(usize::from(date.month) - 1)
            .copied()
            .unwrap_or("JAN");
        let text = format!("{}-{}-{}", date.day, month.to_lowercase(), date.year);
        if self.style().is_multiple_of(2) {
            self.push(&text);
        } else {
            self.push(&format!("\"{text}\""));
        }
    }

    fn key(&mut self, key: &SearchKey) {
        use SearchKey as K;
        match key {
            K::All => self.push("ALL"),
            K::New => self.push("new"),
            K::Old => self.push("OLD"),
            K::Flag(Flag::Keyword(k)) => self.push(&format!("KEYWORD {k}")),
            K::NotFlag(Flag::Keyword(k)) => self.push(&format!("UNKEYWORD {k}")),
            K::Flag(flag) => self.push(Self::flag_name(flag)),
            K::NotFlag(flag) => self.push(&format!("UN{}", Self::flag_name(flag))),
            K::Header(name, value) => {
                self.push(&format!("HEADER {} ", name.to_lowercase()));
                self.astring(value);
            }
            K::Body(value) => {
                self.push("BODY ");
                self.astring(value);
            }
            K::Text(value) => {
                self.push("TEXT ");
                self.astring(value);
            }
            K::Before(d)
            | K::On(d)
            | K::Since(d)
            | K::SentBefore(d)
            | K::SentOn(d)
            | K::SentSince(d) => {
                let name = match key {
                    K::Before(_) => "BEFORE ",
                    K::On(_) => "ON ",
                    K::Since(_) => "SINCE ",
                    K::SentBefore(_) => "SENTBEFORE ",
                    K::SentOn(_) => "SENTON ",
                    _ => "SENTSINCE ",
                };
                self.push(name);
                self.date(d);
            }
            K::Larger(n) => self.push(&format!("LARGER {n}")),
            K::Smaller(n) => self.push(&format!("SMALLER {n}")),
            K::ModSeq(n) => self.push(&format!("MODSEQ {n}")),
            K::Uid(set) => {
                self.push("UID ");
                self.set(set);
            }
            K::Sequence(set) => self.set(set),
            K::Not(key) => {
                self.push("NOT ");
                self.key(key);
            }
            K::Or(a, b) => {
                self.push("OR ");
                self.key(a);
                self.push(" ");
                self.key(b);
            }
            K::And(keys) => {
                self.push("(");
                self.keys(keys);
                self.push(")");
            }
        }
    }

    fn keys(&mut self, keys: &[SearchKey]) {
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                self.push(" ");
            }
            self.key(key);
        }
    }

    fn section(&mut self, section: &Section) {
        let mut parts: Vec<String> = section.part.iter().map(u32::to_string).collect();
        match &section.text {
            None => {}
            Some(SectionText::Header) => parts.push("HEADER".into()),
            Some(SectionText::Text) => parts.push("text".into()),
            Some(SectionText::Mime) => parts.push("MIME".into()),
            Some(SectionText::HeaderFields { not, fields }) => {
                let name = if *not {
                    "HEADER.FIELDS.NOT"
                } else {
                    "HEADER.FIELDS"
                };
                let fields: Vec<String> = fields.iter().map(|f| f.to_lowercase()).collect();
                parts.push(format!("{name} ({})", fields.join(" ")));
            }
        }
        self.push(&format!("[{}]", parts.join(".")));
    }

    fn fetch_attribute(&mut self, item: &FetchAttribute) {
        use FetchAttribute as A;
        let name = match item {
            A::Flags => "FLAGS",
            A::Uid => "uid",
            A::InternalDate => "INTERNALDATE",
            A::Rfc822Size => "RFC822.SIZE",
            A::Envelope => "ENVELOPE",
            A::Body => "BODY",
            A::BodyStructure => "BODYSTRUCTURE",
            A::Rfc822 => "RFC822",
            A::Rfc822Header => "RFC822.HEADER",
            A::Rfc822Text => "RFC822.TEXT",
            A::ModSeq => "modseq",
            A::BodySection {
                peek,
                section,
                partial,
            } => {
                self.push(if *peek { "BODY.PEEK" } else { "BODY" });
                self.section(section);
                if let Some((origin, length)) = partial {
                    self.push(&format!("<{origin}.{length}>"));
                }
                return;
            }
            A::Binary {
                peek,
                part,
                partial,
            } => {
                self.push(if *peek { "binary.peek" } else { "BINARY" });
                self.binary_part(part);
                if let Some((origin, length)) = partial {
                    self.push(&format!("<{origin}.{length}>"));
                }
                return;
            }
            A::BinarySize { part } => {
                self.push("BINARY.SIZE");
                self.binary_part(part);
                return;
            }
        };
        self.push(name);
    }

    fn binary_part(&mut self, part: &[u32]) {
        let numbers: Vec<String> = part.iter().map(u32::to_string).collect();
        self.push(&format!("[{}]", numbers.join(".")));
    }

    fn command(&mut self, command: &Command) {
        self.push("a1 ");
        match command {
            Command::Fetch {
                uid, set, items, ..
            } => {
                self.push(if *uid { "UID FETCH " } else { "FETCH " });
                self.set(set);
                self.push(" ");
                let bare = items.len() == 1 && self.style().is_multiple_of(2);
                self.push(if bare { "" } else { "(" });
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(" ");
                    }
                    self.fetch_attribute(item);
                }
                self.push(if bare { "" } else { ")" });
            }
            Command::Store {
                uid,
                set,
                operation,
                silent,
                flags,
                ..
            } => {
                self.push(if *uid { "UID STORE " } else { "STORE " });
                self.set(set);
                self.push(match operation {
                    StoreOperation::Replace => " FLAGS",
                    StoreOperation::Add => " +FLAGS",
                    StoreOperation::Remove => " -flags",
                });
                self.push(if *silent { ".SILENT " } else { " " });
                let bare = !flags.is_empty() && self.style().is_multiple_of(2);
                self.push(if bare { "" } else { "(" });
                for (i, flag) in flags.iter().enumerate() {
                    if i > 0 {
                        self.push(" ");
                    }
                    self.flag(flag);
                }
                self.push(if bare { "" } else { ")" });
            }
            Command::Search {
                uid,
                charset,
                criteria: SearchKey::And(keys),
                returning: None,
            } => {
                self.push(if *uid { "UID SEARCH " } else { "SEARCH " });
                if let Some(charset) = charset {
                    self.push(&format!("CHARSET {} ", charset.to_lowercase()));
                }
                self.keys(keys);
            }
            other => panic!("cannot render {other:?}"),
        }
        self.push("\r\n");
    }
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn render(command: &Command, styles: &[u8]) -> Vec<u8> {
    let mut renderer = Renderer {
        out: Vec::new(),
        styles: styles.iter().cycle(),
    };
    renderer.command(command);
    renderer.out
}

/// Feeds `input` split at `cuts`, returning every event but Continue.
fn feed_split(limits: Limits, input: &[u8], cuts: &[prop::sample::Index]) -> Vec<Input> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    let mut reader = CommandReader::new(limits);
    let mut events = Vec::new();
    for pair in points.windows(2) {
        reader.feed(&input[pair[0]..pair[1]]);
        events.extend(drain(&mut reader));
    }
    assert_eq!(reader.buffered(), 0);
    events.retain(|event| *event != Input::Continue);
    events
}

fn chunk() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&[u8]> = vec![
        b"a APPEND x ",
        b"b LOGIN ",
        b"c SEARCH ",
        b"d FETCH 1 ",
        b"{5}\r\n",
        b"{40+}\r\n",
        b"{200+}\r\n",
        b"~{3+}\r\n",
        b"{99999999999999999999999}\r\n",
        b"\r\n",
        b"\n",
        b" ",
        b"(",
        b")",
        b"\"",
        b"\\",
        b"NOT ",
        b"1:*",
        b"BODY[1.HEADER.FIELDS (a)]<1.2>",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(pieces).prop_map(<[u8]>::to_vec),
        "[ -~]{0,100}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        chunks in prop::collection::vec((chunk(), 0..4u8), 0..60)
    ) {
        let limits = Limits { max_line: 64, max_literal: 128, max_append: 256 };
        let bound = limits.max_line + limits.max_literal.max(limits.max_append);
        let mut reader = CommandReader::new(limits);
        for (chunk, mode) in chunks {
            reader.feed(&chunk);
            prop_assert!(reader.buffered() <= bound + chunk.len());
            match mode {
                // Raw lines (IDLE, AUTHENTICATE), then a parse, as a session does:
                // next_line leaves a command in progress alone, so a driver calling only
                // it would let input pile up that no session lets pile up.
                0 => {
                    while reader.next_line().is_some() {}
                    reader.next();
                }
                1 => {
                    reader.next();
                }
                _ => {
                    for _ in 0..10_000 {
                        if reader.next() == Input::Incomplete {
                            break;
                        }
                    }
                    prop_assert_eq!(reader.next(), Input::Incomplete);
                    prop_assert!(reader.buffered() <= bound);
                }
            }
        }
    }

    #[test]
    fn generated_commands_round_trip(
        command in command_strategy(),
        styles in prop::collection::vec(any::<u8>(), 1..16),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let limits = Limits { max_line: 64 * 1024, max_literal: 64 * 1024, max_append: 64 * 1024 };
        let input = render(&command, &styles);
        let expected = [Input::Request(Request { tag: "a1".into(), command })];
        prop_assert_eq!(&feed_split(limits, &input, &[]), &expected, "{}", String::from_utf8_lossy(&input));
        prop_assert_eq!(&feed_split(limits, &input, &cuts), &expected);
    }

    #[test]
    fn quoted_strings_round_trip(
        user in "[ -~]{0,30}",
        password in "\\PC{0,20}",
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let input = format!("q LOGIN {} {}\r\n", quote(&user), quote(&password));
        let expected = [Input::Request(Request {
            tag: "q".into(),
            command: Command::Login { user, password },
        })];
        prop_assert_eq!(feed_split(limits(), input.as_bytes(), &cuts), expected);
    }
}
