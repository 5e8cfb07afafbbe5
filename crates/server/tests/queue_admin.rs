//! `posthorn queue ...` against the running server: listing, holding, releasing, flushing,
//! deleting and bouncing queued mail, and the errors an operator sees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::sink::Sink;
use common::{Options, TestServer, queue_id, wait_until};

/// A server whose `fwd@localhost` forwards to `user@down.test`, routed to `port`, with an
/// hour between attempts so nothing is retried behind the test's back.
fn server(port: u16) -> TestServer {
    Options::default()
        .config(&format!(
            "[queue]\nretry_schedule = [\"1h\"]\n\n[delivery]\nconnect_timeout = \"2s\"\n\
             command_timeout = \"2s\"\n\n[[route]]\ndomain = \"down.test\"\nhost = \"[127.0.0.1]:{port}\"\n\n\
             [aliases]\n\"fwd@localhost\" = [\"user@down.test\"]\n"
        ))
        .start()
}

fn cli(server: &TestServer, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .arg("queue")
        .arg("--config")
        .arg(server.config_path())
        .args(args)
        .output()
        .expect("run posthorn queue")
}

/// Runs `posthorn queue args` and asserts it succeeded. A message whose attempt is being
/// written back (its state file already shows the attempt) is "being delivered; try again
/// in a moment": the command is tried again, as the operator is told to.
fn ok(server: &TestServer, args: &[&str]) -> String {
    let output = wait_until("the message to be back from delivery", || {
        let output = cli(server, args);
        let busy = String::from_utf8_lossy(&output.stderr).contains("try again in a moment");
        (!busy).then_some(output)
    })
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "posthorn queue {args:?}: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Sends a message that cannot be delivered yet; returns its queue id once its first
/// attempt is recorded.
fn queue_one(server: &TestServer, subject: &str) -> String {
    let mut client = server.client();
    let reply = client.send_message(
        "postmaster@localhost",
        &["fwd@localhost"],
        &format!("Subject: {subject}\r\n\r\nbody\r\n"),
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let id = queue_id(&reply);
    server.wait_for_log(&format!(
        "queue_id={id} recipient=user@down.test result=\"deferred\""
    ));
    wait_until("the recorded attempt", || {
        ok(server, &["list"]).contains("attempts 1").then_some(())
    })
    .unwrap();
    id
}

#[test]
fn list_and_show_describe_the_queue() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = server(port);
    let id = queue_one(&server, "listed");
    let list = ok(&server, &["list"]);
    assert!(list.contains(&id), "{list}");
    assert!(list.contains("postmaster@localhost"), "{list}");
    assert!(
        list.contains("user@down.test  deferred (attempts 1, next attempt"),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "4.4.1 cannot connect: Connection refused (os error 111) (server 127.0.0.1:{port})"
        )),
        "{list}"
    );
    assert!(
        list.ends_with("-- 1 message(s), 0 recipient(s) queued, 1 deferred\n"),
        "{list}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(&server, &["--json", "list"])).unwrap();
    assert_eq!(json["messages"][0]["id"], id.as_str());
    assert_eq!(json["messages"][0]["recipients"][0]["status"], "deferred");

    let show = ok(&server, &["show", &id]);
    assert!(show.contains("Subject: listed"), "{show}");
    assert!(show.contains(&format!("with ESMTP id {id}")), "{show}");
}

#[test]
fn hold_release_and_flush() {
    let sink = Sink::builder().greeting("421 4.3.2 not today").start();
    let server = server(sink.addr.port());
    let id = queue_one(&server, "held");
    // The diagnostic names the server that gave the reply, in the log and the listing.
    let diagnostic = format!(
        "greeting refused: 421 4.3.2 not today (reply from 127.0.0.1:{})",
        sink.addr.port()
    );
    assert!(ok(&server, &["list"]).contains(&diagnostic));
    server.wait_for_log(&format!(
        "result=\"deferred\" attempt=1 detail=\"{diagnostic}\""
    ));
    sink.reconfigure(|b| b.greeting("220 mx.down.test ESMTP"));

    assert!(ok(&server, &["hold", &id]).contains("held"));
    server.wait_for_log(&format!("admin command command=hold {id}\n"));
    assert!(ok(&server, &["list"]).contains("(held)"));
    // A held message is not flushed. Just after the hold it may still be finishing its
    // write-back ("being delivered now"); once back, the manager says it is held.
    let refused = wait_until("the held message back from its write-back", || {
        let output = cli(&server, &["flush", &id]);
        (!output.status.success()).then_some(output)
    })
    .unwrap();
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains(&format!(
            "{id} is not waiting for delivery (held, or not in the queue)"
        )),
        "{why}"
    );
    // The manager's account of the flush: nothing was scheduled, now or later.
    let flushed = ok(&server, &["flush"]);
    assert!(
        flushed.contains(
            "0 message(s) scheduled for delivery now, 0 more once their current attempt is over"
        ),
        "{flushed}"
    );
    assert!(sink.messages().is_empty(), "a held message was delivered");

    assert!(ok(&server, &["release", &id]).contains("released"));
    let messages = sink.wait_for_messages(1);
    assert!(messages[0].text().contains("Subject: held"));
    server.wait_for_empty_queue();
    let second = cli(&server, &["release", &id]);
    assert!(!second.status.success(), "releasing what is gone must fail");
}

#[test]
fn flush_retries_now() {
    let sink = Sink::builder().greeting("421 4.3.2 not today").start();
    let server = server(sink.addr.port());
    queue_one(&server, "flushed");
    sink.reconfigure(|b| b.greeting("220 mx.down.test ESMTP"));
    ok(&server, &["flush"]);
    let messages = sink.wait_for_messages(1);
    assert!(messages[0].text().contains("Subject: flushed"));
    server.wait_for_empty_queue();
}

#[test]
fn delete_bounces_unless_silent_and_bounce_returns() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = server(port);
    let silent = queue_one(&server, "silently deleted");
    assert!(ok(&server, &["delete", "--silent", &silent]).contains("no notice sent"));
    // A notice enters the spool before the message that owes it leaves, and leaves only
    // once delivered: with the spool empty, any notice would be in the Maildir already.
    server.wait_for_empty_queue();
    assert!(
        server.messages("postmaster").is_empty(),
        "--silent must not bounce"
    );

    let deleted = queue_one(&server, "deleted");
    assert!(ok(&server, &["delete", &deleted]).contains("sender notified"));
    let notices = server.wait_for_messages("postmaster", 1);
    let text = String::from_utf8_lossy(&notices[0]);
    assert!(
        text.contains("Action: failed") && text.contains("Status: 5.0.0"),
        "{text}"
    );
    assert!(text.contains("deleted by the mail administrator"), "{text}");

    let bounced = queue_one(&server, "bounced");
    ok(&server, &["bounce", &bounced]);
    let notices = server.wait_for_messages("postmaster", 2);
    assert!(notices.iter().any(|n| {
        String::from_utf8_lossy(n).contains("returned to the sender by the mail administrator")
    }));
    server.wait_for_empty_queue();
}

#[test]
fn errors_are_clear() {
    let server = TestServer::start();
    let output = cli(&server, &["show", "../../etc/passwd"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a queue id"));
    let output = cli(&server, &["hold", "0000000000000000"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not in the queue"),
        "{output:?}"
    );

    let socket = server.data().join("admin.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "only the server's owner may use the admin socket"
    );
    let staging: Vec<_> = std::fs::read_dir(server.data())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".admin.sock"))
        .collect();
    assert!(
        staging.is_empty(),
        "the private folder the socket is bound in is removed: {staging:?}"
    );

    let mut stopped = server;
    assert!(stopped.stop().success());
    let output = cli(&stopped, &["list"]);
    assert_eq!(output.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&output.stderr).contains("posthorn is not running"));
}

#[test]
fn a_second_server_on_the_same_data_folder_refuses_to_start() {
    let server = TestServer::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(["serve", "--config"])
        .arg(server.config_path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(70));
    assert!(String::from_utf8_lossy(&output.stderr).contains("another posthorn is running"));
    // The first one still works.
    assert!(server.client().command("NOOP").starts_with("250"));
}

#[test]
fn started_means_every_socket_is_ready() {
    // TestServer::start returns as soon as "posthorn started" is logged.
    let server = TestServer::start();
    let listed = cli(&server, &["list"]);
    assert!(listed.status.success(), "{listed:?}\n{}", server.log());
    let log = server.log();
    let started = log.find("posthorn started").expect("started");
    for ready in ["listening", "admin socket ready", "sendmail socket ready"] {
        let at = log
            .find(ready)
            .unwrap_or_else(|| panic!("no {ready:?}:\n{log}"));
        assert!(at < started, "{ready:?} after \"posthorn started\":\n{log}");
    }
}
