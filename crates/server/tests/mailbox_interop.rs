//! Real mail clients against the POP3 and IMAP servers: fetchmail (POP3 with STLS and over
//! pop3s, IMAP with STARTTLS and over imaps; keep and nokeep) and mbsync from isync (a
//! two-way sync of folders, flags, new mail and deletions with a local Maildir).
//!
//! Both must be installed (Debian packages `fetchmail` and `isync`, which `scripts/test-all`
//! installs): a test whose client is missing fails and says how to install it, since a
//! skipped interop test looks just like a passing one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::mailbox::{listeners, maildir_files, python_with_imap, subject_of};
use common::{Options, TestServer, wait_until};

const PW: &str = "alice-interop-password";

/// A server with alice (password `PW`) and default (TLS before login) POP3 and IMAP
/// listeners plus pop3s and imaps; and a plaintext-allowed IMAP listener for setup.
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
role = "imap"
address = "127.0.0.1:0"

[[listener]]
role = "imaps"
address = "127.0.0.1:0"

[[listener]]
role = "pop3"
address = "127.0.0.1:0"

[[listener]]
role = "pop3s"
address = "127.0.0.1:0"

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{alice}"
"#
        ))
        .start()
}

/// Fails the test, saying how to install it, when `binary` is not installed.
fn require(binary: &str) {
    let found = Path::new("/usr/bin").join(binary).exists()
        || Command::new("which")
            .arg(binary)
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{binary} is not installed: this interop test needs it (Debian: apt-get install \
         fetchmail isync; scripts/test-all installs both)"
    );
}

fn message(subject: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n.line with a dot\r\n\
         last line\r\n"
    )
}

/// Delivers messages with these subjects to alice by SMTP, one at a time.
fn deliver(server: &TestServer, subjects: &[&str]) {
    let mut client = server.client();
    for subject in subjects {
        let before = server.messages("alice").len();
        let reply = client.send_message(
            "sender@example.org",
            &["alice@example.com"],
            &message(subject),
        );
        assert!(reply.starts_with("250"), "delivery of {subject}: {reply}");
        server.wait_for_messages("alice", before + 1);
    }
}

/// (subject, flag letters) of every message in a Maildir folder, sorted.
fn folder_state(dir: &Path) -> Vec<(String, String)> {
    let mut state: Vec<(String, String)> = maildir_files(dir)
        .iter()
        .map(|(name, content)| {
            let flags = name.split_once(":2,").map_or("", |(_, f)| f).to_string();
            (subject_of(content), flags)
        })
        .collect();
    state.sort();
    state
}

/// The Maildir of one of alice's folders on the server.
fn server_folder(server: &TestServer, folder: &str) -> PathBuf {
    if folder == "INBOX" {
        server.maildir("alice")
    } else {
        server.maildir("alice").join(format!(".{folder}"))
    }
}

/// Runs a command; returns (success, stdout + stderr).
fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("run");
    let text = format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A fetchmail run with its own home folder, rc file (mode 0600) and MDA output file.
struct Fetchmail {
    home: tempfile::TempDir,
}

impl Fetchmail {
    fn new() -> Fetchmail {
        Fetchmail {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Where the MDA appends the fetched messages.
    fn mbox(&self) -> PathBuf {
        self.home.path().join("fetched.mbox")
    }

    /// What the MDA got so far.
    fn fetched(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.mbox()).unwrap_or_default()).into_owned()
    }

    /// Polls `addr` once with `protocol` (POP3 or IMAP) and `options` (e.g. `ssl`,
    /// `keep`); returns (exit code, output).
    fn poll(&self, addr: SocketAddr, protocol: &str, options: &str) -> (i32, String) {
        use std::os::unix::fs::PermissionsExt;
        let rc = self.home.path().join("fetchmailrc");
        // sslcommonname is also what fetchmail sends as SNI, instead of the address,
        // which RFC 6066 does not allow there.
        let text = format!(
            "set no bouncemail\nset no syslog\n\
             poll {} service {} protocol {protocol} auth password timeout 20\n\
             \tuser \"alice\" there with password \"{PW}\" is \"root\" here\n\
             \toptions fetchall no sslcertck sslproto \"tls1.2+\" sslcommonname \"mx.test\" {options}\n\
             \tmda \"cat >> {}\"\n",
            addr.ip(),
            addr.port(),
            self.mbox().display()
        );
        std::fs::write(&rc, text).unwrap();
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
        let output = Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .arg("-v")
            .arg("--nodetach")
            .arg("--idfile")
            .arg(self.home.path().join("fetchids"))
            .arg("--pidfile")
            .arg(self.home.path().join("fetchmail.pid"))
            .env("HOME", self.home.path())
            .env("FETCHMAILHOME", self.home.path())
            .env("LC_ALL", "C")
            .output()
            .expect("run fetchmail");
        let text = format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }
}

/// Checks that the MDA got each of `subjects` `times` times, with the content intact.
fn assert_fetched(fetched: &str, subjects: &[&str], times: usize, log: &str) {
    for subject in subjects {
        assert_eq!(
            fetched.matches(&format!("Subject: {subject}\r\n")).count()
                + fetched.matches(&format!("Subject: {subject}\n")).count(),
            times,
            "{subject} fetched {times} time(s); fetched:\n{fetched}\nfetchmail:\n{log}"
        );
        let body = format!("body of {subject}");
        assert_eq!(
            fetched.matches(&body).count(),
            times,
            "body of {subject}: {fetched}"
        );
    }
    // Dot-stuffing was undone on the way.
    assert!(
        fetched.contains("\n.line with a dot") && !fetched.contains("..line with a dot"),
        "{fetched}"
    );
}

#[test]
fn fetchmail_pop3_with_stls_keep_then_nokeep() {
    require("fetchmail");
    let server = server();
    deliver(&server, &["fm-pop-1", "fm-pop-2", "fm-pop-3"]);
    let fetchmail = Fetchmail::new();
    let pop3 = server.listener("pop3");
    let (code, log) = fetchmail.poll(pop3, "POP3", "keep");
    assert_eq!(code, 0, "fetchmail keep over POP3+STLS:\n{log}");
    assert!(log.contains("STLS"), "fetchmail used STLS:\n{log}");
    let subjects = ["fm-pop-1", "fm-pop-2", "fm-pop-3"];
    assert_fetched(&fetchmail.fetched(), &subjects, 1, &log);
    assert_eq!(
        server.messages("alice").len(),
        3,
        "keep leaves the messages on the server"
    );
    let (code, log) = fetchmail.poll(pop3, "POP3", "nokeep");
    assert_eq!(code, 0, "fetchmail nokeep over POP3+STLS:\n{log}");
    assert_fetched(&fetchmail.fetched(), &subjects, 2, &log);
    assert!(
        server.messages("alice").is_empty(),
        "nokeep deleted the messages on the server:\n{log}"
    );
    // Nothing left: fetchmail says so with exit code 1.
    let (code, log) = fetchmail.poll(pop3, "POP3", "nokeep");
    assert_eq!(code, 1, "no mail:\n{log}");
}

#[test]
fn fetchmail_pop3s_nokeep() {
    require("fetchmail");
    let server = server();
    deliver(&server, &["fm-pop3s-1", "fm-pop3s-2"]);
    let fetchmail = Fetchmail::new();
    let (code, log) = fetchmail.poll(server.listener("pop3s"), "POP3", "ssl nokeep");
    assert_eq!(code, 0, "fetchmail over pop3s:\n{log}");
    assert_fetched(&fetchmail.fetched(), &["fm-pop3s-1", "fm-pop3s-2"], 1, &log);
    assert!(server.messages("alice").is_empty(), "{log}");
}

#[test]
fn fetchmail_imap_with_starttls_and_imaps() {
    require("fetchmail");
    let server = server();
    deliver(&server, &["fm-imap-1", "fm-imap-2"]);
    let fetchmail = Fetchmail::new();
    let imap = listeners(&server, "imap")[1];
    let (code, log) = fetchmail.poll(imap, "IMAP", "keep");
    assert_eq!(code, 0, "fetchmail keep over IMAP+STARTTLS:\n{log}");
    assert!(log.contains("STARTTLS"), "fetchmail used STARTTLS:\n{log}");
    assert_fetched(&fetchmail.fetched(), &["fm-imap-1", "fm-imap-2"], 1, &log);
    assert_eq!(server.messages("alice").len(), 2, "keep: {log}");

    deliver(&server, &["fm-imap-3"]);
    let (code, log) = fetchmail.poll(server.listener("imaps"), "IMAP", "ssl nokeep");
    assert_eq!(code, 0, "fetchmail nokeep over imaps:\n{log}");
    assert_fetched(&fetchmail.fetched(), &["fm-imap-1", "fm-imap-2"], 2, &log);
    assert_fetched(&fetchmail.fetched(), &["fm-imap-3"], 1, &log);
    assert!(
        server.messages("alice").is_empty(),
        "nokeep: \\Deleted and expunged on the server:\n{log}"
    );
}

/// Runs a python3 imaplib script against the plaintext-allowed IMAP listener.
fn python_imap(server: &TestServer, script: &str) -> String {
    python_with_imap(
        server,
        PW,
        &format!(
            "import imaplib, os\nM = imaplib.IMAP4('127.0.0.1', int(os.environ['PORT']), timeout=10)\n\
             M.login('alice', os.environ['PW'])\n{script}\nM.logout()\n"
        ),
    )
}

/// An mbsync setup: a local Maildir tree and a config for the server's STARTTLS listener.
struct Mbsync {
    dir: tempfile::TempDir,
}

impl Mbsync {
    fn new(server: &TestServer, ssl: &str, addr: SocketAddr) -> Mbsync {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("mail");
        std::fs::create_dir_all(&local).unwrap();
        let certificate = server.data().join("tls").join("self-signed.crt");
        assert!(certificate.exists(), "the server's self-signed certificate");
        // By name: mbsync sends its Host as SNI, and an address there is not allowed
        // (RFC 6066).
        assert!(addr.ip().is_loopback(), "localhost names {addr}");
        let config = format!(
            "IMAPAccount posthorn\nHost localhost\nPort {}\nUser alice\nPass {PW}\nSSLType {ssl}\n\
             CertificateFile {}\nSystemCertificates no\nTimeout 20\n\n\
             IMAPStore remote\nAccount posthorn\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n\
             Expunge Both\nSyncState *\n",
            addr.port(),
            certificate.display(),
            local.display(),
            local.display(),
        );
        std::fs::write(dir.path().join("mbsyncrc"), config).unwrap();
        Mbsync { dir }
    }

    /// A local folder.
    fn local(&self, folder: &str) -> PathBuf {
        self.dir.path().join("mail").join(folder)
    }

    /// Syncs everything; panics with mbsync's output on failure.
    fn sync(&self) -> String {
        let (ok, log) = run(Command::new("mbsync")
            .arg("-V")
            .arg("-c")
            .arg(self.dir.path().join("mbsyncrc"))
            .arg("-a")
            .env("HOME", self.dir.path()));
        assert!(ok, "mbsync failed:\n{log}");
        log
    }
}

#[test]
fn mbsync_two_way_sync_of_folders_flags_and_deletions() {
    require("mbsync");
    let server = server();
    deliver(&server, &["mb-1", "mb-2", "mb-3", "mb-4"]);
    // On the server: a folder with one message, \Flagged on one, \Seen on another.
    python_imap(
        &server,
        r#"
assert M.create("Projects")[0] == "OK"
assert M.create("Projects.2025")[0] == "OK"
M.select("INBOX")
def seq(subject):
    return M.search(None, "SUBJECT", subject)[1][0].decode()
assert M._simple_command("MOVE", seq("mb-4"), "Projects")[0] == "OK"
M.store(seq("mb-1"), "+FLAGS", r"(\Flagged)")
M.store(seq("mb-2"), "+FLAGS", r"(\Seen)")
"#,
    );
    let mbsync = Mbsync::new(&server, "STARTTLS", listeners(&server, "imap")[1]);
    let log = mbsync.sync();
    let pair = |s: &str, f: &str| (s.to_string(), f.to_string());
    assert_eq!(
        folder_state(&mbsync.local("INBOX")),
        [pair("mb-1", "F"), pair("mb-2", "S"), pair("mb-3", "")],
        "INBOX pulled with its flags:\n{log}"
    );
    assert_eq!(
        folder_state(&mbsync.local("Projects")),
        [pair("mb-4", "")],
        "{log}"
    );
    for folder in [
        "Projects/2025",
        "Sent",
        "Drafts",
        "Trash",
        "Junk",
        "Archive",
    ] {
        assert!(
            mbsync.local(folder).join("cur").is_dir(),
            "local {folder} created:\n{log}"
        );
    }
    // Content arrives intact.
    let local = maildir_files(&mbsync.local("INBOX"));
    let on_server = server.messages("alice");
    for (_, content) in &local {
        let subject = subject_of(content);
        let original = on_server
            .iter()
            .find(|s| subject_of(s) == subject)
            .expect("on the server");
        // mbsync stores with LF line ends and adds its X-TUID tracking header.
        let local_text: String = String::from_utf8_lossy(content)
            .lines()
            .filter(|l| !l.starts_with("X-TUID: "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            local_text,
            String::from_utf8_lossy(original).replace("\r\n", "\n"),
            "local copy of {subject} differs from the server's"
        );
    }

    // Local changes: mb-3 gets \Flagged \Seen, mb-1 loses \Flagged, mb-2 is deleted,
    // a new local message and a new local folder.
    let cur = mbsync.local("INBOX").join("cur");
    for (name, content) in &local {
        let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
        let from = if cur.join(name).exists() {
            cur.join(name)
        } else {
            mbsync.local("INBOX").join("new").join(name)
        };
        match subject_of(content).as_str() {
            "mb-1" => std::fs::rename(&from, cur.join(format!("{base}:2,"))).unwrap(),
            "mb-2" => std::fs::remove_file(&from).unwrap(),
            "mb-3" => std::fs::rename(&from, cur.join(format!("{base}:2,FS"))).unwrap(),
            _ => {}
        }
    }
    std::fs::write(
        mbsync
            .local("INBOX")
            .join("new")
            .join("1700000000.local1.host"),
        message("mb-local"),
    )
    .unwrap();
    let local_folder = mbsync.local("Local");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(local_folder.join(sub)).unwrap();
    }
    std::fs::write(
        local_folder.join("new").join("1700000001.local2.host"),
        message("mb-in-local-folder"),
    )
    .unwrap();
    // And a server-side change at the same time.
    deliver(&server, &["mb-5"]);

    let log = mbsync.sync();
    assert_eq!(
        folder_state(&server_folder(&server, "INBOX")),
        [
            pair("mb-1", ""),
            pair("mb-3", "FS"),
            pair("mb-5", ""),
            pair("mb-local", ""),
        ],
        "the server got the local flag changes, deletion (expunged) and new message:\n{log}"
    );
    assert_eq!(
        folder_state(&server_folder(&server, "Local")),
        [pair("mb-in-local-folder", "")],
        "a local folder was created on the server:\n{log}"
    );
    let inbox = folder_state(&mbsync.local("INBOX"));
    assert_eq!(
        inbox.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["mb-1", "mb-3", "mb-5", "mb-local"],
        "new server mail pulled:\n{log}"
    );

    // Server-side deletion and flag change go the other way.
    python_imap(
        &server,
        r#"
M.select("INBOX")
def seq(subject):
    return M.search(None, "SUBJECT", subject)[1][0].decode()
M.store(seq("mb-1"), "+FLAGS", r"(\Answered)")
M.store(seq("mb-5"), "+FLAGS", r"(\Deleted)")
M.expunge()
"#,
    );
    let log = mbsync.sync();
    let inbox = folder_state(&mbsync.local("INBOX"));
    assert!(
        inbox.contains(&pair("mb-1", "R")),
        "\\Answered pulled: {inbox:?}\n{log}"
    );
    assert!(
        !inbox.iter().any(|(s, _)| s == "mb-5"),
        "expunged on the server, gone locally: {inbox:?}\n{log}"
    );
    // A further sync changes nothing.
    let before = (
        folder_state(&server_folder(&server, "INBOX")),
        folder_state(&mbsync.local("INBOX")),
    );
    let log = mbsync.sync();
    assert_eq!(
        before,
        (
            folder_state(&server_folder(&server, "INBOX")),
            folder_state(&mbsync.local("INBOX")),
        ),
        "{log}"
    );
}

#[test]
fn mbsync_over_imaps_pulls_everything() {
    require("mbsync");
    let server = server();
    deliver(&server, &["mbs-1", "mbs-2"]);
    let mbsync = Mbsync::new(&server, "IMAPS", server.listener("imaps"));
    let log = mbsync.sync();
    let inbox = folder_state(&mbsync.local("INBOX"));
    assert_eq!(inbox.len(), 2, "{inbox:?}\n{log}");
    // The server's INBOX is unchanged apart from nothing: no flags set by a pull.
    let server_inbox = wait_until("server INBOX listed", || {
        let state = folder_state(&server_folder(&server, "INBOX"));
        (state.len() == 2).then_some(state)
    })
    .unwrap();
    assert!(
        server_inbox.iter().all(|(_, flags)| flags.is_empty()),
        "{server_inbox:?}"
    );
}
