//! IMAP against the real server: Python's imaplib for whole sessions (folders, FETCH of
//! every item, STORE seen on disk, SEARCH, COPY/MOVE/EXPUNGE, APPEND and quota,
//! STARTTLS and imaps), raw sockets for IDLE, updates between sessions, login rules and
//! hostile input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::net::SocketAddr;

use std::time::{Duration, Instant};

use common::mailbox::{Imap, deliver, deliver_raw, listeners, maildir_files, message, subject_of};
use common::{Options, TestServer};

const PW: &str = "alice-imap-password";

/// A server with alice (password `PW`) at example.com and, in this order, an IMAP
/// listener that allows logins in the clear, a default one (STARTTLS first) and an
/// imaps one; `extra` goes into alice's account table first, then the rest of the file.
fn server_with(account_keys: &str, extra: &str) -> TestServer {
    let alice = posthorn::accounts::passwords::hash(PW).unwrap();
    Options::default()
        .config(&format!(
            r#"
[[listener]]
role = "imap"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[listener]]
role = "imap"
address = "127.0.0.1:0"

[[listener]]
role = "imaps"
address = "127.0.0.1:0"

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{alice}"
{account_keys}

{extra}"#
        ))
        .start()
}

fn server() -> TestServer {
    server_with("", "")
}

/// The IMAP listener that takes passwords in the clear.
fn plain_imap(server: &TestServer) -> SocketAddr {
    listeners(server, "imap")[0]
}

/// The default IMAP listener (STARTTLS before login).
fn tls_imap(server: &TestServer) -> SocketAddr {
    listeners(server, "imap")[1]
}

/// The Maildir of one of alice's folders ("INBOX" or a name).
fn folder_dir(server: &TestServer, folder: &str) -> std::path::PathBuf {
    if folder == "INBOX" {
        server.maildir("alice")
    } else {
        server.maildir("alice").join(format!(".{folder}"))
    }
}

/// The subjects in a folder on disk, sorted (duplicates kept).
fn subjects_in(server: &TestServer, folder: &str) -> Vec<String> {
    let mut subjects: Vec<String> = maildir_files(&folder_dir(server, folder))
        .iter()
        .map(|(_, content)| subject_of(content))
        .collect();
    subjects.sort();
    subjects
}

/// The flag letters (after `:2,`) of the file in `folder` whose subject is `subject`.
fn disk_flags(server: &TestServer, folder: &str, subject: &str) -> String {
    let files = maildir_files(&folder_dir(server, folder));
    let matching: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(_, content)| subject_of(content) == subject)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one file for {subject:?} in {folder}: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    matching[0]
        .0
        .split_once(":2,")
        .map(|(_, flags)| flags.to_string())
        .unwrap_or_default()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Runs a python3 script with `env` set (plus HOST, PW and MAILDIR); returns its stdout,
/// failing with its stderr when it fails.
fn python(server: &TestServer, script: &str, env: &[(&str, String)]) -> Output {
    let mut command = std::process::Command::new("python3");
    command
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .env("HOST", "127.0.0.1")
        .env("PW", PW)
        .env("MAILDIR", server.maildir("alice"))
        .env("PORT", plain_imap(server).port().to_string())
        .env("TLSPORT", tls_imap(server).port().to_string())
        .env("IMAPS", server.listener("imaps").port().to_string());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python failed:\n{stderr}\nstdout:\n{stdout}"
    );
    Output(stdout)
}

/// What a script printed: `key text` lines, and `key hex` lines from `emit`.
struct Output(String);

impl Output {
    /// The text after `key ` on its line.
    fn text(&self, key: &str) -> String {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{}", self.0))
            .to_string()
    }

    /// The bytes `emit(key, ...)` printed.
    fn bytes(&self, key: &str) -> Vec<u8> {
        hex_decode(&self.text(key))
    }

    /// The bytes as (lossy) text.
    fn data(&self, key: &str) -> String {
        String::from_utf8_lossy(&self.bytes(key)).into_owned()
    }
}

const PRELUDE: &str = r#"
import os, ssl, imaplib, base64, time, re, calendar
HOST = os.environ["HOST"]
PW = os.environ["PW"]
MAILDIR = os.environ["MAILDIR"]
def port(name):
    return int(os.environ[name])
def out(*args):
    print(*args, flush=True)
ctx = ssl._create_unverified_context()
def login(name="PORT"):
    M = imaplib.IMAP4(HOST, port(name), timeout=10)
    typ, data = M.login("alice", PW)
    assert typ == "OK", (typ, data)
    return M
def ok(result, what):
    typ, data = result
    assert typ == "OK", f"{what}: expected OK, got {typ} {data}"
    return data
def no(result, what, code):
    typ, data = result
    text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
    assert typ == "NO" and code in text, f"{what}: expected NO {code}, got {typ} {data}"
def flat(data):
    # imaplib splits literals out; put them back as the server sent them.
    parts = []
    for d in data:
        if isinstance(d, tuple):
            parts.append(d[0] + b"\r\n" + d[1])
        elif d is not None:
            parts.append(d + b"\r\n")
    return b"".join(parts)
def emit(key, data):
    out(key, flat(data).hex())
def error(call):
    try:
        result = call()
        return "no error: " + repr(result)
    except imaplib.IMAP4.error as e:
        return str(e)
def folder_dir(folder):
    return MAILDIR if folder == "INBOX" else os.path.join(MAILDIR, "." + folder)
def files(folder):
    d = folder_dir(folder)
    return sorted(n for sub in ("cur", "new") if os.path.isdir(os.path.join(d, sub)) for n in os.listdir(os.path.join(d, sub)))
def disk_flags(folder, subject):
    d = folder_dir(folder)
    found = []
    for sub in ("cur", "new"):
        for n in os.listdir(os.path.join(d, sub)):
            with open(os.path.join(d, sub, n), "rb") as f:
                content = b"\r\n" + f.read()
                if ("\r\nSubject: " + subject + "\r\n").encode() in content:
                    found.append(n)
    assert len(found) == 1, f"one file for {subject} in {folder}: {found}"
    return found[0].split(":2,")[1] if ":2," in found[0] else ""
def search(M, *criteria):
    return ok(M.search(None, *criteria), f"SEARCH {criteria}")[0].decode()
"#;

fn base64_plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// The value of a FETCH item in `response` (`BODY[1.1]`, `RFC822.SIZE`...): an IMAP
/// string (quoted or literal), NIL, or the atom/list that follows the name.
fn fetch_item(response: &[u8], name: &str) -> Vec<u8> {
    let needle = format!("{name} ");
    let at = response
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("no {name} in {:?}", String::from_utf8_lossy(response)));
    let rest = &response[at + needle.len()..];
    match rest.first() {
        Some(b'"') => {
            let mut value = Vec::new();
            let mut escaped = false;
            for &b in &rest[1..] {
                match (escaped, b) {
                    (false, b'\\') => escaped = true,
                    (false, b'"') => return value,
                    _ => {
                        value.push(b);
                        escaped = false;
                    }
                }
            }
            panic!("unterminated quoted string after {name}")
        }
        Some(b'{') => {
            let close = rest.iter().position(|&b| b == b'}').unwrap();
            let n: usize = std::str::from_utf8(&rest[1..close])
                .unwrap()
                .parse()
                .unwrap();
            let start = close + 3; // "}\r\n"
            rest[start..start + n].to_vec()
        }
        Some(b'(') => {
            // A parenthesised list: up to the matching parenthesis, strings skipped.
            let mut depth = 0;
            let mut quoted = false;
            let mut escaped = false;
            for (i, &b) in rest.iter().enumerate() {
                if quoted {
                    match (escaped, b) {
                        (false, b'\\') => escaped = true,
                        (false, b'"') => quoted = false,
                        _ => escaped = false,
                    }
                    continue;
                }
                match b {
                    b'"' => quoted = true,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            return rest[..=i].to_vec();
                        }
                    }
                    _ => {}
                }
            }
            panic!("unbalanced list after {name}")
        }
        _ => rest
            .iter()
            .take_while(|&&b| b != b' ' && b != b')' && b != b'\r')
            .copied()
            .collect(),
    }
}

#[test]
fn imaplib_login_capabilities_and_folders() {
    let server = server();
    deliver(&server, &["status-1", "status-2"]);
    let inbox_size: usize = server.messages("alice").iter().map(Vec::len).sum();
    let out = python(
        &server,
        r#"
M = imaplib.IMAP4(HOST, port("PORT"), timeout=10)
out("greeting-caps", " ".join(M.capabilities))
typ, data = M.login("alice", PW)
out("login", typ, data[0].decode())
out("caps", ok(M.capability(), "CAPABILITY")[0].decode())
ok(M.noop(), "NOOP")
lists = [d.decode() for d in ok(M.list(), "LIST")]
out("list", "|".join(lists))
typ, data = M._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
out("list-special", "|".join(d.decode() for d in M._untagged_response(typ, data, "LIST")[1]))
out("list-delimiter", ok(M.list('""', '""'), "LIST delimiter")[0].decode())

# Hierarchy: CREATE, LIST patterns, RENAME with children, DELETE.
ok(M.create("Work"), "CREATE Work")
ok(M.create("Work.2024"), "CREATE Work.2024")
no(M.create("Work"), "CREATE Work again", "ALREADYEXISTS")
no(M.create("INBOX"), "CREATE INBOX", "")
no(M.create("a..b"), "CREATE a..b", "")
out("list-work", "|".join(d.decode() for d in ok(M.list('""', "Work*"), "LIST Work*")))
out("list-percent", "|".join(d.decode() for d in ok(M.list('""', "%"), "LIST %")))
out("disk-work", os.path.isdir(os.path.join(MAILDIR, ".Work", "cur")), os.path.isdir(os.path.join(MAILDIR, ".Work.2024", "cur")))
ok(M.rename("Work", "Jobs"), "RENAME Work Jobs")
out("disk-renamed", os.path.isdir(os.path.join(MAILDIR, ".Jobs", "cur")), os.path.isdir(os.path.join(MAILDIR, ".Jobs.2024", "cur")), os.path.exists(os.path.join(MAILDIR, ".Work")))
no(M.rename("Nope", "Other"), "RENAME missing", "NONEXISTENT")
typ, data = M.delete("Jobs")
out("delete-parent", typ, data[0].decode())
ok(M.delete("Jobs.2024"), "DELETE Jobs.2024")
ok(M.delete("Jobs"), "DELETE Jobs")
no(M.delete("Jobs"), "DELETE Jobs again", "NONEXISTENT")
no(M.delete("INBOX"), "DELETE INBOX", "")
out("disk-deleted", os.path.exists(os.path.join(MAILDIR, ".Jobs")), os.path.exists(os.path.join(MAILDIR, ".Jobs.2024")))

# Subscriptions.
ok(M.create("News"), "CREATE News")
ok(M.subscribe("News"), "SUBSCRIBE News")
out("lsub", "|".join(d.decode() for d in ok(M.lsub(), "LSUB")))
typ, data = M._simple_command("LIST", "(SUBSCRIBED)", '""', "*")
out("list-subscribed", "|".join(d.decode() for d in M._untagged_response(typ, data, "LIST")[1]))
ok(M.unsubscribe("News"), "UNSUBSCRIBE News")
out("lsub-after", "|".join(d.decode() for d in ok(M.lsub(), "LSUB") if d))

# STATUS, also through LIST-STATUS.
out("status", ok(M.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)"), "STATUS")[0].decode())
no(M.status("Nope", "(MESSAGES)"), "STATUS missing", "NONEXISTENT")
typ, data = M._simple_command("LIST", '""', "*", "RETURN", "(STATUS (MESSAGES UNSEEN))")
out("list-status", "|".join(d.decode() for d in M._untagged_response(typ, data, "STATUS")[1]))

# NAMESPACE, ID, ENABLE.
out("namespace", ok(M.namespace(), "NAMESPACE")[0].decode())
typ, data = M.xatom("ID", '("name" "imaplib-test")')
out("id", typ, M._untagged_response(typ, data, "ID")[1][0].decode())
out("enable", M.enable("CONDSTORE")[0])

# SELECT of a missing mailbox; EXAMINE; CLOSE; UNSELECT.
no(M.select("Nope"), "SELECT missing", "NONEXISTENT")
typ, data = M.select("INBOX", readonly=True)
out("examine", typ, data[0].decode(), "READ-ONLY" in M.untagged_responses)
ok(M.close(), "CLOSE")
typ, data = M.select("INBOX")
out("select", typ, data[0].decode(), M.untagged_responses.get("UIDVALIDITY"), M.untagged_responses.get("UIDNEXT"))
ok(M.unselect(), "UNSELECT")
M.state = "SELECTED"  # imaplib would refuse by itself: ask the server
out("fetch-unselected", error(lambda: M.fetch("1", "(FLAGS)")))
M.state = "AUTH"

# RENAME INBOX moves its messages into the new folder.
ok(M.rename("INBOX", "Old"), "RENAME INBOX")
out("old-status", ok(M.status("Old", "(MESSAGES)"), "STATUS Old")[0].decode())
out("inbox-status", ok(M.status("INBOX", "(MESSAGES)"), "STATUS INBOX")[0].decode())
typ, data = M.logout()
out("logout", typ)
"#,
        &[],
    );
    let greeting = out.text("greeting-caps");
    for cap in [
        "IMAP4REV1",
        "IDLE",
        "MOVE",
        "UNSELECT",
        "UIDPLUS",
        "NAMESPACE",
        "ID",
        "ENABLE",
        "LITERAL+",
        "SASL-IR",
        "SPECIAL-USE",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "CHILDREN",
        "STATUS=SIZE",
        "STARTTLS",
        "AUTH=PLAIN",
    ] {
        assert!(
            greeting.split(' ').any(|c| c.eq_ignore_ascii_case(cap)),
            "capability {cap} missing: {greeting}"
        );
    }
    assert!(!greeting.contains("LOGINDISABLED"), "{greeting}");
    assert!(out.text("login").starts_with("OK"), "{}", out.0);
    let caps = out.text("caps");
    assert!(
        caps.contains("IMAP4rev1") && caps.contains("IDLE"),
        "{caps}"
    );
    assert!(
        !caps.contains("AUTH=PLAIN") && !caps.contains("STARTTLS"),
        "no login capabilities once logged in: {caps}"
    );

    let list = out.text("list");
    let entries: Vec<&str> = list.split('|').collect();
    assert!(
        entries
            .iter()
            .any(|l| l.ends_with(" INBOX") || l.ends_with(" \"INBOX\"")),
        "{list}"
    );
    for (name, attribute) in [
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        assert!(
            entries
                .iter()
                .any(|l| l.ends_with(&format!("\".\" {name}")) && l.contains(attribute)),
            "{name} with {attribute} at first login: {list}"
        );
        assert!(
            folder_dir(&server, name).join("cur").is_dir(),
            "{name} on disk"
        );
    }
    assert_eq!(entries.len(), 6, "{list}");
    let special = out.text("list-special");
    assert_eq!(special.split('|').count(), 5, "{special}");
    assert!(!special.contains("INBOX"), "{special}");
    assert_eq!(out.text("list-delimiter"), "(\\Noselect) \".\" \"\"");

    let work = out.text("list-work");
    assert!(
        work.split('|')
            .any(|l| l.ends_with(" Work") && l.contains("\\HasChildren")),
        "{work}"
    );
    assert!(
        work.split('|')
            .any(|l| l.ends_with(" Work.2024") && l.contains("\\HasNoChildren")),
        "{work}"
    );
    let percent = out.text("list-percent");
    assert!(
        percent.contains(" Work") && !percent.contains("Work.2024"),
        "% stops at the delimiter: {percent}"
    );
    assert_eq!(out.text("disk-work"), "True True");
    assert_eq!(
        out.text("disk-renamed"),
        "True True False",
        "RENAME takes the children along on disk"
    );
    let delete_parent = out.text("delete-parent");
    assert!(
        delete_parent.starts_with("NO"),
        "deleting a folder with children: {delete_parent}"
    );
    assert_eq!(out.text("disk-deleted"), "False False");

    let lsub = out.text("lsub");
    assert!(lsub.contains(" News"), "{lsub}");
    assert!(
        lsub.contains(" Sent"),
        "special folders are subscribed: {lsub}"
    );
    assert!(
        out.text("list-subscribed").contains("\\Subscribed"),
        "{}",
        out.0
    );
    assert!(!out.text("lsub-after").contains("News"), "{}", out.0);

    let status = out.text("status");
    for item in [
        "MESSAGES 2".to_string(),
        "RECENT 2".to_string(),
        "UIDNEXT 3".to_string(),
        "UNSEEN 2".to_string(),
        format!("SIZE {inbox_size}"),
    ] {
        assert!(status.contains(&item), "STATUS lacks {item}: {status}");
    }
    assert!(status.contains("UIDVALIDITY "), "{status}");
    let list_status = out.text("list-status");
    assert!(
        list_status.contains("INBOX (MESSAGES 2 UNSEEN 2)"),
        "{list_status}"
    );
    assert!(
        list_status.contains("Sent (MESSAGES 0 UNSEEN 0)"),
        "{list_status}"
    );
    assert_eq!(out.text("namespace"), "((\"\" \".\")) NIL NIL");
    let id = out.text("id");
    assert!(id.starts_with("OK") && id.contains("Posthorn"), "{id}");
    server.wait_for_log("IMAP client ID client=127.0.0.1 fields=\"name\"=\"imaplib-test\"");
    assert_eq!(out.text("enable"), "OK");

    assert_eq!(out.text("examine"), "OK 2 True", "{}", out.0);
    let select = out.text("select");
    assert!(select.starts_with("OK 2 "), "{select}");
    assert!(select.contains("[b'3']"), "UIDNEXT 3: {select}");
    assert!(
        out.text("fetch-unselected").contains("BAD"),
        "FETCH after UNSELECT: {}",
        out.0
    );
    assert!(out.text("old-status").contains("MESSAGES 2"), "{}", out.0);
    assert!(out.text("inbox-status").contains("MESSAGES 0"), "{}", out.0);
    assert_eq!(subjects_in(&server, "Old"), ["status-1", "status-2"]);
    assert_eq!(out.text("logout"), "BYE");
}

/// A multipart/mixed message with a multipart/alternative and an attachment.
const MULTIPART: &str = "From: Bob Example <bob@example.org>\r\n\
To: Alice <alice@example.com>\r\n\
Cc: carol@example.net\r\n\
Subject: multipart test\r\n\
Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n\
Message-ID: <multi@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 7bit\r\n\
\r\n\
plain body line\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>html body</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
Content-Disposition: attachment; filename=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQF\r\n\
--outer--\r\n";

#[test]
fn imaplib_fetch_every_item() {
    let server = server();
    deliver_raw(&server, &[MULTIPART.to_string(), message("second")]);
    let disk = server.messages("alice");
    let stored = disk
        .iter()
        .find(|m| subject_of(m) == "multipart test")
        .unwrap()
        .clone();
    let out = python(
        &server,
        r#"
M = login()
typ, data = M.select("INBOX")
out("select", typ, data[0].decode())
out("flags", M.untagged_responses.get("FLAGS"))
out("permanentflags", M.untagged_responses.get("PERMANENTFLAGS"))
# Find the multipart one by subject.
n = search(M, "SUBJECT", '"multipart test"')
out("n", n)
emit("meta", ok(M.fetch(n, "(FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE)"), "FETCH meta"))
emit("body", ok(M.fetch(n, "(BODY)"), "FETCH BODY"))
emit("bodystructure", ok(M.fetch(n, "(BODYSTRUCTURE)"), "FETCH BODYSTRUCTURE"))
for key, section in [
    ("p11", "BODY.PEEK[1.1]"), ("p12", "BODY.PEEK[1.2]"), ("p1", "BODY.PEEK[1]"),
    ("p2", "BODY.PEEK[2]"), ("p2mime", "BODY.PEEK[2.MIME]"), ("text", "BODY.PEEK[TEXT]"),
    ("header", "BODY.PEEK[HEADER]"), ("fields", "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]"),
    ("fieldsnot", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM)]"),
    ("partial", "BODY.PEEK[]<0.20>"), ("partial2", "BODY.PEEK[TEXT]<3.5>"),
    ("rfc822header", "RFC822.HEADER"), ("p11mime", "BODY.PEEK[1.1.MIME]"),
    ("p99", "BODY.PEEK[9]"),
]:
    emit(key, ok(M.fetch(n, "(" + section + ")"), "FETCH " + section))
emit("after-peek", ok(M.fetch(n, "(FLAGS)"), "FETCH FLAGS"))
out("disk-after-peek", disk_flags("INBOX", "multipart test"))
emit("full", ok(M.fetch(n, "(BODY[])"), "FETCH BODY[]"))
out("disk-after-body", disk_flags("INBOX", "multipart test"))
m = "2" if n == "1" else "1"
emit("rfc822", ok(M.fetch(m, "(RFC822.TEXT)"), "FETCH RFC822.TEXT"))
out("disk-after-rfc822", disk_flags("INBOX", "second"))
emit("macros", ok(M.fetch("1:*", "FULL"), "FETCH FULL"))
emit("fast", ok(M.fetch("1:*", "FAST"), "FETCH FAST"))
uid = re.search(rb"UID (\d+)", flat(ok(M.fetch(n, "(UID)"), "FETCH UID"))).group(1).decode()
emit("uidfetch", ok(M.uid("FETCH", uid, "(RFC822.SIZE)"), "UID FETCH"))
emit("uidfetch-missing", ok(M.uid("FETCH", "999", "(FLAGS)"), "UID FETCH missing"))
out("fetch-past-end", error(lambda: M.fetch("99", "(FLAGS)")))
out("fetch-bad-item", error(lambda: M.fetch("1", "(NONSENSE)")))
ok(M.store(n, "-FLAGS", r"(\Seen)"), "STORE -Seen")
# EXAMINE: reading does not set \Seen.
typ, data = M.select("INBOX", readonly=True)
emit("examine-body", ok(M.fetch(n, "(BODY[TEXT])"), "FETCH in EXAMINE"))
out("disk-after-examine", disk_flags("INBOX", "multipart test"))
no(M.store(n, "+FLAGS", r"(\Flagged)"), "STORE in EXAMINE", "READ-ONLY")
M.logout()
"#,
        &[],
    );
    assert!(out.text("select").starts_with("OK 2"), "{}", out.0);
    let flags = out.text("flags");
    for flag in [
        "\\\\Answered",
        "\\\\Flagged",
        "\\\\Deleted",
        "\\\\Seen",
        "\\\\Draft",
    ] {
        assert!(flags.contains(flag), "FLAGS lacks {flag}: {flags}");
    }
    assert!(out.text("permanentflags").contains("\\\\*"), "{}", out.0);

    let meta = out.bytes("meta");
    assert_eq!(
        String::from_utf8_lossy(&fetch_item(&meta, "RFC822.SIZE")),
        stored.len().to_string(),
        "RFC822.SIZE is the stored size"
    );
    let flags = String::from_utf8_lossy(&fetch_item(&meta, "FLAGS")).into_owned();
    assert!(!flags.contains("\\Seen"), "delivered unseen: {flags}");
    let date = String::from_utf8(fetch_item(&meta, "INTERNALDATE")).unwrap();
    assert!(
        date.len() == 26 && date.ends_with(" +0000"),
        "INTERNALDATE format dd-Mon-yyyy hh:mm:ss +zzzz: {date:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&fetch_item(&meta, "ENVELOPE")),
        "(\"Mon, 06 Jan 2025 10:00:00 +0000\" \"multipart test\" \
         ((\"Bob Example\" NIL \"bob\" \"example.org\")) \
         ((\"Bob Example\" NIL \"bob\" \"example.org\")) \
         ((\"Bob Example\" NIL \"bob\" \"example.org\")) \
         ((\"Alice\" NIL \"alice\" \"example.com\")) \
         ((NIL NIL \"carol\" \"example.net\")) NIL NIL \"<multi@example.org>\")"
    );

    let structure =
        String::from_utf8_lossy(&fetch_item(&out.bytes("bodystructure"), "BODYSTRUCTURE"))
            .to_ascii_lowercase();
    assert!(
        structure.starts_with("(((\"text\" \"plain\""),
        "{structure}"
    );
    for part in [
        "(\"text\" \"plain\" (\"charset\" \"utf-8\") nil nil \"7bit\" 15 ",
        "(\"text\" \"html\" (\"charset\" \"utf-8\") nil nil \"7bit\" 16 ",
        "\"alternative\" (\"boundary\" \"inner\")",
        "(\"application\" \"octet-stream\" (\"name\" \"a.bin\") nil nil \"base64\" 8 ",
        "(\"attachment\" (\"filename\" \"a.bin\"))",
        "\"mixed\" (\"boundary\" \"outer\")",
    ] {
        assert!(
            structure.contains(part),
            "BODYSTRUCTURE lacks {part}: {structure}"
        );
    }
    let body =
        String::from_utf8_lossy(&fetch_item(&out.bytes("body"), "BODY")).to_ascii_lowercase();
    assert!(
        body.starts_with("(((\"text\" \"plain\"") && body.contains("\"alternative\")"),
        "{body}"
    );
    assert!(
        !body.contains("boundary"),
        "BODY has no extension data: {body}"
    );

    let section = |key: &str, name: &str| fetch_item(&out.bytes(key), name);
    assert_eq!(section("p11", "BODY[1.1]"), b"plain body line");
    assert_eq!(section("p12", "BODY[1.2]"), b"<p>html body</p>");
    let p1 = String::from_utf8(section("p1", "BODY[1]")).unwrap();
    assert!(
        p1.starts_with("--inner\r\nContent-Type: text/plain")
            && p1.trim_end().ends_with("--inner--"),
        "BODY[1]: {p1:?}"
    );
    assert_eq!(section("p2", "BODY[2]"), b"AAECAwQF");
    assert_eq!(
        String::from_utf8(section("p2mime", "BODY[2.MIME]")).unwrap(),
        "Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
         Content-Disposition: attachment; filename=\"a.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    );
    let (header, text) = {
        let at = stored.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (stored[..at + 4].to_vec(), stored[at + 4..].to_vec())
    };
    assert_eq!(section("text", "BODY[TEXT]"), text);
    assert_eq!(section("header", "BODY[HEADER]"), header);
    assert_eq!(section("rfc822header", "RFC822.HEADER"), header);
    assert_eq!(
        String::from_utf8(section("fields", "BODY[HEADER.FIELDS (SUBJECT FROM)]")).unwrap(),
        "From: Bob Example <bob@example.org>\r\nSubject: multipart test\r\n\r\n"
    );
    let not = String::from_utf8(section(
        "fieldsnot",
        "BODY[HEADER.FIELDS.NOT (SUBJECT FROM)]",
    ))
    .unwrap();
    assert!(
        !not.contains("Subject:")
            && !not.contains("\nFrom:")
            && not.contains("Message-ID: <multi@example.org>\r\n"),
        "{not:?}"
    );
    assert_eq!(section("partial", "BODY[]<0>"), stored[..20].to_vec());
    assert_eq!(section("partial2", "BODY[TEXT]<3>"), text[3..8].to_vec());
    assert_eq!(
        String::from_utf8(section("p11mime", "BODY[1.1.MIME]")).unwrap(),
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    );
    let missing = section("p99", "BODY[9]");
    assert!(
        missing.is_empty() || missing == b"NIL",
        "a part that does not exist: {}",
        out.data("p99")
    );

    let flags =
        String::from_utf8_lossy(&fetch_item(&out.bytes("after-peek"), "FLAGS")).into_owned();
    assert!(
        !flags.contains("\\Seen"),
        "PEEK does not set \\Seen: {flags}"
    );
    assert_eq!(out.text("disk-after-peek"), "");
    let full = out.bytes("full");
    assert_eq!(
        fetch_item(&full, "BODY[]"),
        stored,
        "BODY[] is the stored message"
    );
    let flags = String::from_utf8_lossy(&fetch_item(&full, "FLAGS")).into_owned();
    assert!(
        flags.contains("\\Seen"),
        "BODY[] sets \\Seen and reports it: {}",
        out.data("full")
    );
    assert_eq!(
        out.text("disk-after-body"),
        "S",
        "\\Seen is in the file name"
    );
    assert!(
        out.data("rfc822").contains("body of second"),
        "{}",
        out.data("rfc822")
    );
    assert_eq!(
        out.text("disk-after-rfc822"),
        "S",
        "RFC822.TEXT sets \\Seen"
    );

    let full_macro = out.data("macros");
    for item in ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY ("] {
        assert!(full_macro.contains(item), "FULL lacks {item}: {full_macro}");
    }
    assert_eq!(full_macro.matches("RFC822.SIZE").count(), 2, "{full_macro}");
    let fast = out.data("fast");
    assert!(
        fast.contains("FLAGS") && fast.contains("RFC822.SIZE") && !fast.contains("ENVELOPE"),
        "{fast}"
    );
    let uid_fetch = out.data("uidfetch");
    assert!(
        uid_fetch.contains("UID ") && uid_fetch.contains(&format!("RFC822.SIZE {}", stored.len())),
        "{uid_fetch}"
    );
    assert_eq!(
        out.data("uidfetch-missing"),
        "",
        "UID FETCH of no message is empty"
    );
    assert!(out.text("fetch-past-end").contains("BAD"), "{}", out.0);
    assert!(out.text("fetch-bad-item").contains("BAD"), "{}", out.0);
    assert_eq!(
        fetch_item(&out.bytes("examine-body"), "BODY[TEXT]"),
        text,
        "{}",
        out.0
    );
    assert_eq!(
        out.text("disk-after-examine"),
        "",
        "EXAMINE must not set \\Seen"
    );
}

/// Messages that SEARCH tells apart.
fn search_messages() -> Vec<String> {
    [
        ("bob@example.org", "alice@example.com", "Lunch plans", "pizza at noon".to_string()),
        ("carol@example.net", "team@example.com", "Report", "x".repeat(5000)),
        ("bob@example.org", "alice@example.com", "Re: Lunch plans", "sushi instead".to_string()),
        ("dave@example.com", "alice@example.com", "Newsletter", "unsubscribe here".to_string()),
    ]
    .iter()
    .map(|(from, to, subject, body)| {
        format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@example.org>\r\n\r\n{body}\r\n", subject.replace(' ', "."))
    })
    .collect()
}

#[test]
fn imaplib_store_flags_on_disk_and_search() {
    let server = server();
    deliver_raw(&server, &search_messages());
    let out = python(
        &server,
        r#"
M = login()
ok(M.select("INBOX"), "SELECT")
# Sequence numbers by subject (delivery order is not what this test is about).
seq = {}
for n in range(1, 5):
    data = flat(ok(M.fetch(str(n), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "FETCH subject"))
    subject = re.search(rb"Subject: ([^\r]*)", data).group(1).decode()
    seq[subject] = str(n)
L, R, Re, N = seq["Lunch plans"], seq["Report"], seq["Re: Lunch plans"], seq["Newsletter"]
def nums(*subjects):
    return " ".join(sorted((seq[s] for s in subjects), key=int))
emit("store-flagged", ok(M.store(L, "+FLAGS", r"(\Flagged)"), "STORE +Flagged"))
out("disk-flagged", disk_flags("INBOX", "Lunch plans"))
ok(M.store(L + "," + R, "+FLAGS", r"(\Seen)"), "STORE +Seen")
out("disk-seen", disk_flags("INBOX", "Lunch plans"), disk_flags("INBOX", "Report"))
ok(M.store(Re, "+FLAGS", "($Label1)"), "STORE keyword")
out("disk-keyword", disk_flags("INBOX", "Re: Lunch plans"))
ok(M.store(Re, "+FLAGS", "($Forwarded)"), "STORE $Forwarded")
out("disk-forwarded", disk_flags("INBOX", "Re: Lunch plans"))
ok(M.store(R, "-FLAGS", r"(\Seen)"), "STORE -Seen")
out("disk-unseen", disk_flags("INBOX", "Report"))
emit("store-replace", ok(M.store(N, "FLAGS", r"(\Answered \Draft)"), "STORE FLAGS"))
out("disk-replace", disk_flags("INBOX", "Newsletter"))
emit("store-silent", ok(M.store(N, "+FLAGS.SILENT", r"(\Seen)"), "STORE .SILENT"))
out("disk-silent", disk_flags("INBOX", "Newsletter"))
emit("flags-all", ok(M.fetch("1:4", "(FLAGS)"), "FETCH FLAGS"))

today = time.strftime("%d-%b-%Y", time.gmtime())
checks = [
    (("ALL",), nums("Lunch plans", "Report", "Re: Lunch plans", "Newsletter")),
    (("FLAGGED",), nums("Lunch plans")),
    (("UNFLAGGED",), nums("Report", "Re: Lunch plans", "Newsletter")),
    (("SEEN",), nums("Lunch plans", "Newsletter")),
    (("UNSEEN",), nums("Report", "Re: Lunch plans")),
    (("ANSWERED",), nums("Newsletter")),
    (("DRAFT",), nums("Newsletter")),
    (("KEYWORD", "$Label1"), nums("Re: Lunch plans")),
    (("UNKEYWORD", "$Label1"), nums("Lunch plans", "Report", "Newsletter")),
    (("FROM", '"bob"'), nums("Lunch plans", "Re: Lunch plans")),
    (("TO", "team"), nums("Report")),
    (("SUBJECT", "lunch"), nums("Lunch plans", "Re: Lunch plans")),
    (("BODY", "sushi"), nums("Re: Lunch plans")),
    (("TEXT", "Newsletter"), nums("Newsletter")),
    (("TEXT", "pizza"), nums("Lunch plans")),
    (("HEADER", "Message-ID", "Report@example"), nums("Report")),
    (("LARGER", "4000"), nums("Report")),
    (("SMALLER", "4000"), nums("Lunch plans", "Re: Lunch plans", "Newsletter")),
    (("NOT", "FROM", "bob"), nums("Report", "Newsletter")),
    (("OR", "FLAGGED", "ANSWERED"), nums("Lunch plans", "Newsletter")),
    (("(SUBJECT", "lunch", "UNSEEN)"), nums("Re: Lunch plans")),
    (("SUBJECT", "lunch", "NOT", "SEEN"), nums("Re: Lunch plans")),
    (("SINCE", "1-Jan-2000"), nums("Lunch plans", "Report", "Re: Lunch plans", "Newsletter")),
    (("BEFORE", "1-Jan-2000"), ""),
    (("ON", today), nums("Lunch plans", "Report", "Re: Lunch plans", "Newsletter")),
    (("NEW",), nums("Report", "Re: Lunch plans")),
    (("DELETED",), ""),
    (("2:3",), "2 3"),
    (("CHARSET", "UTF-8", "SUBJECT", "lunch"), nums("Lunch plans", "Re: Lunch plans")),
]
for criteria, expected in checks:
    got = search(M, *criteria)
    out("search", " ".join(criteria), "=>", got, "expected", expected)
    assert got == expected, f"SEARCH {criteria}: got {got!r}, expected {expected!r}"
uids = ok(M.uid("SEARCH", "FROM", "bob"), "UID SEARCH")[0].decode()
out("uid-search", uids)
no(M.search("KOI8-R", "SUBJECT", "x"), "SEARCH KOI8-R", "BADCHARSET")
out("search-bad", error(lambda: M.search(None, "NOSUCHKEY")))
ok(M.select("INBOX"), "SELECT again")
out("permanent-keywords", M.untagged_responses.get("FLAGS"))
M.logout()
"#,
        &[],
    );
    let flagged = out.data("store-flagged");
    assert!(
        flagged.contains("FLAGS (\\Flagged") && !flagged.contains("\\Seen"),
        "STORE answers with the new flags: {flagged}"
    );
    assert_eq!(out.text("disk-flagged"), "F");
    assert_eq!(out.text("disk-seen"), "FS S");
    assert_eq!(out.text("disk-keyword"), "a", "first keyword is letter a");
    assert_eq!(
        out.text("disk-forwarded"),
        "Pa",
        "$Forwarded is Maildir's P"
    );
    assert_eq!(out.text("disk-unseen"), "");
    let replaced = out.data("store-replace");
    assert!(
        replaced.contains("\\Answered")
            && replaced.contains("\\Draft")
            && !replaced.contains("\\Seen"),
        "{replaced}"
    );
    assert_eq!(out.text("disk-replace"), "DR");
    assert_eq!(out.data("store-silent"), "", ".SILENT: no FETCH response");
    assert_eq!(out.text("disk-silent"), "DRS");
    assert!(
        out.text("permanent-keywords").contains("$Label1"),
        "{}",
        out.0
    );
    let uids = out.text("uid-search");
    assert_eq!(uids.split(' ').count(), 2, "{uids}");
    assert!(out.text("search-bad").contains("BAD"), "{}", out.0);
    // The flags as the other sessions (and the disk) see them.
    assert_eq!(disk_flags(&server, "INBOX", "Lunch plans"), "FS");
    assert_eq!(disk_flags(&server, "INBOX", "Re: Lunch plans"), "Pa");
}

#[test]
fn imaplib_copy_move_and_expunge() {
    let server = server();
    deliver(&server, &["c1", "c2", "c3", "c4", "c5"]);
    let out = python(
        &server,
        r#"
M = login()
ok(M.create("Work"), "CREATE Work")
ok(M.select("INBOX"), "SELECT")
def seq_of(subject):
    n = search(M, "HEADER", "Subject", subject)
    assert n and " " not in n, f"{subject}: {n!r}"
    return n
def uid_of(subject):
    return ok(M.uid("SEARCH", "HEADER", "Subject", subject), "UID SEARCH")[0].decode()
ok(M.store(seq_of("c1"), "+FLAGS", r"(\Flagged)"), "STORE c1")
typ, data = M.copy(seq_of("c1"), "Archive")
out("copy", typ, data[0].decode())
out("copy-disk", disk_flags("Archive", "c1"), disk_flags("INBOX", "c1"))
M.untagged_responses.clear()
typ, data = M.uid("COPY", uid_of("c5"), "Archive")
out("uid-copy", typ, M.untagged_responses.get("COPYUID"))
n = seq_of("c2")
M.untagged_responses.clear()
typ, data = M._simple_command("MOVE", n, "Work")
out("move", typ, data[0].decode(), "COPYUID" if M.untagged_responses.get("COPYUID") else "no-COPYUID", "EXPUNGE" if M.untagged_responses.get("EXPUNGE") == [n.encode()] else M.untagged_responses.get("EXPUNGE"))
M.untagged_responses.clear()
typ, data = M.uid("MOVE", uid_of("c3"), "Work")
out("uid-move", typ, M.untagged_responses.get("COPYUID"), M.untagged_responses.get("EXPUNGE"))
M.untagged_responses.clear()
out("exists-after-move", search(M, "ALL"))
no(M.copy("1", "Nope"), "COPY to a missing mailbox", "TRYCREATE")
no(M._simple_command("MOVE", "1", "Nope"), "MOVE to a missing mailbox", "TRYCREATE")
typ, data = M._simple_command("MOVE", "1", "INBOX")
out("move-same", typ, data[0].decode())
# EXPUNGE of \Deleted only.
ok(M.store(seq_of("c1"), "+FLAGS", r"(\Deleted)"), "STORE c1 Deleted")
typ, data = M.expunge()
out("expunge", typ, data)
# UID EXPUNGE of one of two \Deleted.
ok(M.store("1:*", "+FLAGS", r"(\Deleted)"), "STORE all Deleted")
typ, data = M.uid("EXPUNGE", uid_of("c4"))
out("uid-expunge", typ, data)
out("after-uid-expunge", search(M, "ALL"))
# CLOSE expunges the rest.
ok(M.close(), "CLOSE")
out("inbox-files", len(files("INBOX")))
# UNSELECT does not.
ok(M.select("Work"), "SELECT Work")
ok(M.store("1", "+FLAGS", r"(\Deleted)"), "STORE in Work")
ok(M.unselect(), "UNSELECT")
out("work-files", len(files("Work")))
typ, data = M.select("Archive")
out("archive", typ, data[0].decode())
M.logout()
"#,
        &[],
    );
    let copy = out.text("copy");
    assert!(copy.starts_with("OK [COPYUID "), "{copy}");
    assert_eq!(out.text("copy-disk"), "F F", "COPY keeps the flags");
    assert!(
        out.text("uid-copy").starts_with("OK [b'"),
        "UID COPY gives COPYUID: {}",
        out.0
    );
    let moved = out.text("move");
    assert!(moved.starts_with("OK"), "{moved}");
    assert!(moved.contains("COPYUID"), "MOVE reports COPYUID: {moved}");
    assert!(
        moved.contains("EXPUNGE"),
        "MOVE reports the EXPUNGE: {moved}"
    );
    let uid_move = out.text("uid-move");
    assert!(
        uid_move.starts_with("OK [b'"),
        "UID MOVE gives COPYUID: {uid_move}"
    );
    assert_eq!(out.text("exists-after-move"), "1 2 3", "{}", out.0);
    // RFC 6851 §3.3: the selected mailbox may be the target (the message gets a new UID).
    assert!(out.text("move-same").starts_with("OK"), "{}", out.0);
    let expunge = out.text("expunge");
    assert!(
        expunge.starts_with("OK [b'"),
        "EXPUNGE reports a number: {expunge}"
    );
    assert!(out.text("uid-expunge").starts_with("OK"), "{}", out.0);
    assert_eq!(out.text("after-uid-expunge"), "1", "{}", out.0);
    assert_eq!(
        out.text("inbox-files"),
        "0",
        "CLOSE expunged the other \\Deleted"
    );
    assert_eq!(out.text("work-files"), "2", "UNSELECT expunges nothing");
    assert!(out.text("archive").starts_with("OK 2"), "{}", out.0);
    // Each message exactly where it should be, exactly once.
    assert_eq!(subjects_in(&server, "INBOX"), Vec::<String>::new());
    assert_eq!(subjects_in(&server, "Archive"), ["c1", "c5"]);
    assert_eq!(subjects_in(&server, "Work"), ["c2", "c3"]);
}

#[test]
fn imaplib_append_with_flags_and_date() {
    let server = server();
    let out = python(
        &server,
        r#"
M = login()
msg = b"From: me@example.com\r\nTo: you@example.org\r\nSubject: appended\r\n\r\nhello \xc3\xa9\r\n.dot line\r\n"
typ, data = M.append("Sent", r"(\Seen \Flagged)", '"17-Jul-2020 02:44:25 +0200"', msg)
out("append", typ, data[0].decode())
out("disk", disk_flags("Sent", "appended"))
d = folder_dir("Sent")
name = [n for n in os.listdir(os.path.join(d, "cur"))][0]
out("mtime", int(os.stat(os.path.join(d, "cur", name)).st_mtime))
typ, data = M.select("Sent")
emit("fetch", ok(M.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"), "FETCH"))
out("before", search(M, "BEFORE", "1-Jan-2021"))
out("on", search(M, "ON", "17-Jul-2020"))
out("since", search(M, "SINCE", "18-Jul-2020"))
no(M.append("Nope", None, None, b"Subject: x\r\n\r\ny\r\n"), "APPEND to a missing mailbox", "TRYCREATE")
typ, data = M.append("INBOX", None, None, b"Subject: plain append\r\n\r\nbody\r\n")
out("append-plain", typ, data[0].decode())
typ, data = M.append("INBOX", "($Forwarded Custom)", None, b"Subject: keyword append\r\n\r\nbody\r\n")
out("append-keywords", typ, data[0].decode())
out("disk-keywords", disk_flags("INBOX", "keyword append"))
# The selected Sent folder sees a second APPEND into it.
typ, data = M.append("Sent", None, None, b"Subject: second sent\r\n\r\nbody\r\n")
ok(M.noop(), "NOOP")
out("exists", M.untagged_responses.get("EXISTS"))
M.logout()
"#,
        &[],
    );
    let append = out.text("append");
    assert!(append.starts_with("OK [APPENDUID "), "{append}");
    let fields: Vec<&str> = append.split(' ').collect();
    assert_eq!(fields[3], "1]", "first UID in Sent is 1: {append}");
    assert_eq!(out.text("disk"), "FS");
    assert_eq!(
        out.text("mtime"),
        "1594946665",
        "the internal date is the file's mtime"
    );
    let fetch = out.bytes("fetch");
    assert_eq!(
        String::from_utf8_lossy(&fetch_item(&fetch, "INTERNALDATE")),
        "17-Jul-2020 00:44:25 +0000"
    );
    let flags = String::from_utf8_lossy(&fetch_item(&fetch, "FLAGS")).into_owned();
    assert!(
        flags.contains("\\Seen") && flags.contains("\\Flagged"),
        "{flags}"
    );
    let sent = b"From: me@example.com\r\nTo: you@example.org\r\nSubject: appended\r\n\r\nhello \xc3\xa9\r\n.dot line\r\n";
    assert_eq!(fetch_item(&fetch, "BODY[]"), sent.to_vec());
    assert_eq!(
        String::from_utf8_lossy(&fetch_item(&fetch, "RFC822.SIZE")),
        sent.len().to_string()
    );
    assert_eq!(out.text("before"), "1");
    assert_eq!(out.text("on"), "1");
    assert_eq!(out.text("since"), "");
    assert!(
        out.text("append-plain").starts_with("OK [APPENDUID "),
        "{}",
        out.0
    );
    assert!(out.text("append-keywords").starts_with("OK"), "{}", out.0);
    let letters = out.text("disk-keywords");
    assert!(
        letters.len() == 2
            && letters.starts_with('P')
            && letters
                .chars()
                .nth(1)
                .is_some_and(|c| c.is_ascii_lowercase()),
        "$Forwarded is P, Custom a keyword letter: {letters:?}"
    );
    assert!(out.text("exists").contains("b'2'"), "{}", out.0);
    assert_eq!(
        subjects_in(&server, "INBOX"),
        ["keyword append", "plain append"]
    );
}

#[test]
fn append_and_copy_over_quota_are_refused() {
    let server = server_with("quota = 10000", "");
    let out = python(
        &server,
        r#"
M = login()
big = b"Subject: big\r\n\r\n" + b"x" * 3998 + b"\r\n"
out("first", M.append("INBOX", None, None, big)[0])
out("second", M.append("Archive", None, None, big)[0])
typ, data = M.append("INBOX", None, None, big)
out("third", typ, data[0].decode())
ok(M.select("INBOX"), "SELECT")
typ, data = M.copy("1", "Trash")
out("copy", typ, data[0].decode())
# MOVE does not add anything: allowed.
typ, data = M._simple_command("MOVE", "1", "Trash")
out("move", typ)
typ, data = M.append("INBOX", None, None, b"Subject: small\r\n\r\nx\r\n")
out("small", typ)
M.logout()
"#,
        &[],
    );
    assert_eq!(out.text("first"), "OK");
    assert_eq!(out.text("second"), "OK");
    let third = out.text("third");
    assert!(
        third.starts_with("NO [OVERQUOTA]"),
        "APPEND over the quota: {third}"
    );
    assert!(out.text("copy").starts_with("NO [OVERQUOTA]"), "{}", out.0);
    assert_eq!(out.text("move"), "OK");
    assert_eq!(out.text("small"), "OK", "still room for a small one");
    assert_eq!(subjects_in(&server, "Trash"), ["big"]);
}

#[test]
fn starttls_imaps_and_login_refused_in_the_clear() {
    let server = server();
    deliver(&server, &["tls-1"]);
    let out = python(
        &server,
        r#"
M = imaplib.IMAP4(HOST, port("TLSPORT"), timeout=10)
out("caps-before", " ".join(M.capabilities))
out("login-before", error(lambda: M.login("alice", PW)))
out("auth-before", error(lambda: M.authenticate("PLAIN", lambda _: b"\0alice\0" + PW.encode())))
out("starttls", M.starttls(ssl_context=ctx)[0])
out("caps-after", " ".join(M.capabilities))
out("starttls-again", error(lambda: M._simple_command("STARTTLS")))
out("login", M.login("alice", PW)[0])
typ, data = M.select("INBOX")
out("select", typ, data[0].decode())
emit("fetch", ok(M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "FETCH"))
M.logout()

S = imaplib.IMAP4_SSL(HOST, port("IMAPS"), ssl_context=ctx, timeout=10)
out("imaps-caps", " ".join(S.capabilities))
out("imaps-auth", S.authenticate("PLAIN", lambda _: b"\0alice\0" + PW.encode())[0])
typ, data = S.status("INBOX", "(MESSAGES)")
out("imaps-status", typ, data[0].decode())
S.logout()
S = imaplib.IMAP4_SSL(HOST, port("IMAPS"), ssl_context=ctx, timeout=10)
out("imaps-wrong", error(lambda: S.login("alice", "wrong")))
S.logout()
"#,
        &[],
    );
    let before = out.text("caps-before");
    assert!(
        before.contains("STARTTLS") && before.contains("LOGINDISABLED"),
        "{before}"
    );
    assert!(!before.contains("AUTH=PLAIN"), "{before}");
    let login_before = out.text("login-before");
    assert!(
        login_before.contains("PRIVACYREQUIRED") || login_before.contains("BAD"),
        "LOGIN before STARTTLS: {login_before}"
    );
    assert!(
        !out.text("auth-before").starts_with("no error"),
        "{}",
        out.0
    );
    assert_eq!(out.text("starttls"), "OK");
    let after = out.text("caps-after");
    assert!(
        after.contains("AUTH=PLAIN")
            && !after.contains("STARTTLS")
            && !after.contains("LOGINDISABLED"),
        "{after}"
    );
    assert!(out.text("starttls-again").contains("BAD"), "{}", out.0);
    assert_eq!(out.text("login"), "OK");
    assert_eq!(out.text("select"), "OK 1");
    assert!(out.data("fetch").contains("Subject: tls-1"), "{}", out.0);
    let imaps = out.text("imaps-caps");
    assert!(
        imaps.contains("AUTH=PLAIN") && !imaps.contains("STARTTLS"),
        "{imaps}"
    );
    assert_eq!(out.text("imaps-auth"), "OK");
    assert_eq!(out.text("imaps-status"), "OK INBOX (MESSAGES 1)");
    assert!(
        out.text("imaps-wrong").contains("AUTHENTICATIONFAILED"),
        "{}",
        out.0
    );
}

#[test]
fn raw_login_rules_before_tls_and_before_login() {
    let server = server();
    let (mut imap, greeting) = Imap::connect(tls_imap(&server));
    assert!(
        greeting.starts_with("* OK [CAPABILITY ") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    imap.expect(&format!("LOGIN alice \"{PW}\""), "NO [PRIVACYREQUIRED]");
    imap.expect(
        &format!("AUTHENTICATE PLAIN {}", base64_plain("alice", PW)),
        "NO",
    );
    for command in [
        "SELECT INBOX",
        "EXAMINE INBOX",
        "LIST \"\" *",
        "LSUB \"\" *",
        "STATUS INBOX (MESSAGES)",
        "CREATE Foo",
        "FETCH 1 FLAGS",
        "UID SEARCH ALL",
        "IDLE",
        "APPEND INBOX {3+}\r\nabc",
        "NAMESPACE",
    ] {
        let response = imap.command(command);
        let last = response.lines().last().unwrap_or_default();
        assert!(
            last.contains(" BAD ") || last.contains(" NO "),
            "{command:?} before login: {response:?}"
        );
    }
    imap.ok("NOOP");
    imap.ok("CAPABILITY");
    let logout = imap.ok("LOGOUT");
    assert!(logout.starts_with("* BYE"), "{logout}");
    assert!(imap.closed());
    assert!(
        !server.maildir("alice").join(".Foo").exists(),
        "nothing was created"
    );

    // Logins on the listener that allows them: LOGIN with a literal, AUTHENTICATE with
    // SASL-IR and with a continuation, cancelled, and wrong.
    let plain = plain_imap(&server);
    let (mut imap, _) = Imap::connect(plain);
    let tag = imap.tag();
    imap.send(format!("{tag} LOGIN alice {{{}}}\r\n", PW.len()));
    let go_ahead = imap.response();
    assert!(go_ahead.starts_with("+ "), "{go_ahead}");
    imap.send(format!("{PW}\r\n"));
    let done = imap.until_tagged(&tag);
    assert!(
        done.contains(&format!("{tag} OK")),
        "LOGIN with a literal password: {done}"
    );
    imap.expect("LOGIN alice x", "BAD");
    imap.ok("LOGOUT");

    let (mut imap, _) = Imap::connect(plain);
    imap.ok(&format!("AUTHENTICATE PLAIN {}", base64_plain("alice", PW)));
    let (mut imap, _) = Imap::connect(plain);
    let tag = imap.tag();
    imap.send(format!("{tag} AUTHENTICATE PLAIN\r\n"));
    assert!(imap.response().starts_with("+"));
    imap.send("*\r\n");
    let cancelled = imap.until_tagged(&tag);
    assert!(cancelled.contains(&format!("{tag} BAD")), "{cancelled}");
    let tag = imap.tag();
    imap.send(format!("{tag} AUTHENTICATE PLAIN\r\n"));
    assert!(imap.response().starts_with("+"));
    imap.send(format!("{}\r\n", base64_plain("alice", PW)));
    let done = imap.until_tagged(&tag);
    assert!(done.contains(&format!("{tag} OK")), "{done}");
    imap.ok("SELECT INBOX");
    imap.expect("AUTHENTICATE XOAUTH2 abc", "NO");
    imap.expect("STARTTLS", "BAD");
}

#[test]
fn wrong_passwords_are_delayed_then_blocked() {
    let server = server_with("", "[auth]\nfailure_delay = \"50ms\"\nmax_failures = 3\n");
    let addr = plain_imap(&server);
    let (mut imap, _) = Imap::connect(addr);
    let started = Instant::now();
    imap.expect("LOGIN alice wrong1", "NO [AUTHENTICATIONFAILED]");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "a failure is answered late"
    );
    imap.expect("LOGIN nobody wrong2", "NO [AUTHENTICATIONFAILED]");
    imap.expect(
        &format!("AUTHENTICATE PLAIN {}", base64_plain("alice", "wrong3")),
        "NO",
    );
    let blocked = imap.command(&format!("LOGIN alice \"{PW}\""));
    assert!(
        blocked
            .lines()
            .last()
            .unwrap()
            .contains(" NO [UNAVAILABLE]"),
        "the right password once blocked: {blocked}"
    );
    let (mut again, greeting) = Imap::connect(addr);
    assert!(
        greeting.starts_with("* BYE"),
        "a blocked address must get an IMAP * BYE refusal, got {greeting:?}"
    );
    assert!(again.closed());
    server.wait_for_log(
        "authentication failed protocol=imap client=127.0.0.1 login=\"nobody\" blocked=false",
    );
}

#[test]
fn idle_reports_delivered_mail_within_a_second() {
    // Within less than the idle session's own look for outside changes (5 s): only a
    // push from the delivery or the other session is that fast.
    const PUSHED: Duration = Duration::from_secs(2);
    let server = server();
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    let select = imap.ok("SELECT INBOX");
    assert!(select.contains("* 0 EXISTS"), "{select}");
    let tag = imap.tag();
    imap.send(format!("{tag} IDLE\r\n"));
    let go_ahead = imap.response();
    assert!(
        go_ahead.starts_with("+ "),
        "IDLE continuation: {go_ahead:?}"
    );
    let mut client = server.client();
    let reply = client.send_message(
        "sender@example.org",
        &["alice@example.com"],
        &message("idle-1"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let sent = Instant::now();
    // Measured from the SMTP acceptance: includes the queue's local delivery.
    let seen = imap.wait_for(PUSHED, "* 1 EXISTS", |l| l == "* 1 EXISTS\r\n");
    let delay = sent.elapsed();
    let delivered = server.messages("alice").len();
    eprintln!("IDLE: * 1 EXISTS {delay:?} after the SMTP 250 (messages on disk: {delivered})");
    assert!(seen.ends_with("* 1 EXISTS\r\n"), "{seen}");
    // A second delivery in the same IDLE.
    let reply = client.send_message(
        "sender@example.org",
        &["alice@example.com"],
        &message("idle-2"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let sent = Instant::now();
    imap.wait_for(PUSHED, "* 2 EXISTS", |l| l == "* 2 EXISTS\r\n");
    eprintln!("IDLE: * 2 EXISTS {:?} after the SMTP 250", sent.elapsed());
    imap.send("DONE\r\n");
    let done = imap.until_tagged(&tag);
    assert!(done.contains(&format!("{tag} OK")), "{done}");
    let fetch = imap.ok("FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(
        fetch.contains("Subject: idle-1") && fetch.contains("Subject: idle-2"),
        "{fetch}"
    );
    // IDLE also reports changes other sessions make.
    let tag = imap.tag();
    imap.send(format!("{tag} IDLE\r\n"));
    assert!(imap.response().starts_with("+ "));
    let mut other = Imap::logged_in(plain_imap(&server), PW);
    other.ok("SELECT INBOX");
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    other.ok("EXPUNGE");
    imap.wait_for(PUSHED, "* 1 EXPUNGE", |l| l == "* 1 EXPUNGE\r\n");
    imap.send("DONE\r\n");
    imap.until_tagged(&tag);
    // A wrong line ends IDLE with BAD.
    let tag = imap.tag();
    imap.send(format!("{tag} IDLE\r\n"));
    assert!(imap.response().starts_with("+ "));
    imap.send("NOOP\r\n");
    let bad = imap.until_tagged(&tag);
    assert!(bad.contains(&format!("{tag} BAD")), "{bad}");
    imap.ok("NOOP");
}

#[test]
fn other_sessions_see_flags_expunges_and_new_mail() {
    let server = server();
    deliver(&server, &["s1", "s2", "s3"]);
    let addr = plain_imap(&server);
    let mut a = Imap::logged_in(addr, PW);
    let mut b = Imap::logged_in(addr, PW);
    let select_a = a.ok("SELECT INBOX");
    assert!(select_a.contains("* 3 EXISTS"), "{select_a}");
    assert!(
        select_a.contains("* 3 RECENT"),
        "A claims \\Recent: {select_a}"
    );
    // The subjects in sequence order (the order is not what this test is about).
    let fetched = a.ok("FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let order: Vec<String> = fetched
        .lines()
        .filter_map(|l| l.strip_prefix("Subject: "))
        .map(str::to_string)
        .collect();
    assert_eq!(order.len(), 3, "{fetched}");
    let select_b = b.ok("SELECT INBOX");
    assert!(
        select_b.contains("* 0 RECENT"),
        "\\Recent goes to one session only: {select_b}"
    );
    b.ok("STORE 2 +FLAGS (\\Flagged)");
    let noop = a.ok("NOOP");
    assert!(
        noop.contains("* 2 FETCH (") && noop.contains("\\Flagged"),
        "A sees B's flag change at NOOP: {noop:?}"
    );
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    b.ok("EXPUNGE");
    let noop = a.ok("NOOP");
    assert!(
        noop.contains("* 1 EXPUNGE"),
        "A sees B's expunge at NOOP: {noop:?}"
    );
    // FETCH does not report expunges (RFC 3501 §7.4.1); the next NOOP does.
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    b.ok("EXPUNGE");
    let fetch = a.ok("FETCH 1:* (FLAGS)");
    assert!(
        !fetch.contains("EXPUNGE"),
        "no EXPUNGE during FETCH: {fetch:?}"
    );
    let noop = a.ok("NOOP");
    assert!(noop.contains("* 1 EXPUNGE"), "{noop:?}");
    // New mail shows as EXISTS at NOOP in both.
    deliver(&server, &["s4"]);
    let noop = a.ok("NOOP");
    assert!(noop.contains("* 2 EXISTS"), "{noop:?}");
    let noop = b.ok("NOOP");
    assert!(noop.contains("* 2 EXISTS"), "{noop:?}");
    let fetch = a.ok("FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(fetch.contains("Subject: s4"), "{fetch}");
    // A message moved away by B is expunged for A.
    b.ok("MOVE 2 Archive");
    let noop = a.ok("NOOP");
    assert!(noop.contains("* 2 EXPUNGE"), "{noop:?}");
    assert_eq!(subjects_in(&server, "INBOX"), [order[2].clone()]);
    assert_eq!(subjects_in(&server, "Archive"), ["s4"]);
}

#[test]
fn hostile_literals_garbage_and_nesting() {
    let server = server();
    deliver(&server, &["h1"]);
    let addr = plain_imap(&server);
    let rss_before = server.rss_kib();
    let mut imap = Imap::logged_in(addr, PW);
    imap.ok("SELECT INBOX");

    // A huge synchronizing literal is refused before any of it is sent.
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX {{99999999999}}\r\n"));
    let refused = imap.response();
    assert!(
        refused.starts_with(&format!("{tag} NO [TOOBIG]"))
            || refused.starts_with(&format!("{tag} BAD")),
        "{{99999999999}}: {refused:?}"
    );
    let tag = imap.tag();
    imap.send(format!("{tag} SEARCH TEXT {{99999999}}\r\n"));
    let refused = imap.response();
    assert!(
        refused.starts_with(&format!("{tag} NO [TOOBIG]"))
            || refused.starts_with(&format!("{tag} BAD")),
        "{refused:?}"
    );
    let tag = imap.tag();
    imap.send(format!("{tag} LOGIN {{99999999999999999999999999}}\r\n"));
    let refused = imap.response();
    assert!(
        refused.starts_with(&format!("{tag} NO")) || refused.starts_with(&format!("{tag} BAD")),
        "{refused:?}"
    );
    imap.ok("NOOP");

    // Garbage gets BAD and the session goes on.
    for garbage in [
        ")(*&^%",
        "a FOO",
        "a FETCH",
        "a FETCH x FLAGS",
        "a SELECT",
        "a STORE 1 +FLAGS",
        "a UID FOO 1",
        "a SEARCH",
        "a LIST \"unterminated",
        "\u{1}\u{2}\u{3}",
        "a FETCH 1 (BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33.34])",
        "a FETCH 4294967296 FLAGS",
    ] {
        imap.send(format!("{garbage}\r\n"));
        let response = imap.response();
        assert!(
            response.contains("BAD") || response.contains(" NO ") || response.contains("FETCH"),
            "{garbage:?}: {response:?}"
        );
        if response.contains("FETCH (") {
            // A deep section of a simple message is an empty string, then OK.
            let done = imap.response();
            assert!(done.starts_with("a OK"), "{done:?}");
        }
    }
    imap.ok("NOOP");

    // Deep nesting in SEARCH: BAD, no crash.
    let deep = format!("SEARCH {}ALL{}", "(".repeat(10_000), ")".repeat(10_000));
    imap.expect(&deep, "BAD");
    let nots = format!("SEARCH {}ALL", "NOT ".repeat(10_000));
    imap.expect(&nots, "BAD");
    let ors = format!("SEARCH {}ALL{}", "OR ALL ".repeat(5_000), "");
    imap.expect(&ors, "BAD");
    let shallow = format!("SEARCH {}ALL{}", "(".repeat(5), ")".repeat(5));
    let found = imap.ok(&shallow);
    assert!(found.contains("* SEARCH 1"), "{found}");

    // An over-long line: refused, session continues.
    let long = format!("SEARCH SUBJECT \"{}\"", "x".repeat(200_000));
    let response = imap.command(&long);
    assert!(
        response.lines().last().unwrap().contains("NO [TOOBIG]")
            || response.lines().last().unwrap().contains("BAD"),
        "{}",
        &response[..response.len().min(300)]
    );
    imap.ok("NOOP");
    let fetch = imap.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(fetch.contains("Subject: h1"), "{fetch}");

    // Other sessions are unaffected; the server did not allocate the announced sizes.
    let mut other = Imap::logged_in(addr, PW);
    other.ok("NOOP");
    let rss_after = server.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "server memory grew from {rss_before} KiB to {rss_after} KiB"
    );

    // A LITERAL+ that is too big: the bytes are on their way, so BYE and close.
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX {{999999999999+}}\r\nxxxx"));
    let bye = imap.response();
    assert!(bye.starts_with("* BYE"), "{{999999999999+}}: {bye:?}");
    assert!(imap.closed());
    other.ok("NOOP");
}

#[test]
fn literal_plus_and_pipelined_append() {
    let server = server();
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    let message = "Subject: literal plus\r\n\r\nbody\r\n";
    // LITERAL+: no continuation, then another command in the same write.
    let tag = imap.tag();
    let tag2 = imap.tag();
    imap.send(format!(
        "{tag} APPEND INBOX (\\Seen) {{{}+}}\r\n{message}\r\n{tag2} NOOP\r\n",
        message.len()
    ));
    let done = imap.until_tagged(&tag);
    assert!(done.contains(&format!("{tag} OK [APPENDUID ")), "{done}");
    let noop = imap.until_tagged(&tag2);
    assert!(noop.contains(&format!("{tag2} OK")), "{noop}");
    assert_eq!(subjects_in(&server, "INBOX"), ["literal plus"]);
    assert_eq!(disk_flags(&server, "INBOX", "literal plus"), "S");
    // A synchronizing literal waits for the continuation.
    let tag = imap.tag();
    imap.send(format!(
        "{tag} APPEND Drafts (\\Draft) {{{}}}\r\n",
        message.len()
    ));
    assert!(imap.response().starts_with("+ "));
    imap.send(format!("{message}\r\n"));
    let done = imap.until_tagged(&tag);
    assert!(done.contains(&format!("{tag} OK [APPENDUID ")), "{done}");
    assert_eq!(disk_flags(&server, "Drafts", "literal plus"), "D");
    imap.ok("NOOP");
}

#[test]
fn authenticate_is_refused_before_the_password_is_sent_in_the_clear() {
    let server = server();
    let (mut imap, _) = Imap::connect(tls_imap(&server));
    let tag = imap.tag();
    imap.send(format!("{tag} AUTHENTICATE PLAIN\r\n"));
    let first = imap.response();
    if first.starts_with('+') {
        imap.send(format!("{}\r\n", base64_plain("alice", PW)));
        let rest = imap.until_tagged(&tag);
        panic!(
            "AUTHENTICATE PLAIN before STARTTLS (LOGINDISABLED) must be refused at once, not \
             after the client sent its password in the clear: got {first:?} then {rest:?}"
        );
    }
    assert!(first.starts_with(&format!("{tag} NO")), "{first:?}");
}

#[test]
fn create_and_rename_refuse_wildcards_and_bad_modified_utf7() {
    let server = server();
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    // `&AGE-` is well-formed base64 but encodes `a`, which must stand for itself.
    for name in [
        "\"*\"", "\"%\"", "\"a*b\"", "a&-&&--b", "&AGE", "&AGE-", "&APw",
    ] {
        imap.expect(&format!("CREATE {name}"), "NO [CANNOT]");
    }
    imap.ok("CREATE Entw&APw-rfe");
    imap.ok("CREATE Tom&-Jerry");
    for name in ["\"Entw%\"", "a&&b", "&AGE-"] {
        imap.expect(&format!("RENAME Entw&APw-rfe {name}"), "NO [CANNOT]");
    }
    imap.ok("RENAME Entw&APw-rfe Brouillons&AOk-");
    let list = imap.ok("LIST \"\" *");
    assert!(
        list.contains(" Brouillons&AOk-\r\n") && list.contains(" Tom&-Jerry\r\n"),
        "{list}"
    );
    for name in [
        "*",
        "%",
        "a*b",
        "a&-&&--b",
        "&AGE",
        "&AGE-",
        "&APw",
        "Entw&APw-rfe",
    ] {
        assert!(
            !server.maildir("alice").join(format!(".{name}")).exists(),
            "{name} was created"
        );
    }
}

#[test]
fn big_literals_and_arguments_before_login_are_refused_at_once() {
    let server = server();
    let addr = plain_imap(&server);
    let rss_before = server.rss_kib();
    let mut sync_clients = Vec::new();
    for i in 0..15 {
        let (mut imap, _) = Imap::connect(addr);
        let tag = imap.tag();
        if i % 2 == 0 {
            // Refused before the continuation: the client never sends the octets.
            imap.send(format!("{tag} APPEND INBOX {{52428800}}\r\n"));
            let refused = imap.response();
            assert!(
                refused.starts_with(&format!("{tag} NO [TOOBIG]")),
                "{{52428800}} before login: {refused:?}"
            );
            sync_clients.push(imap);
        } else {
            // LITERAL+: the octets are on their way, so the connection ends.
            imap.send(format!("{tag} APPEND INBOX {{52428800+}}\r\nxxxx"));
            let bye = imap.response();
            assert!(
                bye.starts_with("* BYE [TOOBIG]"),
                "{{52428800+}} before login: {bye:?}"
            );
            assert!(imap.closed());
        }
    }
    for imap in &mut sync_clients {
        imap.ok("NOOP");
    }
    let rss_after = server.rss_kib();
    assert!(
        rss_after < rss_before + 4 * 1024,
        "server memory grew from {rss_before} KiB to {rss_after} KiB"
    );

    // LOGIN and AUTHENTICATE arguments are held to the same small bound.
    let imap = &mut sync_clients[0];
    let long = "x".repeat(9 * 1024);
    imap.expect(&format!("LOGIN alice \"{long}\""), "NO [TOOBIG]");
    let tag = imap.tag();
    imap.send(format!("{tag} AUTHENTICATE PLAIN\r\n"));
    assert!(imap.response().starts_with('+'));
    imap.send(format!("{long}\r\n"));
    let refused = imap.response();
    assert!(
        refused.starts_with(&format!("{tag} BAD response too long")),
        "{refused:?}"
    );
    // After login the message size limit applies again.
    imap.ok(&format!("LOGIN alice \"{PW}\""));
    let tag = imap.tag();
    imap.send(format!("{tag} APPEND INBOX {{52428800}}\r\n"));
    assert!(imap.response().starts_with('+'));
}

/// APPENDs `message` to `folder` with `flags` (a parenthesised list, or "" for none)
/// through LITERAL+; returns the responses.
fn append(imap: &mut Imap, folder: &str, flags: &str, message: &str) -> String {
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!("{flags} ")
    };
    imap.ok(&format!(
        "APPEND {folder} {flags}{{{}+}}\r\n{message}",
        message.len()
    ))
}

/// The value after `key ` in `text` (`UIDVALIDITY 17` -> 17).
fn number_after(text: &str, key: &str) -> u64 {
    let at = text
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("no {key} in {text:?}"));
    text[at + key.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key} in {text:?}"))
}

/// Issue 19, found by imaptest: a mailbox deleted and created again within a second gets
/// a new UIDVALIDITY every time, so UID 1 of the new one is never taken for UID 1 of the
/// old (RFC 3501 §2.3.1.1).
#[test]
fn uidvalidity_grows_when_a_mailbox_is_deleted_and_created_again() {
    let server = server();
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    let mut last = 0;
    for round in 0..4 {
        imap.ok("CREATE Again");
        append(&mut imap, "Again", "", &message(&format!("again-{round}")));
        let status = imap.ok("STATUS Again (UIDVALIDITY UIDNEXT)");
        let validity = number_after(&status, "UIDVALIDITY");
        assert!(validity > last, "round {round}: {validity} after {last}");
        assert_eq!(number_after(&status, "UIDNEXT"), 2, "{status}");
        last = validity;
        imap.ok("DELETE Again");
    }
}

/// Issue 19: a keyword new to the mailbox comes with FLAGS and PERMANENTFLAGS before any
/// FETCH that carries it, for the session that stored it and for the others.
#[test]
fn a_new_keyword_is_announced_with_flags_first() {
    let server = server();
    deliver(&server, &["kw-1"]);
    let addr = plain_imap(&server);
    let mut a = Imap::logged_in(addr, PW);
    let mut b = Imap::logged_in(addr, PW);
    a.ok("SELECT INBOX");
    b.ok("SELECT INBOX");
    let stored = a.ok("STORE 1 +FLAGS ($Hello)");
    let flags = stored.find("* FLAGS (").expect(&stored);
    let permanent = stored.find("* OK [PERMANENTFLAGS (").expect(&stored);
    let fetch = stored.find("* 1 FETCH").expect(&stored);
    assert!(flags < fetch && permanent < fetch, "{stored}");
    assert!(
        stored[flags..permanent].contains("$Hello"),
        "FLAGS lists the new keyword: {stored}"
    );
    assert!(stored[permanent..fetch].contains("$Hello \\*"), "{stored}");
    let again = a.ok("STORE 1 +FLAGS ($Hello)");
    assert!(!again.contains("* FLAGS"), "only when new: {again}");
    let noop = b.ok("NOOP");
    let flags = noop.find("* FLAGS (").expect(&noop);
    let fetch = noop.find("* 1 FETCH").expect(&noop);
    assert!(
        flags < fetch && noop[flags..fetch].contains("$Hello"),
        "{noop}"
    );
    // A keyword arriving with an APPEND into the selected mailbox, too.
    let appended = append(&mut b, "INBOX", "($World)", &message("kw-2"));
    let flags = appended.find("* FLAGS (").expect(&appended);
    assert!(appended[flags..].contains("$Hello $World"), "{appended}");
}

/// Issue 19: an APPENDed message is \Recent for the session that has the mailbox selected,
/// or else for the next one to select it; EXAMINE shows \Recent without taking it.
#[test]
fn appended_messages_are_recent_and_examine_leaves_them_so() {
    let server = server();
    let addr = plain_imap(&server);
    let mut a = Imap::logged_in(addr, PW);
    a.ok("SELECT INBOX");
    let appended = append(&mut a, "INBOX", "(\\Seen)", &message("recent-1"));
    assert!(
        appended.contains("* 1 EXISTS") && appended.contains("* 1 RECENT"),
        "{appended}"
    );
    let fetch = a.ok("FETCH 1 (FLAGS)");
    assert!(fetch.contains("\\Recent"), "{fetch}");

    let mut other = Imap::logged_in(addr, PW);
    append(&mut other, "Drafts", "", &message("recent-2"));
    let examine = a.ok("EXAMINE Drafts");
    assert!(examine.contains("* 1 RECENT"), "{examine}");
    let fetch = a.ok("FETCH 1 (FLAGS)");
    assert!(fetch.contains("\\Recent"), "{fetch}");
    let select = a.ok("SELECT Drafts");
    assert!(
        select.contains("* 1 RECENT"),
        "EXAMINE left \\Recent: {select}"
    );
    let select = other.ok("SELECT Drafts");
    assert!(select.contains("* 0 RECENT"), "{select}");
}

/// Issue 19: FETCH of messages another session expunged answers the others and OK with
/// EXPUNGEISSUED, as Dovecot does (RFC 9051 §7.1), instead of NO.
#[test]
fn fetch_of_a_message_expunged_elsewhere_is_ok_with_expungeissued() {
    let server = server();
    deliver(&server, &["gone-1", "gone-2"]);
    let addr = plain_imap(&server);
    let mut a = Imap::logged_in(addr, PW);
    let mut b = Imap::logged_in(addr, PW);
    a.ok("SELECT INBOX");
    b.ok("SELECT INBOX");
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    b.ok("EXPUNGE");
    let fetch = a.expect("FETCH 1:2 (BODY.PEEK[])", "OK [EXPUNGEISSUED]");
    assert!(
        !fetch.contains("* 1 FETCH") && fetch.contains("* 2 FETCH"),
        "{fetch}"
    );
    assert!(!fetch.contains("EXPUNGE\r\n"), "{fetch}");
    let noop = a.ok("NOOP");
    assert!(noop.contains("* 1 EXPUNGE"), "{noop}");
    a.expect("FETCH 1 (BODY.PEEK[])", "OK FETCH completed");
}

/// Issue 19: MOVE into the selected mailbox is allowed (RFC 6851 §3.3): the message gets
/// a new UID, reported as COPYUID, EXPUNGE and EXISTS; COPY into it adds a copy.
#[test]
fn move_and_copy_into_the_selected_mailbox() {
    let server = server();
    deliver(&server, &["self-move"]);
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    let select = imap.ok("SELECT INBOX");
    let validity = number_after(&select, "UIDVALIDITY");
    let uid = number_after(&imap.ok("FETCH 1 (UID)"), "UID");
    let moved = imap.ok(&format!("UID MOVE {uid} INBOX"));
    let copyuid = format!("* OK [COPYUID {validity} {uid} ");
    let code = moved.find(&copyuid).expect(&moved);
    let expunge = moved.find("* 1 EXPUNGE").expect(&moved);
    let exists = moved.find("* 1 EXISTS").expect(&moved);
    assert!(code < expunge && expunge < exists, "{moved}");
    let new_uid = number_after(&moved[code..], &copyuid[5..copyuid.len() - 1]);
    assert!(new_uid > uid, "{moved}");
    assert_eq!(number_after(&imap.ok("FETCH 1 (UID)"), "UID"), new_uid);
    assert_eq!(subjects_in(&server, "INBOX"), ["self-move"]);
    let copied = imap.ok("COPY 1 INBOX");
    assert!(copied.contains("* 2 EXISTS"), "{copied}");
    assert_eq!(subjects_in(&server, "INBOX"), ["self-move", "self-move"]);
}

/// Issue 19: RFC 5258's RECURSIVEMATCH (BAD alone, CHILDINFO for a parent of subscribed
/// names), \NonExistent for a subscribed name whose mailbox was deleted (the subscription
/// stays, RFC 3501 §6.3.6), \Noselect levels for LIST and LSUB with `%`.
#[test]
fn list_extended_childinfo_nonexistent_and_lsub_parents() {
    let server = server();
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    imap.ok("CREATE Lists.Child");
    imap.ok("CREATE Gone");
    imap.ok("SUBSCRIBE Lists.Child");
    imap.ok("SUBSCRIBE Gone");
    imap.ok("DELETE Gone");
    imap.expect("LIST (RECURSIVEMATCH) \"\" \"\"", "BAD");
    imap.expect("LIST (RECURSIVEMATCH REMOTE) \"\" *", "BAD");

    let subscribed = imap.ok("LIST (SUBSCRIBED) \"\" *");
    assert!(
        subscribed.contains("* LIST (\\NonExistent \\Subscribed) \".\" Gone\r\n"),
        "{subscribed}"
    );
    assert!(
        subscribed.contains("* LIST (\\HasNoChildren \\Subscribed) \".\" Lists.Child\r\n"),
        "{subscribed}"
    );
    let recursive = imap.ok("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (CHILDREN)");
    assert!(
        recursive.contains(
            "* LIST (\\NonExistent \\HasChildren) \".\" Lists (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        ),
        "{recursive}"
    );
    assert!(!recursive.contains("Lists.Child"), "{recursive}");
    let exact = imap.ok("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Lists Lists.Child)");
    assert!(!exact.contains("CHILDINFO"), "{exact}");

    let percent = imap.ok("LIST \"\" %");
    assert!(
        percent.contains("* LIST (\\Noselect \\HasChildren) \".\" Lists\r\n"),
        "{percent}"
    );
    let lsub = imap.ok("LSUB \"\" %");
    assert!(
        lsub.contains("* LSUB (\\Noselect) \".\" Lists\r\n"),
        "{lsub}"
    );
    assert!(!lsub.contains("Lists.Child"), "{lsub}");
    let lsub = imap.ok("LSUB \"\" *");
    assert!(lsub.contains("* LSUB () \".\" Lists.Child\r\n"), "{lsub}");
    assert!(!lsub.contains("\\Noselect"), "{lsub}");
}

/// Issue 19: no address made from a comment inside an empty group, and the TEXT of an
/// attached multipart message keeps its epilogue.
#[test]
fn envelope_of_empty_groups_and_text_with_epilogue() {
    let server = server();
    let mut imap = Imap::logged_in(plain_imap(&server), PW);
    let groups =
        "From: a@example.org\r\nCc: group:;, group2: (foo) ;\r\nSubject: groups\r\n\r\nbody\r\n";
    let text = "prologue\r\n\r\n--foo\r\n\r\nFrom: m1@example.com\r\n\r\nm1 body\r\n\r\n\
                --foo--\r\n\r\nepilogue\r\n";
    let attached = format!(
        "From: a@example.org\r\nSubject: attached\r\nContent-Type: message/rfc822\r\n\r\n\
         From: sub@example.org\r\nContent-Type: multipart/digest; boundary=\"foo\"\r\n\r\n{text}"
    );
    append(&mut imap, "INBOX", "", groups);
    append(&mut imap, "INBOX", "", &attached);
    imap.ok("SELECT INBOX");
    let envelope = fetch_item(imap.ok("FETCH 1 (ENVELOPE)").as_bytes(), "ENVELOPE");
    let envelope = String::from_utf8(envelope).unwrap();
    assert!(
        envelope.contains(
            " ((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)) "
        ),
        "{envelope}"
    );
    assert!(!envelope.contains("foo"), "{envelope}");
    let fetched = imap.ok("FETCH 2 (BODY.PEEK[1.TEXT])");
    let body = fetch_item(fetched.as_bytes(), "BODY[1.TEXT]");
    assert_eq!(String::from_utf8_lossy(&body), text);
}

#[test]
fn the_largest_id_rfc_2971_allows_is_answered_before_login() {
    let server = server();
    let (mut imap, greeting) = Imap::connect(plain_imap(&server));
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // §3.3: at most 30 fields, names up to 30 octets, values up to 1024.
    let fields: Vec<String> = (0..30)
        .map(|i| format!("\"field-{i:0>24}\" \"{}\"", "v".repeat(1024)))
        .collect();
    let answer = imap.ok(&format!("ID ({})", fields.join(" ")));
    assert!(answer.contains("* ID ("), "{answer}");
    imap.ok(&format!("LOGIN alice \"{PW}\""));
}
