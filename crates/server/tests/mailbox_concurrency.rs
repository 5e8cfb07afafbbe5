//! The mailbox under concurrent use: SMTP deliveries racing a POP3 session that deletes
//! some messages and an IMAP session that expunges others, and IMAP sessions moving the
//! same messages at the same time. Afterwards every message is on disk exactly once or
//! was deleted on purpose by exactly one session, and the quota figure (alice has a
//! quota, never reached) agrees with what is on disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::mailbox::{Imap, subject_of};
use common::{Client, Options, PATIENCE, TestServer};

const PW: &str = "alice-concurrency-password";

/// A server with alice (with a quota, so every change records its delta) and
/// plaintext-allowed POP3 and IMAP listeners.
fn server() -> TestServer {
    let alice = posthorn::accounts::passwords::hash(PW).unwrap();
    Options::default()
        .config(&format!(
            r#"
[[listener]]
role = "imap"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[listener]]
role = "pop3"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{alice}"
quota = "1GiB"
"#
        ))
        .start()
}

fn message(subject: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n"
    )
}

/// How many files hold each subject in a Maildir folder (`cur/` and `new/`).
fn census(dir: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(content) = std::fs::read(entry.path()) {
                *counts.entry(subject_of(&content)).or_default() += 1;
            }
        }
    }
    counts
}

/// Checks that the quota figure of the Maildir at `root` (its `maildirsize`: a definition
/// line, then lines of octets and messages to add up) is what its folders hold.
fn assert_quota_agrees(root: &Path) {
    let text = std::fs::read_to_string(root.join("maildirsize")).expect("the quota file");
    let (mut bytes, mut messages) = (0i64, 0i64);
    for line in text.lines().skip(1) {
        let fields: Vec<i64> = line
            .split_whitespace()
            .map(|f| f.parse().expect("a number"))
            .collect();
        bytes += fields[0];
        messages += fields[1];
    }
    let mut folders = vec![root.to_path_buf()];
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && !name.starts_with("..") && entry.path().is_dir() {
            folders.push(entry.path());
        }
    }
    let (mut on_disk, mut files) = (0i64, 0i64);
    for folder in folders {
        for sub in ["cur", "new"] {
            let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                on_disk += entry.metadata().unwrap().len() as i64;
                files += 1;
            }
        }
    }
    assert_eq!(
        (bytes, messages),
        (on_disk, files),
        "the quota figure against the disk; maildirsize:\n{text}"
    );
}

/// A raw POP3 client.
struct Pop3 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Pop3 {
    /// Logs alice in; None while another POP3 session still holds the mailbox, an error
    /// for any other refusal.
    fn login(addr: SocketAddr) -> Result<Option<Pop3>, String> {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut pop = Pop3 {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        let greeting = pop.line();
        assert!(greeting.starts_with("+OK"), "{greeting:?}");
        assert!(pop.command("USER alice").starts_with("+OK"));
        let pass = pop.command(&format!("PASS {PW}"));
        if pass.starts_with("-ERR [IN-USE]") {
            return Ok(None);
        }
        if !pass.starts_with("+OK") {
            return Err(format!("POP3 login: {pass:?}"));
        }
        Ok(Some(pop))
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line
    }

    fn command(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
        self.line()
    }

    /// The body of a multi-line reply.
    fn body(&mut self) -> String {
        let mut body = String::new();
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "closed inside a multi-line reply");
            if line == ".\r\n" {
                return body;
            }
            body.push_str(&line);
        }
    }
}

/// One POP3 session: deletes the messages `doomed` picks (by subject) and quits. Returns
/// the subjects deleted, or None if the mailbox was in use.
fn pop3_pass(
    addr: SocketAddr,
    doomed: &dyn Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, String> {
    let Some(mut pop) = Pop3::login(addr)? else {
        return Ok(None);
    };
    let list = pop.command("LIST");
    assert!(list.starts_with("+OK"), "{list:?}");
    let numbers: Vec<usize> = pop
        .body()
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let mut deleted = Vec::new();
    for n in numbers {
        let top = pop.command(&format!("TOP {n} 0"));
        if top.starts_with("-ERR") {
            // Expunged by the IMAP session since our login: fine.
            continue;
        }
        assert!(top.starts_with("+OK"), "TOP {n} 0: {top:?}");
        let subject = subject_of(pop.body().as_bytes());
        if doomed(&subject) {
            let dele = pop.command(&format!("DELE {n}"));
            assert!(dele.starts_with("+OK"), "DELE {n}: {dele:?}");
            deleted.push(subject);
        }
    }
    let quit = pop.command("QUIT");
    assert!(
        quit.starts_with("+OK"),
        "QUIT must remove what DELE marked: {quit:?}"
    );
    // Wait for the session to end, so that its lock is released.
    let mut rest = Vec::new();
    let _ = pop.reader.read_to_end(&mut rest);
    Ok(Some(deleted))
}

/// (UID, subject) of every message in the selected mailbox.
fn listing(session: &mut Imap) -> Vec<(u32, String)> {
    let responses = session.responses("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let last = responses.last().unwrap();
    // NO [EXPUNGEISSUED] when a message vanished under us: what was listed stands.
    assert!(
        last.contains(" OK ") || last.contains("EXPUNGEISSUED"),
        "{responses:?}"
    );
    responses
        .iter()
        .filter(|r| r.starts_with("* ") && r.contains(" FETCH ("))
        .map(|r| {
            let uid = r
                .split("UID ")
                .nth(1)
                .and_then(|rest| rest.split([' ', ')']).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no UID in {r:?}"));
            (uid, subject_of(r.as_bytes()))
        })
        .collect()
}

/// Runs `prepare`, then waits at `barrier` even if it panicked (so that the other
/// threads do not wait forever), then returns its result or carries on its panic.
fn prepared<T>(barrier: &Barrier, prepare: impl FnOnce() -> T) -> T {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(prepare));
    barrier.wait();
    result.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The source UIDs a `[COPYUID v src dst]` in `responses` names.
fn copyuid_sources(responses: &str) -> Vec<u32> {
    let mut uids = Vec::new();
    for response in responses.lines() {
        let Some(rest) = response.split("[COPYUID ").nth(1) else {
            continue;
        };
        let source = rest.split(' ').nth(1).expect("COPYUID source set");
        for part in source.split(',') {
            match part.split_once(':') {
                Some((a, b)) => {
                    let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
                    uids.extend(a.min(b)..=a.max(b));
                }
                None => uids.push(part.parse().unwrap()),
            }
        }
    }
    uids
}

/// Which messages each session deletes: race-NN with NN % 3 == 0 by POP3, == 1 by IMAP;
/// the others stay.
fn number(subject: &str) -> Option<u32> {
    subject.strip_prefix("race-")?.parse().ok()
}

fn pop3_deletes(subject: &str) -> bool {
    number(subject).is_some_and(|n| n % 3 == 0)
}

fn imap_deletes(subject: &str) -> bool {
    number(subject).is_some_and(|n| n % 3 == 1)
}

#[test]
fn deliveries_race_pop3_deletions_and_imap_expunges() {
    const N: u32 = 60;
    let server = server();
    let mx = server.addr;
    let pop3 = server.listener("pop3");
    let imap = server.listener("imap");
    let stop = Arc::new(AtomicBool::new(false));
    // A first login on its own: simultaneous first logins are another test's subject.
    Imap::logged_in(imap, PW).ok("LOGOUT");

    // Two SMTP connections deliver N messages between them.
    let senders: Vec<_> = (0..2)
        .map(|half| {
            std::thread::spawn(move || {
                let mut client = Client::greeted(mx);
                for n in (0..N).filter(|n| n % 2 == half) {
                    let reply = client.send_message(
                        "sender@example.org",
                        &["alice@example.com"],
                        &message(&format!("race-{n:02}")),
                    );
                    assert!(reply.starts_with("250"), "race-{n:02}: {reply}");
                }
            })
        })
        .collect();

    // POP3: session after session, each deleting its share and quitting.
    let pop_worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut deleted = Vec::new();
            let mut sessions = 0;
            loop {
                let last = stop.load(Ordering::SeqCst);
                match pop3_pass(pop3, &pop3_deletes) {
                    Ok(Some(gone)) => {
                        deleted.extend(gone);
                        sessions += 1;
                        if last {
                            return Ok((deleted, sessions));
                        }
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => return Err(e),
                }
            }
        })
    };

    // IMAP: one session, marking its share \Deleted and expunging, over and over.
    let imap_worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut session = Imap::logged_in(imap, PW);
            session.ok("SELECT INBOX");
            let mut deleted = Vec::new();
            let mut rounds = 0;
            loop {
                let last = stop.load(Ordering::SeqCst);
                session.ok("NOOP");
                let doomed: Vec<(u32, String)> = listing(&mut session)
                    .into_iter()
                    .filter(|(_, subject)| imap_deletes(subject))
                    .collect();
                if !doomed.is_empty() {
                    let uids: Vec<String> = doomed.iter().map(|(u, _)| u.to_string()).collect();
                    let uids = uids.join(",");
                    session.ok(&format!("UID STORE {uids} +FLAGS.SILENT (\\Deleted)"));
                    session.ok(&format!("UID EXPUNGE {uids}"));
                    deleted.extend(doomed.into_iter().map(|(_, s)| s));
                }
                rounds += 1;
                if last {
                    return (deleted, rounds, session);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    for sender in senders {
        sender.join().expect("SMTP sender");
    }
    server.wait_for_empty_queue();
    // Every message is in the Maildir now: one more pass each, then stop.
    stop.store(true, Ordering::SeqCst);
    let (pop_deleted, pop_sessions) = pop_worker.join().expect("POP3 worker").unwrap_or_else(|e| {
        let log = server.settled_log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        panic!("{e}\nserver warnings:\n{}", warnings.join("\n"))
    });
    let (imap_deleted, imap_rounds, mut session) = imap_worker.join().expect("IMAP worker");
    eprintln!(
        "{pop_sessions} POP3 sessions deleted {}, {imap_rounds} IMAP rounds expunged {}",
        pop_deleted.len(),
        imap_deleted.len()
    );

    let on_disk = census(&server.maildir("alice"));
    let pop_set: BTreeSet<&String> = pop_deleted.iter().collect();
    let imap_set: BTreeSet<&String> = imap_deleted.iter().collect();
    assert_eq!(
        pop_set.len(),
        pop_deleted.len(),
        "POP3 deleted something twice: {pop_deleted:?}"
    );
    assert_eq!(
        imap_set.len(),
        imap_deleted.len(),
        "IMAP deleted something twice: {imap_deleted:?}"
    );
    assert!(
        pop_set.is_disjoint(&imap_set),
        "deleted by both: {:?}",
        pop_set.intersection(&imap_set).collect::<Vec<_>>()
    );
    let mut problems = Vec::new();
    for n in 0..N {
        let subject = format!("race-{n:02}");
        let copies = on_disk.get(&subject).copied().unwrap_or(0);
        let by_pop = pop_set.contains(&subject);
        let by_imap = imap_set.contains(&subject);
        let expected = if pop3_deletes(&subject) {
            (0, true, false)
        } else if imap_deletes(&subject) {
            (0, false, true)
        } else {
            (1, false, false)
        };
        if (copies, by_pop, by_imap) != expected {
            problems.push(format!(
                "{subject}: {copies} on disk, deleted by POP3 {by_pop}, by IMAP {by_imap}; expected {expected:?}"
            ));
        }
    }
    let strays: Vec<&String> = on_disk.keys().filter(|s| number(s).is_none()).collect();
    assert!(
        problems.is_empty() && strays.is_empty(),
        "every message exactly once or deleted by exactly one session:\n{}\nstray files: {strays:?}",
        problems.join("\n")
    );
    // The long-lived IMAP session, brought up to date, agrees with the disk.
    session.ok("NOOP");
    let mut seen: Vec<String> = listing(&mut session).into_iter().map(|(_, s)| s).collect();
    seen.sort();
    let kept: Vec<String> = on_disk.keys().cloned().collect();
    assert_eq!(seen, kept, "the IMAP session's final view");
    assert_quota_agrees(&server.maildir("alice"));
}

#[test]
fn concurrent_moves_place_each_message_exactly_once() {
    const N: u32 = 30;
    let server = server();
    let imap = server.listener("imap");
    let mut client = server.client();
    for n in 0..N {
        let reply = client.send_message(
            "sender@example.org",
            &["alice@example.com"],
            &message(&format!("move-{n:02}")),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    server.wait_for_messages("alice", N as usize);
    // (This first login also creates the special folders before the sessions race.)
    let mut setup = Imap::logged_in(imap, PW);
    for folder in ["A", "B", "C"] {
        setup.ok(&format!("CREATE {folder}"));
    }
    setup.ok("LOGOUT");

    // Three sessions on the same INBOX: one moves message by message in UID order to A,
    // one in reverse order to B, one everything at once to C (after a head start).
    let barrier = Arc::new(Barrier::new(3));
    let workers: Vec<_> = [("A", false), ("B", true), ("C", false)]
        .into_iter()
        .enumerate()
        .map(|(i, (target, reverse))| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let (mut session, uids) = prepared(&barrier, || {
                    let mut session = Imap::logged_in(imap, PW);
                    session.ok("SELECT INBOX");
                    let mut uids: Vec<u32> =
                        listing(&mut session).into_iter().map(|(u, _)| u).collect();
                    assert_eq!(uids.len(), N as usize, "INBOX before the moves");
                    if reverse {
                        uids.reverse();
                    }
                    (session, uids)
                });
                let mut moved = Vec::new();
                if i == 2 {
                    std::thread::sleep(Duration::from_millis(20));
                    moved.extend(copyuid_sources(
                        &session.ok(&format!("UID MOVE 1:* {target}")),
                    ));
                } else {
                    for uid in uids {
                        moved.extend(copyuid_sources(
                            &session.ok(&format!("UID MOVE {uid} {target}")),
                        ));
                    }
                }
                session.ok("NOOP");
                let left = listing(&mut session);
                session.ok("LOGOUT");
                (target, moved, left)
            })
        })
        .collect();
    let started = Instant::now();
    let results: Vec<_> = workers
        .into_iter()
        .map(|w| w.join().expect("mover"))
        .collect();
    eprintln!("moves took {:?}", started.elapsed());

    // Every message in exactly one of A, B, C, once; none left in INBOX.
    let mut everywhere: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for folder in ["INBOX", "A", "B", "C"] {
        let dir = if folder == "INBOX" {
            server.maildir("alice")
        } else {
            server.maildir("alice").join(format!(".{folder}"))
        };
        for (subject, count) in census(&dir) {
            for _ in 0..count {
                everywhere
                    .entry(subject.clone())
                    .or_default()
                    .push(folder.to_string());
            }
        }
    }
    let problems: Vec<String> = (0..N)
        .map(|n| format!("move-{n:02}"))
        .filter_map(|subject| {
            let places = everywhere.get(&subject).cloned().unwrap_or_default();
            (places.len() != 1 || places[0] == "INBOX").then(|| format!("{subject}: {places:?}"))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "each message exactly once in A, B or C:\n{}",
        problems.join("\n")
    );
    assert_eq!(everywhere.len(), N as usize, "{everywhere:?}");

    // The COPYUID codes account for every message exactly once between the sessions,
    // and agree with where the messages are.
    let mut reported: Vec<u32> = Vec::new();
    for (target, moved, left) in &results {
        assert!(left.is_empty(), "{target}: INBOX still lists {left:?}");
        let in_target = everywhere.values().filter(|p| p[0] == *target).count();
        assert_eq!(
            moved.len(),
            in_target,
            "{target}: COPYUID names {} messages but {in_target} are there",
            moved.len()
        );
        reported.extend(moved);
    }
    reported.sort_unstable();
    let expected: Vec<u32> = {
        let mut all = reported.clone();
        all.dedup();
        all
    };
    assert_eq!(
        reported, expected,
        "a message reported moved by two sessions"
    );
    assert_eq!(reported.len(), N as usize);

    // Each target folder lists what is on disk, with distinct UIDs.
    let mut check = Imap::logged_in(imap, PW);
    for target in ["A", "B", "C"] {
        check.ok(&format!("SELECT {target}"));
        let listing = listing(&mut check);
        let uids: BTreeSet<u32> = listing.iter().map(|(u, _)| *u).collect();
        assert_eq!(uids.len(), listing.len(), "{target}: {listing:?}");
        let on_disk = everywhere.values().filter(|p| p[0] == target).count();
        assert_eq!(listing.len(), on_disk, "{target}: {listing:?}");
    }
    assert_quota_agrees(&server.maildir("alice"));
}

#[test]
fn concurrent_flag_changes_from_two_sessions_are_all_kept() {
    const N: u32 = 30;
    let server = server();
    let imap = server.listener("imap");
    let mut client = server.client();
    for n in 0..N {
        let reply = client.send_message(
            "sender@example.org",
            &["alice@example.com"],
            &message(&format!("flag-{n:02}")),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    server.wait_for_messages("alice", N as usize);
    Imap::logged_in(imap, PW).ok("LOGOUT");
    // Each session sets its own flag on every message, one at a time, while the other
    // renames the same files for its flag; a third reads everything meanwhile.
    let barrier = Arc::new(Barrier::new(3));
    let workers: Vec<_> = ["\\Flagged", "\\Seen", ""]
        .into_iter()
        .map(|flag| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let (mut session, uids) = prepared(&barrier, || {
                    let mut session = Imap::logged_in(imap, PW);
                    session.ok("SELECT INBOX");
                    let uids: Vec<u32> =
                        listing(&mut session).into_iter().map(|(u, _)| u).collect();
                    assert_eq!(uids.len(), N as usize, "INBOX before the flag changes");
                    (session, uids)
                });
                for uid in uids {
                    if flag.is_empty() {
                        let fetched = session.ok(&format!("UID FETCH {uid} (BODY.PEEK[])"));
                        assert!(
                            fetched.contains("body of flag-"),
                            "a message being renamed must still be readable: {fetched:?}"
                        );
                    } else {
                        session.ok(&format!("UID STORE {uid} +FLAGS.SILENT ({flag})"));
                    }
                }
                session.ok("LOGOUT");
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let mut wrong = Vec::new();
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(server.maildir("alice").join(sub))
            .unwrap()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(":2,FS") {
                wrong.push(format!("{sub}/{name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "both flags on every message: {wrong:?}");
    assert_eq!(census(&server.maildir("alice")).len(), N as usize);
}

/// The second SELECT of an unchanged folder takes the listing the first session holds;
/// each session's changes must still reach the other as untagged responses, and neither
/// session's list may change under it before it is told.
#[test]
fn two_sessions_sharing_one_listing_see_each_others_changes() {
    let server = server();
    let imap = server.listener("imap");
    let mut client = server.client();
    let mut send = |subject: &str| {
        let reply = client.send_message(
            "sender@example.org",
            &["alice@example.com"],
            &message(subject),
        );
        assert!(reply.starts_with("250"), "{reply}");
    };
    for n in 0..3 {
        send(&format!("share-{n}"));
    }
    server.wait_for_messages("alice", 3);
    let mut first = Imap::logged_in(imap, PW);
    first.ok("SELECT INBOX");
    let mut second = Imap::logged_in(imap, PW);
    let selected = second.ok("SELECT INBOX");
    assert!(selected.contains("* 3 EXISTS"), "{selected}");
    // A flag change by the first reaches the second; the first sees its own at once.
    let stored = first.ok("STORE 1 +FLAGS (\\Flagged)");
    assert!(stored.contains("\\Flagged"), "{stored}");
    let heard = second.ok("NOOP");
    assert!(
        heard.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged))"),
        "{heard}"
    );
    let untouched = second.ok("FETCH 2:3 (FLAGS)");
    assert!(untouched.contains("* 2 FETCH (FLAGS ())"), "{untouched}");
    // The second expunges message 2: the first hears it, and its numbers move up.
    second.ok("STORE 2 +FLAGS.SILENT (\\Deleted)");
    let expunged = second.ok("EXPUNGE");
    assert!(expunged.contains("* 2 EXPUNGE"), "{expunged}");
    let heard = first.ok("NOOP");
    assert!(heard.contains("* 2 EXPUNGE"), "{heard}");
    // New mail reaches both.
    send("share-3");
    server.wait_for_messages("alice", 3);
    for session in [&mut first, &mut second] {
        let heard = session.ok("NOOP");
        assert!(heard.contains("* 3 EXISTS"), "{heard}");
    }
    let views: Vec<Vec<(u32, String)>> = [&mut first, &mut second]
        .into_iter()
        .map(|session| {
            let fetched = session.ok("FETCH 1:* (UID FLAGS)");
            fetched
                .lines()
                .filter(|l| l.starts_with("* "))
                .map(|l| {
                    let uid = l
                        .split("UID ")
                        .nth(1)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
                    let flags = l.split("FLAGS (").nth(1).unwrap_or_default();
                    let flags = flags.split(')').next().unwrap_or_default();
                    let flags = flags.replace("\\Recent", "");
                    (uid.unwrap_or(0), flags.trim().to_string())
                })
                .collect()
        })
        .collect();
    assert_eq!(
        views[0],
        [
            (1, "\\Flagged".to_string()),
            (3, String::new()),
            (4, String::new())
        ]
    );
    assert_eq!(views[0], views[1]);
    first.ok("LOGOUT");
    second.ok("LOGOUT");
}

#[test]
fn simultaneous_first_logins_all_succeed() {
    // A mail client often opens several connections at once, and a user may have a phone
    // and a desktop client: the very first logins to a mailbox (which create the special
    // folders and their subscriptions) can arrive together. Several accounts, so that
    // there are several first logins.
    const ACCOUNTS: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    const SESSIONS: usize = 5;
    let hash = posthorn::accounts::passwords::hash(PW).unwrap();
    let accounts: String = ACCOUNTS
        .iter()
        .map(|name| format!("[[account]]\nname = \"{name}\"\npassword = \"{hash}\"\n\n"))
        .collect();
    let server = Options::default()
        .config(&format!(
            "[[listener]]\nrole = \"imap\"\naddress = \"127.0.0.1:0\"\nallow_plaintext_auth = true\n\n\
             [[listener]]\nrole = \"pop3\"\naddress = \"127.0.0.1:0\"\nallow_plaintext_auth = true\n\n\
             [[domain]]\nname = \"example.com\"\n\n[limits]\nmax_connections_per_ip = 100\n\n{accounts}"
        ))
        .start();
    let imap = server.listener("imap");
    let pop3 = server.listener("pop3");
    let barrier = Arc::new(Barrier::new(ACCOUNTS.len() * (SESSIONS + 1)));
    let mut workers = Vec::new();
    for account in ACCOUNTS {
        for _ in 0..SESSIONS {
            let barrier = Arc::clone(&barrier);
            workers.push(std::thread::spawn(move || {
                let stream = TcpStream::connect(imap).expect("connect");
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut greeting = String::new();
                let _ = reader.read_line(&mut greeting);
                barrier.wait();
                writer
                    .write_all(format!("a LOGIN {account} \"{PW}\"\r\n").as_bytes())
                    .unwrap();
                let mut reply = String::new();
                let _ = reader.read_line(&mut reply);
                format!("{account} IMAP {reply}")
            }));
        }
        let barrier = Arc::clone(&barrier);
        workers.push(std::thread::spawn(move || {
            let stream = TcpStream::connect(pop3).expect("connect");
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            writer
                .write_all(format!("USER {account}\r\n").as_bytes())
                .unwrap();
            let _ = reader.read_line(&mut line);
            barrier.wait();
            writer
                .write_all(format!("PASS {PW}\r\n").as_bytes())
                .unwrap();
            let mut reply = String::new();
            let _ = reader.read_line(&mut reply);
            format!("{account} POP3 {reply}")
        }));
    }
    let replies: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let failed: Vec<&String> = replies
        .iter()
        .filter(|r| !(r.contains(" IMAP a OK") || r.contains(" POP3 +OK")))
        .collect();
    if !failed.is_empty() {
        let log = server.settled_log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| {
                (l.contains("posthorn_mailbox") || l.contains("posthorn_maildir"))
                    && l.contains("WARN")
            })
            .collect();
        panic!(
            "simultaneous first logins must all succeed; refused: {failed:#?}\nserver log:\n{}",
            warnings.join("\n")
        );
    }
    for account in ACCOUNTS {
        let subscriptions = std::fs::read_to_string(
            server
                .data()
                .join("mail")
                .join(account)
                .join("subscriptions"),
        )
        .unwrap_or_default();
        for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
            assert!(
                subscriptions.lines().any(|l| l == folder),
                "{account}: {folder} subscribed once the logins are done: {subscriptions:?}"
            );
        }
    }
}
