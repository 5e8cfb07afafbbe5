//! What users teach, end to end: filing mail into and out of Junk over IMAP (Python's
//! imaplib) trains the classifier, and the next similar message lands where the user
//! would have filed it; what a user filed, and whom they wrote to (Python's smtplib on
//! submission), moves a sender's mail; `posthorn spam` trains, reports, forgets and
//! measures beside a running server; `kill -9` while learning never damages a model.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::dns::TestDns;
use common::mailbox::{listeners, maildir_files, subject_of};
use common::{Options, TestServer, wait_until};

const PW: &str = "alice-learning-password";

/// A server for alice (password `PW`) and bob at `rcpt.test` with an IMAP and a
/// submission listener that take passwords in the clear, asking `dns`, checking SPF,
/// DKIM and DMARC of loopback mail, with `extra` tables.
fn server(dns: &TestDns, extra: &str) -> TestServer {
    let hash = posthorn::accounts::passwords::hash(PW).unwrap();
    Options::default()
        .config(&format!(
            r#"
[delivery]
nameserver = "{}"
command_timeout = "3s"

[verify]
skip_networks = []

[[listener]]
role = "imap"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[listener]]
role = "submission"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[domain]]
name = "rcpt.test"

[[account]]
name = "postmaster"

[[account]]
name = "alice"
password = "{hash}"

[[account]]
name = "bob"

{extra}"#,
            dns.addr
        ))
        .start()
}

/// Senders' domains whose SPF allows loopback.
fn world() -> TestDns {
    TestDns::builder()
        .txt("friends.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("shop.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("pills.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("pharma.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("far.test", "v=spf1 ip4:127.0.0.1 -all")
        .start()
}

/// A well-formed message from `from` to alice with `body`.
fn message(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: alice@rcpt.test\r\nSubject: {subject}\r\nDate: {}\r\n\
         Message-ID: <{}@{}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         \r\n{body}\r\n",
        common::date_now(),
        subject.replace(' ', "."),
        from.split('@').nth(1).unwrap_or("x.test"),
    )
}

const PILLS: &str = "Cheap pills online! Best prices on viagra cialis and weight loss \
    pills. Order now from our online pharmacy, no prescription needed, discreet \
    worldwide shipping. Click here to buy cheap meds today and save 80 percent.";
const LUNCH: &str = "Hi Alice, are we still on for lunch on Thursday? I booked a \
    table at the little Italian place near the office for half past twelve. Let me \
    know if that still works for you, otherwise Friday is fine too. Cheers, Dan";

/// Sends `content` from `from` to alice as another mail server would; the final reply.
fn send(server: &TestServer, from: &str, content: &str) -> String {
    let mut client = server.client();
    client.expect("EHLO mail.far.test", "250");
    client.send_message(from, &["alice@rcpt.test"], content)
}

/// Alice's folder on disk: INBOX or another.
fn folder(server: &TestServer, name: &str) -> PathBuf {
    match name {
        "INBOX" => server.maildir("alice"),
        other => server.maildir("alice").join(format!(".{other}")),
    }
}

/// Waits until the message with `subject` is in alice's `folder`; its content.
fn wait_in(server: &TestServer, name: &str, subject: &str) -> String {
    wait_until(&format!("{subject:?} in {name}"), || {
        maildir_files(&folder(server, name))
            .into_iter()
            .find(|(_, content)| subject_of(content) == subject)
            .map(|(_, content)| String::from_utf8_lossy(&content).into_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// Sends a message from `from` to alice as another server would and waits for it in her
/// `folder`; its content.
fn arrives(server: &TestServer, from: &str, subject: &str, body: &str, folder: &str) -> String {
    let reply = send(server, from, &message(from, subject, body));
    assert!(reply.starts_with("250"), "{reply}");
    wait_in(server, folder, subject)
}

/// Alice files the message with `subject` from one folder into another (IMAP UID MOVE).
fn file(server: &TestServer, from: &str, subject: &str, to: &str) {
    python(
        server,
        &format!(
            "M = login()\nM.select(\"{from}\")\n\
             assert M.uid(\"MOVE\", uid_of(M, \"{subject}\"), \"{to}\")[0] == \"OK\"\n\
             M.logout()\n"
        ),
    );
}

/// Runs a Python script with `login()` (imaplib, as alice) and `submit()` (smtplib).
fn python(server: &TestServer, script: &str) {
    let prelude = r#"
import os, imaplib, smtplib
def login():
    M = imaplib.IMAP4("127.0.0.1", int(os.environ["IMAP"]), timeout=10)
    assert M.login("alice", os.environ["PW"])[0] == "OK"
    return M
def uid_of(M, subject):
    typ, data = M.uid("SEARCH", None, "SUBJECT", '"' + subject + '"')
    assert typ == "OK" and data[0], (subject, typ, data)
    return data[0].split()[-1].decode()
def submit(to, text):
    S = smtplib.SMTP("127.0.0.1", int(os.environ["SUBMISSION"]), timeout=10)
    S.login("alice", os.environ["PW"])
    S.sendmail("alice@rcpt.test", [to], text)
    S.quit()
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{script}"))
        .env("IMAP", listeners(server, "imap")[0].port().to_string())
        .env(
            "SUBMISSION",
            listeners(server, "submission")[0].port().to_string(),
        )
        .env("PW", PW)
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
}

/// Waits until the log says `count` filed messages were learnt.
fn wait_for_lessons(server: &TestServer, count: usize) {
    wait_until(&format!("{count} lessons learnt"), || {
        (server.log().matches("learnt from filing").count() >= count).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
}

/// The symbols the checking stage wrote into a delivered message.
fn checks_header(content: &str) -> String {
    content
        .lines()
        .skip_while(|l| !l.starts_with("X-Posthorn-Checks:"))
        .take_while(|l| l.starts_with("X-Posthorn-Checks:") || l.starts_with([' ', '\t']))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn filing_into_junk_teaches_the_next_similar_message_and_filing_out_unteaches_it() {
    let dns = world();
    let server = server(
        &dns,
        "[checks.classifier]\nmin_spam = 1\nmin_ham = 1\n\n[checks.reputation]\nenabled = false\n",
    );
    for (from, subject, body) in [
        ("dan@friends.test", "lunch on thursday", LUNCH),
        ("sales@pills.test", "cheap pills today", PILLS),
    ] {
        arrives(&server, from, subject, body, "INBOX");
    }
    // Alice files the pills as junk (Thunderbird's MOVE) and marks lunch as not junk.
    python(
        &server,
        r#"
M = login()
M.select("INBOX")
assert M.uid("MOVE", uid_of(M, "cheap pills today"), "Junk")[0] == "OK"
assert M.uid("STORE", uid_of(M, "lunch on thursday"), "+FLAGS", "($NotJunk)")[0] == "OK"
M.logout()
"#,
    );
    wait_for_lessons(&server, 2);

    // Pills from someone else now go to Junk, on the classifier's word.
    let junked = arrives(
        &server,
        "offers@pharma.test",
        "pharmacy offers",
        PILLS,
        "Junk",
    );
    assert!(
        checks_header(&junked).contains("BAYES_SPAM"),
        "{}",
        checks_header(&junked)
    );
    // A friend's mail still reaches the inbox.
    let kept = arrives(&server, "dan@friends.test", "lunch again", LUNCH, "INBOX");
    assert!(!checks_header(&kept).contains("BAYES_SPAM"), "{kept}");

    // Alice disagrees: both pill messages go back to the inbox (a retrain, and a lesson).
    python(
        &server,
        r#"
M = login()
M.select("Junk")
for subject in ("cheap pills today", "pharmacy offers"):
    assert M.uid("MOVE", uid_of(M, subject), "INBOX")[0] == "OK"
M.logout()
"#,
    );
    wait_for_lessons(&server, 4);
    let back = arrives(&server, "news@shop.test", "more pills", PILLS, "INBOX");
    assert!(!checks_header(&back).contains("BAYES_SPAM"), "{back}");
    assert!(maildir_files(&folder(&server, "Junk")).is_empty());
}

#[test]
fn with_the_defaults_a_near_copy_of_junk_follows_it_from_the_first_lesson() {
    let dns = world();
    let server = server(&dns, "");
    arrives(
        &server,
        "sales@pills.test",
        "cheap pills today",
        PILLS,
        "INBOX",
    );
    file(&server, "INBOX", "cheap pills today", "Junk");
    wait_for_lessons(&server, 1);
    // Another sender, a changed price: still the same message.
    let copy = PILLS.replace("80 percent", "90 percent");
    let junked = arrives(
        &server,
        "offers@pharma.test",
        "pharmacy offers",
        &copy,
        "Junk",
    );
    assert!(
        checks_header(&junked).contains("JUNK_LOOKALIKE"),
        "{junked}"
    );
    // Other mail is not touched.
    let lunch = arrives(
        &server,
        "dan@friends.test",
        "lunch on thursday",
        LUNCH,
        "INBOX",
    );
    assert!(!checks_header(&lunch).contains("LOOKALIKE"), "{lunch}");
    // The user disagrees about the copy: the next one like it stays in the inbox.
    file(&server, "Junk", "pharmacy offers", "INBOX");
    wait_for_lessons(&server, 2);
    let kept = arrives(&server, "news@shop.test", "more pills", &copy, "INBOX");
    assert!(checks_header(&kept).contains("KEPT_LOOKALIKE"), "{kept}");
}

#[test]
fn a_junked_sender_goes_to_junk_and_a_kept_one_is_trusted() {
    let dns = world();
    let server = server(&dns, "");
    arrives(&server, "sales@pills.test", "first offer", PILLS, "INBOX");
    // Apple Mail's way: the $Junk keyword, without a move.
    python(
        &server,
        r#"
M = login()
M.select("INBOX")
assert M.uid("STORE", uid_of(M, "first offer"), "+FLAGS", "($Junk)")[0] == "OK"
M.logout()
"#,
    );
    wait_for_lessons(&server, 1);
    // Not enough mail for the classifier: the sender's standing alone junks the next one.
    let junked = arrives(&server, "sales@pills.test", "second offer", LUNCH, "Junk");
    assert!(checks_header(&junked).contains("FROM_JUNKED"), "{junked}");
    // Filed back out of Junk: the sender is trusted now (SPF vouches for the From).
    file(&server, "Junk", "second offer", "Archive");
    wait_for_lessons(&server, 2);
    let kept = arrives(&server, "sales@pills.test", "third offer", LUNCH, "INBOX");
    let symbols = checks_header(&kept);
    assert!(
        symbols.contains("FROM_KEPT") && !symbols.contains("FROM_JUNKED"),
        "{symbols}"
    );
    // Moving to Trash teaches nothing.
    python(
        &server,
        r#"
M = login()
M.select("INBOX")
assert M.uid("MOVE", uid_of(M, "third offer"), "Junk")[0] == "OK"
M.select("Junk")
assert M.uid("MOVE", uid_of(M, "third offer"), "Trash")[0] == "OK"
M.logout()
"#,
    );
    wait_for_lessons(&server, 3);
    server.wait_for_log("learnt from filing");
    let log = server.settled_log();
    assert_eq!(log.matches("learnt from filing").count(), 3, "{log}");
}

#[test]
fn whom_a_user_writes_to_is_vouched_for_when_authenticated() {
    let dns = world();
    let server = server(&dns, "");
    python(
        &server,
        r#"
submit("pen.pal@far.test", "From: alice@rcpt.test\r\nTo: pen.pal@far.test\r\nSubject: hello\r\n\r\nHow are you?\r\n")
"#,
    );
    server.wait_for_log("accepted");
    wait_until("the correspondent recorded", || {
        std::fs::read_to_string(server.data().join("learning/accounts/alice.senders"))
            .ok()
            .filter(|t| t.contains("pen.pal@far.test"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    // Their answer passes SPF for far.test: vouched for.
    let answer = arrives(&server, "pen.pal@far.test", "re hello", LUNCH, "INBOX");
    assert!(
        checks_header(&answer).contains("FROM_CORRESPONDENT"),
        "{answer}"
    );
    // Someone else at the same domain gets the domain's smaller bonus.
    let colleague = checks_header(&arrives(
        &server,
        "colleague@far.test",
        "from a colleague",
        LUNCH,
        "INBOX",
    ));
    assert!(
        colleague.contains("FROM_CORRESPONDENT_DOMAIN")
            && !colleague.contains("FROM_CORRESPONDENT="),
        "{colleague}"
    );
    // A forger using the same From from elsewhere gets nothing.
    let reply = send(
        &server,
        "someone@nowhere.test",
        &message("pen.pal@far.test", "forged hello", LUNCH),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let forged = wait_in(&server, "INBOX", "forged hello");
    assert!(
        !checks_header(&forged).contains("FROM_CORRESPONDENT"),
        "{forged}"
    );
}

/// `posthorn spam ARGS` with the server's configuration.
fn spam(server: &TestServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .arg("spam")
        .args(args)
        .arg("--config")
        .arg(server.config_path())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `count` varied messages of one kind into `dir`, as a corpus has them.
fn corpus(dir: &Path, kind: &str, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let words: &[&str] = if kind == "spam" {
        &[
            "cheap", "pills", "viagra", "winner", "prize", "casino", "loan", "offer", "click",
            "bitcoin",
        ]
    } else {
        &[
            "meeting", "lunch", "report", "project", "family", "holiday", "invoice", "draft",
            "review", "garden",
        ]
    };
    for i in 0..count {
        let body: Vec<&str> = (0..40)
            .map(|j| words[(i * 7 + j * 3 + j / 4) % words.len()])
            .collect();
        let from = if kind == "spam" {
            "deals@pills.test"
        } else {
            "dan@friends.test"
        };
        let text = message(from, &format!("{kind} {i}"), &body.join(" "));
        std::fs::write(dir.join(format!("{kind}-{i}.eml")), text).unwrap();
    }
}

#[test]
fn spam_command_trains_reports_forgets_and_measures_beside_the_server() {
    let dns = world();
    let server = server(&dns, "[checks.classifier]\nmin_spam = 20\nmin_ham = 20\n");
    let dir = tempfile::tempdir().unwrap();
    let (spam_dir, ham_dir) = (dir.path().join("train/spam"), dir.path().join("train/ham"));
    corpus(&spam_dir, "spam", 30);
    corpus(&ham_dir, "ham", 30);
    let (s, h) = (spam_dir.to_str().unwrap(), ham_dir.to_str().unwrap());

    let status = stdout(&spam(&server, &["status", "--account", "alice"]));
    assert!(
        status.contains("0 spam, 0 ham") && status.contains("not ready"),
        "{status}"
    );
    let trained = stdout(&spam(
        &server,
        &["train", "--account", "alice", "--spam", s, "--ham", h],
    ));
    assert!(
        trained.contains("spam: 30 learnt") && trained.contains("ham: 30 learnt"),
        "{trained}"
    );
    assert!(
        trained.contains("account alice: 30 spam, 30 ham"),
        "{trained}"
    );
    // Again: nothing counts twice. The other way round: each is relearnt.
    let again = stdout(&spam(
        &server,
        &["train", "--account", "alice", "--spam", s],
    ));
    assert!(again.contains("30 known"), "{again}");
    let json = stdout(&spam(&server, &["status", "--json"]));
    let global: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (global["spam"].as_u64(), global["ham"].as_u64()),
        (Some(30), Some(30))
    );
    assert_eq!(global["ready"].as_bool(), Some(true));

    // The running server picks the training up and scores with alice's model.
    let words = "cheap pills viagra winner prize casino loan offer click bitcoin ".repeat(4);
    let junked = arrives(&server, "offers@pharma.test", "spam 999", &words, "Junk");
    assert!(checks_header(&junked).contains("BAYES_SPAM"), "{junked}");
    assert!(checks_header(&junked).contains("account"), "{junked}");

    let relearnt = stdout(&spam(&server, &["train", "--account", "alice", "--ham", s]));
    assert!(
        relearnt.contains("ham: 0 learnt, 30 relearnt"),
        "{relearnt}"
    );
    assert!(relearnt.contains("0 spam, 60 ham"), "{relearnt}");
    let one = spam_dir.join("spam-0.eml");
    let forgot = stdout(&spam(
        &server,
        &["forget", "--account", "alice", one.to_str().unwrap()],
    ));
    assert!(
        forgot.contains("1 messages forgotten") && forgot.contains("0 spam, 59 ham"),
        "{forgot}"
    );
    let wiped = stdout(&spam(&server, &["forget", "--account", "alice", "--all"]));
    assert!(wiped.contains("0 spam, 0 ham"), "{wiped}");

    let unknown = spam(&server, &["status", "--account", "nobody"]);
    assert_eq!(unknown.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such account"));

    // eval: a fresh model, measured on a corpus of its own.
    let (test_spam, test_ham) = (dir.path().join("test/spam"), dir.path().join("test/ham"));
    corpus(&test_spam, "spam", 10);
    corpus(&test_ham, "ham", 10);
    let report = stdout(&spam(
        &server,
        &[
            "eval",
            "--train",
            dir.path().join("train").to_str().unwrap(),
            "--test",
            dir.path().join("test").to_str().unwrap(),
        ],
    ));
    assert!(report.contains("AUC"), "{report}");
    let missing = spam(
        &server,
        &["eval", "--train", "/nonexistent", "--test", "/nonexistent"],
    );
    assert_eq!(missing.status.code(), Some(64));
}

#[test]
fn kill_9_while_learning_never_damages_a_model() {
    let dns = world();
    let mut server = server(&dns, "");
    let dir = tempfile::tempdir().unwrap();
    let spam_dir = dir.path().join("spam");
    corpus(&spam_dir, "spam", 1200);
    // The command (which saves every 500 messages and at the end) killed later each
    // round, until a round ends by itself: each kill lands before, during or after a save.
    let learnt = |server: &TestServer| -> u64 {
        let json = stdout(&spam(server, &["status", "--json"]));
        let status: serde_json::Value = serde_json::from_str(&json).unwrap();
        status["spam"].as_u64().unwrap()
    };
    let mut before = 0;
    let mut finished = false;
    for round in 0..200u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_posthorn"))
            .args([
                "spam",
                "train",
                "--spam",
                spam_dir.to_str().unwrap(),
                "--config",
            ])
            .arg(server.config_path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 * round));
        if child.try_wait().unwrap().is_some() {
            finished = true;
        }
        let _ = child.kill();
        child.wait().unwrap();
        // Never damaged, never less than before: a kill loses at most what was in flight.
        let now = learnt(&server);
        assert!(now >= before, "round {round}: {now} after {before}");
        before = now;
        if finished {
            break;
        }
    }
    assert!(finished, "the training never finished");
    assert_eq!(before, 1200);
    let leftovers: Vec<String> = common::list_files(&server.data().join("learning"))
        .into_iter()
        .filter(|f| f.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The server killed while it learns what alice files.
    for i in 0..20 {
        let subject = format!("offer {i}");
        send(
            &server,
            "sales@pills.test",
            &message("sales@pills.test", &subject, PILLS),
        );
    }
    wait_until("20 delivered", || {
        (server.messages("alice").len() >= 20).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    python(
        &server,
        r#"
M = login()
M.select("INBOX")
typ, data = M.uid("SEARCH", None, "ALL")
assert M.uid("MOVE", b",".join(data[0].split()).decode(), "Junk")[0] == "OK"
M.logout()
"#,
    );
    server.wait_for_log("learnt from filing");
    server.kill9();
    server.restart();
    let status = stdout(&spam(&server, &["status", "--account", "alice"]));
    assert!(status.contains("account alice:"), "{status}");
    let damaged: Vec<String> = common::list_files(&server.data().join("learning"))
        .into_iter()
        .filter(|f| f.contains("damaged"))
        .collect();
    assert!(damaged.is_empty(), "{damaged:?}");
    assert!(
        !server.log().contains("damaged learning file"),
        "{}",
        server.log()
    );
}
