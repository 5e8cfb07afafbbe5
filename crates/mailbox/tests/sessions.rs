//! POP3 and IMAP sessions driven over in-memory streams against a real Maildir in a
//! temporary folder: the protocol behaviour byte by byte, without sockets or a server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use posthorn_mailbox::access::{
    Accounts, BoxFuture, Class, Connection, Credentials, Learner, Lesson, Login, Settings, User,
};
use posthorn_maildir::store::Mailbox;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};

/// A plain in-memory connection; STARTTLS is never offered to it.
struct Pipe(DuplexStream);

impl Connection for Pipe {
    fn start_tls(&mut self) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(async { Err(std::io::Error::other("no TLS here")) })
    }

    fn is_tls(&self) -> bool {
        false
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// One account, alice / secret, with an optional quota.
struct OneUser {
    root: std::path::PathBuf,
    quota: Option<u64>,
}

impl Accounts for OneUser {
    fn login(&self, _client: IpAddr, credentials: Credentials) -> BoxFuture<'_, Login> {
        Box::pin(async move {
            if credentials.username == "alice" && credentials.password == "secret" {
                Login::Accepted(User {
                    name: "alice".into(),
                    mailbox: Mailbox::new(self.root.clone(), "test.host"),
                    quota: self.quota,
                })
            } else {
                Login::Rejected
            }
        })
    }
}

/// The client end of a session.
struct Client {
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    writer: tokio::io::WriteHalf<DuplexStream>,
}

impl Client {
    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
            .await
            .expect("a response within 5 s")
            .unwrap();
        line
    }

    async fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).await.unwrap();
    }

    /// Sends an IMAP command and returns every line up to and including its tagged one.
    async fn command(&mut self, tag: &str, text: &str) -> String {
        self.send(&format!("{tag} {text}\r\n")).await;
        self.until(&format!("{tag} ")).await
    }

    /// Lines up to the first that starts with `prefix`.
    async fn until(&mut self, prefix: &str) -> String {
        let mut all = String::new();
        loop {
            let line = self.line().await;
            assert!(!line.is_empty(), "connection closed; so far:\n{all}");
            all.push_str(&line);
            if line.starts_with(prefix) {
                return all;
            }
        }
    }
}

enum Protocol {
    Imap,
    Pop3,
}

fn start(protocol: Protocol, root: &Path, quota: Option<u64>) -> Client {
    start_with(protocol, root, quota, Duration::from_secs(60), None).0
}

/// A session with `idle_timeout` and `learner`, and the task running it.
fn start_with(
    protocol: Protocol,
    root: &Path,
    quota: Option<u64>,
    idle_timeout: Duration,
    learner: Option<Arc<dyn Learner>>,
) -> (Client, tokio::task::JoinHandle<()>) {
    let (server, client) = tokio::io::duplex(1 << 20);
    let settings = Arc::new(Settings {
        hostname: "test.host".into(),
        starttls: false,
        plaintext_auth: true,
        idle_timeout,
        max_message_size: 1 << 20,
        whole_messages: posthorn_mailbox::budget::MemoryBudget::new(64 << 20),
        learner,
    });
    let accounts: Arc<dyn Accounts> = Arc::new(OneUser {
        root: root.to_path_buf(),
        quota,
    });
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let conn = Pipe(server);
    let session = tokio::spawn(async move {
        match protocol {
            Protocol::Imap => posthorn_mailbox::imap::serve(conn, ip, settings, accounts).await,
            Protocol::Pop3 => posthorn_mailbox::pop3::serve(conn, ip, settings, accounts).await,
        }
    });
    let (read, write) = tokio::io::split(client);
    let client = Client {
        reader: BufReader::new(read),
        writer: write,
    };
    (client, session)
}

fn deliver(root: &Path, text: &str) {
    deliver_to(root, None, text);
}

/// Delivers `text` into INBOX or the folder `folder`.
fn deliver_to(root: &Path, folder: Option<&str>, text: &str) {
    posthorn_maildir::deliver(
        root,
        folder,
        "test.host",
        b"",
        &mut text.as_bytes(),
        text.len() as u64,
    )
    .unwrap();
}

const SIMPLE: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: hello\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nfirst line\r\n.dotted\r\n";

#[tokio::test]
async fn pop3_session_deletes_only_at_quit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    deliver(&root, SIMPLE);
    deliver(&root, "Subject: two\r\n\r\nsecond\r\n");
    let mut c = start(Protocol::Pop3, &root, None);
    assert!(c.line().await.starts_with("+OK"));
    c.send("USER alice\r\nPASS wrong\r\n").await;
    assert_eq!(c.line().await, "+OK\r\n");
    assert!(c.line().await.starts_with("-ERR [AUTH]"));
    c.send("USER alice\r\nPASS secret\r\nSTAT\r\n").await;
    c.line().await;
    assert_eq!(c.line().await, "+OK 2 messages\r\n");
    let stat = c.line().await;
    assert!(stat.starts_with("+OK 2 "), "{stat}");
    c.send("RETR 1\r\n").await;
    let retr = c.until(".\r\n").await;
    assert!(retr.contains("\r\n..dotted\r\n"), "{retr}");
    c.send("TOP 2 0\r\n").await;
    assert_eq!(
        c.until(".\r\n").await,
        "+OK 24 octets\r\nSubject: two\r\n\r\n.\r\n"
    );
    c.send("DELE 1\r\nRETR 1\r\nLIST\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("-ERR"));
    let list = c.until(".\r\n").await;
    assert!(
        list.starts_with("+OK") && list.contains("\r\n2 24\r\n") && !list.contains("\r\n1 "),
        "{list}"
    );
    // Before QUIT nothing is deleted on disk.
    let inbox = Mailbox::new(root.clone(), "h").folder("INBOX").unwrap();
    assert_eq!(inbox.sync(false).unwrap().messages.len(), 2);
    c.send("UIDL 2\r\nQUIT\r\n").await;
    assert!(c.line().await.starts_with("+OK 2 "));
    assert_eq!(c.line().await, "+OK bye\r\n");
    let left = inbox.sync(false).unwrap().messages;
    assert_eq!(left.len(), 1);
    assert_eq!(
        inbox.read(&left[0].file).unwrap().unwrap(),
        b"Subject: two\r\n\r\nsecond\r\n"
    );
}

#[tokio::test]
async fn pop3_second_session_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    let mut first = start(Protocol::Pop3, &root, None);
    first.line().await;
    first.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
    assert!(first.line().await.starts_with("+OK"));
    let mut second = start(Protocol::Pop3, &root, None);
    second.line().await;
    second.send("AUTH PLAIN\r\n").await;
    assert_eq!(second.line().await, "+ \r\n");
    second.send("AGFsaWNlAHNlY3JldA==\r\n").await;
    assert!(second.line().await.starts_with("-ERR [IN-USE]"));
    first.send("QUIT\r\n").await;
    assert_eq!(first.line().await, "+OK bye\r\n");
}

async fn imap_login(root: &Path, quota: Option<u64>) -> Client {
    let c = start(Protocol::Imap, root, quota);
    logged_in(c).await
}

/// `c` past the greeting and logged in as alice.
async fn logged_in(mut c: Client) -> Client {
    assert!(c.line().await.starts_with("* OK [CAPABILITY IMAP4rev1"));
    let login = c.command("a", "LOGIN alice secret").await;
    assert!(login.starts_with("a OK"), "{login}");
    c
}

#[tokio::test]
async fn imap_select_fetch_store_expunge() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    deliver(&root, SIMPLE);
    deliver(&root, "Subject: two\r\n\r\nsecond\r\n");
    let mut c = imap_login(&root, None).await;
    let list = c.command("b", "LIST \"\" \"*\"").await;
    assert!(
        list.contains("* LIST (\\HasNoChildren \\Sent) \".\" Sent\r\n"),
        "{list}"
    );
    assert!(
        list.contains("* LIST (\\HasNoChildren) \".\" INBOX\r\n"),
        "{list}"
    );
    let select = c.command("c", "SELECT INBOX").await;
    assert!(
        select.contains("* 2 EXISTS\r\n") && select.contains("* 2 RECENT\r\n"),
        "{select}"
    );
    assert!(select.contains("c OK [READ-WRITE]"), "{select}");
    let fetch = c
        .command(
            "d",
            "FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
        )
        .await;
    assert!(
        fetch.contains("* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE"),
        "{fetch}"
    );
    assert!(fetch.contains("\"hello\""), "{fetch}");
    assert!(
        fetch.contains("BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n"),
        "{fetch}"
    );
    let body = c.command("e", "UID FETCH 2 (BODY[TEXT]<0.3>)").await;
    assert!(
        body.contains("* 2 FETCH (UID 2 BODY[TEXT]<0> \"sec\" FLAGS (\\Seen \\Recent))"),
        "{body}"
    );
    let store = c.command("f", "STORE 1 +FLAGS (\\Deleted $Junk)").await;
    assert!(
        store.contains("* 1 FETCH (FLAGS (\\Deleted \\Recent $Junk))"),
        "{store}"
    );
    let search = c.command("g", "UID SEARCH DELETED NOT SUBJECT two").await;
    assert!(search.contains("* SEARCH 1\r\n"), "{search}");
    let expunge = c.command("h", "EXPUNGE").await;
    assert!(expunge.contains("* 1 EXPUNGE\r\n"), "{expunge}");
    let status = c
        .command("i", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)")
        .await;
    assert!(
        status.contains("* STATUS INBOX (MESSAGES 1 UIDNEXT 3 UNSEEN 0)"),
        "{status}"
    );
}

#[tokio::test]
async fn imap_append_copy_move_and_quota() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    let mut c = imap_login(&root, Some(200)).await;
    let append = c
        .command(
            "a1",
            "APPEND Drafts (\\Draft) \"05-Mar-2020 10:11:12 +0100\" {7+}\r\nabc\r\nde",
        )
        .await;
    assert!(append.contains("a1 OK [APPENDUID "), "{append}");
    assert!(
        c.command("a2", "APPEND Nowhere {1+}\r\nx")
            .await
            .contains("a2 NO [TRYCREATE]")
    );
    let big = "x".repeat(300);
    let over = c
        .command("a3", &format!("APPEND Drafts {{300+}}\r\n{big}"))
        .await;
    assert!(over.contains("a3 NO [OVERQUOTA]"), "{over}");
    c.command("b", "SELECT Drafts").await;
    let date = c.command("c", "FETCH 1 (INTERNALDATE FLAGS)").await;
    assert!(
        date.contains("INTERNALDATE \"05-Mar-2020 09:11:12 +0000\""),
        "{date}"
    );
    let copy = c.command("d", "COPY 1 Archive").await;
    assert!(copy.contains("d OK [COPYUID "), "{copy}");
    let moved = c.command("e", "UID MOVE 1 Trash").await;
    assert!(
        moved.contains("* OK [COPYUID ") && moved.contains("* 1 EXPUNGE\r\n"),
        "{moved}"
    );
    for (folder, count) in ["Drafts", "Archive", "Trash"].iter().zip([0, 1, 1]) {
        let status = c.command("f", &format!("STATUS {folder} (MESSAGES)")).await;
        assert!(status.contains(&format!("(MESSAGES {count})")), "{status}");
    }
}

#[tokio::test]
async fn imap_idle_reports_delivery_and_other_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    deliver(&root, SIMPLE);
    let mut a = imap_login(&root, None).await;
    let mut b = imap_login(&root, None).await;
    a.command("s", "SELECT INBOX").await;
    b.command("s", "SELECT INBOX").await;
    a.send("i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling\r\n");
    deliver(&root, "Subject: new\r\n\r\nnew\r\n");
    assert_eq!(a.until("* 2 EXISTS").await, "* 2 EXISTS\r\n");
    b.command("f", "STORE 1 +FLAGS.SILENT (\\Seen)").await;
    let flags = a.until("* 1 FETCH").await;
    assert!(flags.contains("\\Seen"), "{flags}");
    a.send("DONE\r\n").await;
    assert!(a.until("i ").await.contains("i OK"));
    b.command("x", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.command("y", "EXPUNGE").await;
    let noop = a.command("n", "NOOP").await;
    assert!(noop.contains("* 1 EXPUNGE\r\n"), "{noop}");
}

#[tokio::test]
async fn imap_refuses_bad_input_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    let mut c = start(Protocol::Imap, &root, None);
    c.line().await;
    assert!(c.command("a", "SELECT INBOX").await.starts_with("a BAD"));
    assert!(c.command("b", "FROB").await.starts_with("b BAD"));
    let big = c.command("c", "APPEND INBOX {99999999999}").await;
    assert!(
        big.starts_with("c NO [TOOBIG]") || big.starts_with("c BAD"),
        "{big}"
    );
    assert!(
        c.command("d", "LOGIN alice secret")
            .await
            .starts_with("d OK")
    );
    assert!(c.command("d2", "SELECT INBOX").await.contains("d2 OK"));
    let nested = format!("SEARCH {}ALL{}", "(".repeat(200), ")".repeat(200));
    assert!(c.command("e", &nested).await.contains("e BAD"));
    c.send("f APPEND INBOX {99999999999+}\r\n").await;
    assert!(c.line().await.starts_with("* BYE"));
}

#[tokio::test]
async fn imap_client_that_stops_reading_is_dropped_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("Subject: big\r\n\r\n{}", "x".repeat(100).repeat(40_000));
    deliver(dir.path(), &big);
    let (mut c, session) = start_with(
        Protocol::Imap,
        dir.path(),
        None,
        Duration::from_millis(500),
        None,
    );
    assert!(c.line().await.starts_with("* OK"));
    assert!(c.command("a", "LOGIN alice secret").await.contains("a OK"));
    assert!(c.command("b", "SELECT INBOX").await.contains("b OK"));
    // 4 MB to send through a 1 MiB pipe that nobody reads.
    c.send("f FETCH 1 BODY.PEEK[]\r\n").await;
    tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .expect("the session ends once its write has waited for the idle timeout")
        .unwrap();
}

#[tokio::test]
async fn pop3_client_that_stops_reading_is_dropped_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("Subject: big\r\n\r\n{}", "x".repeat(100).repeat(40_000));
    deliver(dir.path(), &big);
    let (mut c, session) = start_with(
        Protocol::Pop3,
        dir.path(),
        None,
        Duration::from_millis(500),
        None,
    );
    assert!(c.line().await.starts_with("+OK"));
    c.send("USER alice\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    c.send("PASS secret\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    // 4 MB to send through a 1 MiB pipe that nobody reads.
    c.send("RETR 1\r\n").await;
    tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .expect("the session ends once its write has waited for the idle timeout")
        .unwrap();
}

/// A learner that keeps what it is given, one entry per `learn` call.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<Lesson>>>);

impl Learner for Recorder {
    fn learn(&self, lessons: Vec<Lesson>) {
        self.0.lock().unwrap().push(lessons);
    }
}

impl Recorder {
    /// The calls since the last look.
    fn calls(&self) -> Vec<Vec<Lesson>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The one call the last command made, as (class, folder directory, content) of each
    /// lesson, each file opened the way the server will open it.
    fn taught(&self) -> Vec<(Class, std::path::PathBuf, Vec<u8>)> {
        let mut calls = self.calls();
        assert_eq!(calls.len(), 1, "one learn call per command: {calls:?}");
        calls
            .remove(0)
            .into_iter()
            .map(|lesson| {
                assert_eq!(lesson.account, "alice");
                let mut content = Vec::new();
                lesson
                    .folder
                    .open(&lesson.file)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{} is not in its folder", lesson.file))
                    .read_to_end(&mut content)
                    .unwrap();
                (lesson.class, lesson.folder.dir().to_path_buf(), content)
            })
            .collect()
    }

    fn assert_silent(&self, after: &str) {
        let calls = self.calls();
        assert!(calls.is_empty(), "{after} taught {calls:?}");
    }
}

/// An IMAP session of alice's, logged in, whose lessons go to the returned recorder.
async fn imap_learning(root: &Path, quota: Option<u64>) -> (Client, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let learner: Arc<dyn Learner> = recorder.clone();
    let (c, _) = start_with(
        Protocol::Imap,
        root,
        quota,
        Duration::from_secs(60),
        Some(learner),
    );
    (logged_in(c).await, recorder)
}

/// Sends a command that must succeed.
async fn ok(c: &mut Client, tag: &str, command: &str) {
    let reply = c.command(tag, command).await;
    assert!(reply.contains(&format!("{tag} OK")), "{command}: {reply}");
}

const ONE: &str = "Subject: one\r\n\r\nfirst\r\n";
const TWO: &str = "Subject: two\r\n\r\nsecond\r\n";
const THREE: &str = "Subject: three\r\n\r\nthird\r\n";

#[tokio::test]
async fn imap_filing_into_junk_teaches_spam() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    for text in [ONE, TWO, THREE] {
        deliver(&root, text);
    }
    let (mut c, learned) = imap_learning(&root, None).await;
    let junk = root.join(".Junk");
    ok(&mut c, "s", "SELECT INBOX").await;
    ok(&mut c, "a", "COPY 1 Archive").await;
    learned.assert_silent("a copy between folders other than Junk");
    ok(&mut c, "b", "COPY 1:2 Junk").await;
    assert_eq!(
        learned.taught(),
        [
            (Class::Spam, junk.clone(), ONE.into()),
            (Class::Spam, junk.clone(), TWO.into())
        ]
    );
    ok(&mut c, "c", "UID MOVE 3 Junk").await;
    assert_eq!(
        learned.taught(),
        [(Class::Spam, junk.clone(), THREE.into())]
    );
    ok(&mut c, "d", "UID COPY 2 Junk").await;
    assert_eq!(learned.taught(), [(Class::Spam, junk.clone(), TWO.into())]);
    ok(&mut c, "e", "MOVE 1 Junk").await;
    assert_eq!(learned.taught(), [(Class::Spam, junk.clone(), ONE.into())]);
    let refused = c.command("f", "COPY 1 Nowhere").await;
    assert!(refused.contains("f NO [TRYCREATE]"), "{refused}");
    learned.assert_silent("a failed COPY");
}

#[tokio::test]
async fn imap_filing_out_of_junk_teaches_ham_except_into_trash() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    for text in [ONE, TWO, THREE] {
        deliver_to(&root, Some("Junk"), text);
    }
    let (mut c, learned) = imap_learning(&root, None).await;
    ok(&mut c, "s", "SELECT Junk").await;
    ok(&mut c, "a", "UID MOVE 1 INBOX").await;
    assert_eq!(learned.taught(), [(Class::Ham, root.clone(), ONE.into())]);
    ok(&mut c, "b", "COPY 1 Archive").await;
    assert_eq!(
        learned.taught(),
        [(Class::Ham, root.join(".Archive"), TWO.into())]
    );
    ok(&mut c, "c", "COPY 1:2 Trash").await;
    ok(&mut c, "d", "UID MOVE 2:3 Trash").await;
    learned.assert_silent("filing junk into Trash");
}

#[tokio::test]
async fn imap_append_to_junk_teaches_spam() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    let (mut c, learned) = imap_learning(&root, Some(200)).await;
    ok(
        &mut c,
        "a",
        &format!("APPEND Junk (\\Seen) {{{}+}}\r\n{ONE}", ONE.len()),
    )
    .await;
    assert_eq!(
        learned.taught(),
        [(Class::Spam, root.join(".Junk"), ONE.into())]
    );
    ok(
        &mut c,
        "b",
        &format!("APPEND INBOX {{{}+}}\r\n{TWO}", TWO.len()),
    )
    .await;
    learned.assert_silent("APPEND to INBOX");
    let big = "x".repeat(300);
    let over = c
        .command("c", &format!("APPEND Junk {{300+}}\r\n{big}"))
        .await;
    assert!(over.contains("c NO [OVERQUOTA]"), "{over}");
    learned.assert_silent("a refused APPEND");
}

#[tokio::test]
async fn imap_junk_keywords_teach_when_they_change_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    for text in [ONE, TWO] {
        deliver(&root, text);
    }
    let (mut c, learned) = imap_learning(&root, None).await;
    ok(&mut c, "s", "SELECT INBOX").await;
    ok(&mut c, "a", "STORE 1 +FLAGS ($Junk)").await;
    assert_eq!(learned.taught(), [(Class::Spam, root.clone(), ONE.into())]);
    ok(&mut c, "b", "STORE 1 +FLAGS.SILENT ($junk \\Seen)").await;
    learned.assert_silent("$Junk on a message that has it");
    ok(&mut c, "c", "STORE 1 -FLAGS ($Junk)").await;
    learned.assert_silent("-FLAGS $Junk");
    // Thunderbird: "junk", then "not junk" (+FLAGS of the one, -FLAGS of the other).
    ok(&mut c, "d", "UID STORE 2 +FLAGS ($Junk)").await;
    assert_eq!(learned.taught(), [(Class::Spam, root.clone(), TWO.into())]);
    ok(&mut c, "e", "UID STORE 2 +FLAGS ($NotJunk)").await;
    learned.assert_silent("both keywords");
    ok(&mut c, "f", "UID STORE 2 -FLAGS ($Junk)").await;
    assert_eq!(learned.taught(), [(Class::Ham, root.clone(), TWO.into())]);
    ok(&mut c, "g", "STORE 1:2 FLAGS (\\Flagged $Junk)").await;
    assert_eq!(
        learned.taught(),
        [
            (Class::Spam, root.clone(), ONE.into()),
            (Class::Spam, root.clone(), TWO.into())
        ]
    );
    // A lesson's file is found again after a later flag change renamed it.
    ok(&mut c, "h", "STORE 1 FLAGS ($NotJunk)").await;
    let file = learned.calls().remove(0).remove(0);
    ok(&mut c, "i", "STORE 1 +FLAGS (\\Answered \\Deleted)").await;
    let mut content = Vec::new();
    file.folder
        .open(&file.file)
        .unwrap()
        .expect("found by its base name")
        .read_to_end(&mut content)
        .unwrap();
    assert_eq!((file.class, content), (Class::Ham, ONE.into()));
    learned.assert_silent("\\Answered");
}
