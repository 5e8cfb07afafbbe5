//! Who may send as whom: an authenticated user only with its own From, Sender and envelope
//! sender; a local Unix user through `sendmail` only as itself unless the admin says
//! otherwise; and nobody may bring in Authentication-Results that claim to be ours.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::{Client, Options, TestServer};

const ALICE: &str = "alice-password";

/// A test server with a submission listener, trusted loopback, alice (who may send only as
/// herself) and `extra` configuration.
fn server(extra: &str) -> TestServer {
    let alice = posthorn::accounts::passwords::hash(ALICE).unwrap();
    Options::default()
        .config(&format!(
            "[[listener]]\nrole = \"submission\"\naddress = \"127.0.0.1:0\"\n\n\
             allow_plaintext_auth = true\n\n\
             [auth]\nfailure_delay = \"10ms\"\n\n\
             [[domain]]\nname = \"example.com\"\n\n\
             [[account]]\nname = \"postmaster\"\n\n\
             [[account]]\nname = \"alice\"\npassword = \"{alice}\"\n\n{extra}"
        ))
        .start()
}

fn plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// Alice, logged in on the submission listener; the final reply to `content`.
fn submit_as_alice(server: &TestServer, mail_from: &str, content: &str) -> String {
    let mut client = Client::greeted(server.listener("submission"));
    client.expect("EHLO laptop.example.com", "250");
    client.expect(&format!("AUTH PLAIN {}", plain("alice", ALICE)), "235");
    let reply = client.command(&format!("MAIL FROM:<{mail_from}>"));
    if !reply.starts_with("250") {
        return reply;
    }
    client.expect("RCPT TO:<postmaster@example.com>", "250");
    client.expect("DATA", "354");
    client.send(content);
    client.command(".")
}

fn message(headers: &str, subject: &str) -> String {
    format!("{headers}To: postmaster@example.com\r\nSubject: {subject}\r\n\r\nHello.\r\n")
}

/// The delivered message to postmaster with `subject`.
fn delivered(server: &TestServer, count: usize, subject: &str) -> String {
    server
        .wait_for_messages("postmaster", count)
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
        .expect("the message was delivered")
}

#[test]
fn submissions_may_not_forge_their_author() {
    let server = server("");
    for (headers, what) in [
        ("From: Bob <bob@example.com>\r\n", "someone else's From"),
        (
            "From: alice@example.com, ceo@example.com\r\n",
            "a second From address",
        ),
        (
            "From: alice@example.com\r\nSender: ceo@elsewhere.example\r\n",
            "someone else's Sender",
        ),
        ("From: undisclosed\r\n", "a From without an address"),
    ] {
        let reply = submit_as_alice(&server, "alice@example.com", &message(headers, "forged"));
        assert!(reply.starts_with("550 5.7.1"), "{what}: {reply}");
    }
    let reply = submit_as_alice(&server, "", &message("From: alice@example.com\r\n", "null"));
    assert!(reply.starts_with("553 5.7.1"), "null sender: {reply}");

    let own = message("From: Alice <Alice+lists@Example.com>\r\n", "own");
    let reply = submit_as_alice(&server, "alice@example.com", &own);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let text = delivered(&server, 1, "own");
    assert!(text.contains("(Authenticated sender: alice)"), "{text}");
    assert_eq!(
        common::list_files(&server.maildir("postmaster").join("new")).len(),
        1
    );
}

#[test]
fn forged_results_naming_us_are_removed_on_every_path() {
    let server = server("[policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n");
    let forged = "Authentication-Results: mx.test; dkim=pass header.d=example.com\r\n\
                  Authentication-Results: other.example; spf=pass\r\n";
    // An authenticated submission.
    let content = message(&format!("{forged}From: alice@example.com\r\n"), "submitted");
    let reply = submit_as_alice(&server, "alice@example.com", &content);
    assert!(reply.starts_with("250"), "{reply}");
    // A trusted network, which is not checked.
    let mut client = Client::greeted(server.addr);
    let content = message(&format!("{forged}From: app@example.com\r\n"), "trusted");
    let reply = client.send_message("app@example.com", &["postmaster@example.com"], &content);
    assert!(reply.starts_with("250"), "{reply}");
    for subject in ["submitted", "trusted"] {
        let text = delivered(&server, 2, subject);
        assert!(!text.contains("Authentication-Results: mx.test"), "{text}");
        assert!(
            text.contains("Authentication-Results: other.example"),
            "{text}"
        );
    }
    server.wait_for_log("forged Authentication-Results removed");
}

/// A Unix user made for the test, removed when dropped.
struct UnixUser {
    name: String,
    uid: u32,
    gid: u32,
}

/// useradd and userdel lock /etc/passwd and fail rather than wait: one at a time.
static USER_DATABASE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl UnixUser {
    fn create(name: &str) -> UnixUser {
        let _one_at_a_time = USER_DATABASE.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(name).output();
        let made = Command::new("useradd")
            .args([
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .expect("useradd runs");
        assert!(made.status.success(), "useradd: {made:?}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("an id")
        };
        UnixUser {
            name: name.to_string(),
            uid: id("-u"),
            gid: id("-g"),
        }
    }
}

impl Drop for UnixUser {
    fn drop(&mut self) {
        let _one_at_a_time = USER_DATABASE.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Runs `posthorn sendmail args` as `user` with `input`.
fn sendmail_as(user: &UnixUser, server: &TestServer, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_posthorn"));
    command
        .arg("sendmail")
        .env("POSTHORN_CONFIG", server.config_path())
        .uid(user.uid)
        .gid(user.gid);
    common::run_command(command, args, input)
}

/// Lets other users reach the server's configuration and socket, as on a real system.
fn open_to_local_users(server: &TestServer) {
    for dir in [server.root.clone(), server.data()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(server.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn local_users_send_only_as_themselves() {
    let user = UnixUser::create("phtest-web");
    let server =
        server("[policy]\nlocal_send_as = { \"phtest-web\" = [\"noreply@example.com\"] }\n");
    open_to_local_users(&server);
    let own = format!("{}@mx.test", user.name);
    let to = ["postmaster@example.com"];

    // Someone else's envelope sender, or From header: refused (sysexits NOPERM).
    let forged = sendmail_as(
        &user,
        &server,
        &["-f", "ceo@example.com", to[0]],
        "Subject: a\n\nx\n",
    );
    assert_eq!(forged.status.code(), Some(77), "{forged:?}");
    let forged = sendmail_as(
        &user,
        &server,
        &["-f", &own, to[0]],
        "From: ceo@example.com\nSubject: b\n\nx\n",
    );
    assert_eq!(forged.status.code(), Some(77), "{forged:?}");

    // Its own address, and what local_send_as gives it.
    let sent = sendmail_as(&user, &server, &[to[0]], "Subject: own\n\nx\n");
    assert!(sent.status.success(), "{sent:?}");
    let sent = sendmail_as(
        &user,
        &server,
        &["-f", "noreply@example.com", to[0]],
        "From: noreply@example.com\nSubject: allowed\n\nx\n",
    );
    assert!(sent.status.success(), "{sent:?}");
    let text = delivered(&server, 2, "own");
    let expected = format!("(from userid {} ({}))", user.uid, user.name);
    assert!(text.contains(&expected), "{text}");
    delivered(&server, 2, "allowed");
    assert_eq!(
        common::list_files(&server.maildir("postmaster").join("new")).len(),
        2
    );
}

#[test]
fn the_any_sender_group_may_use_any_sender() {
    let user = UnixUser::create("phtest-cron");
    let server = server("[policy]\nlocal_any_sender_group = \"phtest-cron\"\n");
    open_to_local_users(&server);
    let sent = sendmail_as(
        &user,
        &server,
        &["-f", "ceo@example.com", "postmaster@example.com"],
        "From: ceo@example.com\nSubject: any\n\nx\n",
    );
    assert!(sent.status.success(), "{sent:?}");
    delivered(&server, 1, "any");
}

#[test]
fn local_programs_count_against_the_connection_limits() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let server = server("[limits]\nmax_connections_per_ip = 2\n");
    let socket = server.data().join("sendmail.sock");
    let greeting = |stream: &UnixStream| {
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    };
    let held: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    for stream in &held {
        assert!(greeting(stream).starts_with("220 "));
    }
    let third = UnixStream::connect(&socket).unwrap();
    assert!(
        greeting(&third).starts_with("421 4.7.0"),
        "one user holds two sessions at most"
    );
    drop(held);
    server.wait_for_log("session");
    common::wait_until("a place is free again", || {
        let again = UnixStream::connect(&socket).unwrap();
        greeting(&again).starts_with("220 ").then_some(())
    })
    .unwrap();
}

#[test]
fn local_users_count_against_the_sending_quota() {
    let user = UnixUser::create("phtest-mailer");
    let server = server("[sending]\nmessages_per_hour = 1\n");
    open_to_local_users(&server);
    let send = || {
        sendmail_as(
            &user,
            &server,
            &["postmaster@example.com"],
            "Subject: q\n\nx\n",
        )
    };
    let first = send();
    assert!(first.status.success(), "{first:?}");
    let second = send();
    assert_eq!(second.status.code(), Some(75), "451: try later: {second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("4.7.1"),
        "{second:?}"
    );
}
