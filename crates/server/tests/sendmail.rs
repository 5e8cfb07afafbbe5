//! The commands people and programs use beside the server: `posthorn sendmail` (and a
//! link named `sendmail`) injecting mail through the local socket, and `posthorn user`
//! editing the users file while the server runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

use common::{Options, PATIENCE, TestServer, run_command, wait_until};

fn server() -> TestServer {
    Options::default()
        .config(
            r#"
[[listener]]
role = "submissions"
address = "127.0.0.1:0"

[auth]
failure_delay = "10ms"
max_failures = 1000

[[domain]]
name = "example.com"

[[account]]
name = "postmaster"

[[account]]
name = "alice"

[[account]]
name = "bob"

[[account]]
name = "carol"
"#,
        )
        .start()
}

/// Runs `program args` with `input` on stdin and the test server's configuration.
fn run(program: &std::path::Path, args: &[&str], input: &str, server: &TestServer) -> Output {
    let mut command = Command::new(program);
    command.env("POSTHORN_CONFIG", server.config_path());
    run_command(command, args, input)
}

fn posthorn() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_posthorn").into()
}

#[test]
fn sendmail_t_delivers_to_to_cc_and_bcc_and_strips_bcc() {
    let server = server();
    let output = run(
        &posthorn(),
        &["sendmail", "-t"],
        "To: Alice <alice@example.com>\nCc: bob@example.com\nBcc: carol@example.com\nSubject: hi\n\nbody\n",
        &server,
    );
    assert!(output.status.success(), "{output:?}");
    for account in ["alice", "bob", "carol"] {
        let message = String::from_utf8(server.wait_for_messages(account, 1).remove(0)).unwrap();
        assert!(
            !message.contains("Bcc") && !message.contains("carol@example.com>"),
            "{message}"
        );
        assert!(message.contains("Subject: hi\r\n"), "{message}");
        assert!(
            message.ends_with("\r\n\r\nbody\r\n"),
            "LF became CRLF: {message:?}"
        );
        assert!(message.contains("\r\nFrom: "), "{message}");
        assert!(message.contains("\r\nDate: ") && message.contains("\r\nMessage-ID: <"));
    }
}

#[test]
fn a_link_named_sendmail_behaves_the_same() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(posthorn(), &link).unwrap();
    let output = run(
        &link,
        &[
            "-i",
            "-f",
            "app@example.com",
            "-F",
            "The App",
            "alice@example.com",
        ],
        "Subject: from php\n\nline\n.\nafter the dot\n",
        &server,
    );
    assert!(output.status.success(), "{output:?}");
    let message = String::from_utf8(server.wait_for_messages("alice", 1).remove(0)).unwrap();
    assert!(
        message.starts_with("Return-Path: <app@example.com>\r\n"),
        "{message}"
    );
    assert!(
        message.contains("From: \"The App\" <app@example.com>\r\n"),
        "{message}"
    );
    assert!(
        message.ends_with("line\r\n.\r\nafter the dot\r\n"),
        "-i keeps the dot: {message:?}"
    );
}

#[test]
fn sendmail_exit_codes_follow_sysexits() {
    let server = server();
    let unknown = run(
        &posthorn(),
        &["sendmail", "nobody@example.com"],
        "Subject: x\n\ny\n",
        &server,
    );
    assert_eq!(unknown.status.code(), Some(67), "{unknown:?}");
    let none = run(&posthorn(), &["sendmail"], "Subject: x\n\ny\n", &server);
    assert_eq!(none.status.code(), Some(64), "{none:?}");
    let bad = run(&posthorn(), &["sendmail", "-bs"], "", &server);
    assert_eq!(bad.status.code(), Some(64), "{bad:?}");
    let mut stopped = server;
    stopped.stop();
    let down = run(
        &posthorn(),
        &["sendmail", "alice@example.com"],
        "Subject: x\n\ny\n",
        &stopped,
    );
    assert_eq!(down.status.code(), Some(75), "{down:?}");
}

/// Tries AUTH PLAIN over implicit TLS; returns the reply.
fn try_login(server: &TestServer, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = posthorn::delivery::remote::tls::TlsClient::new(None)
        .unwrap()
        .config(false)
        .unwrap();
    let tcp = TcpStream::connect(server.listener("submissions")).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("mx.test").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut stream = BufReader::new(rustls::StreamOwned::new(connection, tcp));
    read(&mut stream);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    stream.get_mut().write_all(b"EHLO client.test\r\n").unwrap();
    read(&mut stream);
    stream
        .get_mut()
        .write_all(format!("AUTH PLAIN {token}\r\n").as_bytes())
        .unwrap();
    read(&mut stream)
}

fn read(reader: &mut impl BufRead) -> String {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return text;
        }
        text.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return text;
        }
    }
}

#[test]
fn user_commands_take_effect_without_a_restart() {
    let server = server();
    let config = server.config_path();
    let config = config.to_str().unwrap();
    let user = |args: &[&str], input: &str| {
        let mut all = vec!["user", "--config", config];
        all.extend_from_slice(args);
        run(&posthorn(), &all, input, &server)
    };
    assert!(try_login(&server, "dave", "first").starts_with("535"));
    let added = user(&["add", "dave", "--send-as", "@example.com"], "first\n");
    assert!(added.status.success(), "{added:?}");
    wait_until("the new user can log in", || {
        try_login(&server, "dave", "first")
            .starts_with("235")
            .then_some(())
    })
    .unwrap();
    assert!(try_login(&server, "dave@example.com", "first").starts_with("235"));

    let changed = user(&["passwd", "dave"], "second\n");
    assert!(changed.status.success(), "{changed:?}");
    wait_until("the new password works", || {
        try_login(&server, "dave", "second")
            .starts_with("235")
            .then_some(())
    })
    .unwrap();
    assert!(try_login(&server, "dave", "first").starts_with("535"));

    // A configured account gets a password the same way.
    assert!(user(&["passwd", "alice"], "alice-pw\n").status.success());
    wait_until("alice can log in", || {
        try_login(&server, "alice", "alice-pw")
            .starts_with("235")
            .then_some(())
    })
    .unwrap();

    let listed = user(&["list"], "");
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listing.contains("dave") && listing.contains("@example.com"),
        "{listing}"
    );
    assert!(
        !listing.contains("argon2"),
        "hashes stay out of listings: {listing}"
    );
    let file = std::fs::read_to_string(server.data().join("users.toml")).unwrap();
    assert!(
        file.contains("$argon2id$") && !file.contains("second"),
        "{file}"
    );

    let taken = user(&["add", "dave"], "x\n");
    assert!(!taken.status.success());
    let foreign = user(&["add", "eve", "--address", "eve@elsewhere.example"], "x\n");
    assert!(!foreign.status.success(), "{foreign:?}");

    assert!(user(&["del", "dave"], "").status.success());
    wait_until("the removed user cannot log in", || {
        try_login(&server, "dave", "second")
            .starts_with("535")
            .then_some(())
    })
    .unwrap();
}

/// `posthorn args...` with `input` on stdin, outside any test server.
fn posthorn_with(args: &[&str], input: &str) -> Output {
    run_command(Command::new(posthorn()), args, input)
}

#[test]
fn an_alias_may_lead_to_an_account_of_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let auth = format!("[auth]\nusers_file = \"{}\"\n", users.display());
    let with_aliases = |name: &str, aliases: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{auth}\n[aliases]\n{aliases}")).unwrap();
        path
    };
    let team = "\"team@localhost\" = [\"dave@localhost\"]\n";
    let config = with_aliases("team.toml", team);
    let config = config.to_str().unwrap();
    let before = posthorn_with(&["check-config", config], "");
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("dave@localhost is neither"),
        "dave does not exist yet: {before:?}"
    );

    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, &auth).unwrap();
    let added = posthorn_with(
        &["user", "--config", plain.to_str().unwrap(), "add", "dave"],
        "pw\n",
    );
    assert!(added.status.success(), "{added:?}");
    let checked = posthorn_with(&["check-config", config], "");
    assert!(checked.status.success(), "{checked:?}");

    // An alias to a local nobody is still refused, at its key and line.
    let ghost = with_aliases(
        "ghost.toml",
        &format!("{team}\"ghost@localhost\" = [\"nobody@localhost\"]\n"),
    );
    let refused = posthorn_with(&["check-config", ghost.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("line 6: key `aliases.\"ghost@localhost\"`")
            && stderr.contains("nobody@localhost is neither an account address nor an alias"),
        "{stderr}"
    );

    // Removing dave now would leave the alias leading nowhere.
    let removed = posthorn_with(&["user", "--config", config, "del", "dave"], "");
    assert!(
        !removed.status.success()
            && String::from_utf8_lossy(&removed.stderr).contains("aliases.\"team@localhost\""),
        "{removed:?}"
    );

    let server = Options::default()
        .config(&format!("{auth}\n[aliases]\n{team}"))
        .start();
    let mut client = server.client();
    let reply = client.send_message(
        "sender@example.com",
        &["team@localhost"],
        "Subject: team\r\n\r\nfor dave\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let message = server.wait_for_messages("dave", 1).remove(0);
    assert!(message.ends_with(b"for dave\r\n"));
}

#[test]
fn concurrent_user_adds_keep_every_user() {
    const USERS: usize = 20;
    let server = server();
    let config = server.config_path();
    let mut children: Vec<_> = (0..USERS)
        .map(|i| {
            Command::new(posthorn())
                .args(["user", "--config"])
                .arg(&config)
                .args(["add", &format!("user{i}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("command starts")
        })
        .collect();
    // Every command is running before any gets its password: they edit at once.
    for child in &mut children {
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let listed = run(
        &posthorn(),
        &["user", "--config", config.to_str().unwrap(), "list"],
        "",
        &server,
    );
    let listing = String::from_utf8_lossy(&listed.stdout);
    let missing: Vec<String> = (0..USERS)
        .map(|i| format!("user{i}\t"))
        .filter(|name| !listing.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "lost edits: {missing:?}\n{listing}");
    let stray: Vec<String> = common::list_files(&server.data())
        .into_iter()
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn config_and_json_are_accepted_before_or_after_the_subcommand() {
    let server = server();
    let config = server.config_path();
    let config = config.to_str().unwrap();
    let changed = posthorn_with(&["user", "passwd", "alice", "--config", config], "pw\n");
    assert!(changed.status.success(), "{changed:?}");
    assert_eq!(
        String::from_utf8_lossy(&changed.stdout),
        "password changed for alice\n"
    );
    let listed = posthorn_with(&["--json", "user", "list", "-c", config], "");
    assert!(listed.status.success(), "{listed:?}");
    let users: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(users[1]["name"], "alice");
    assert_eq!(users[1]["password"], true);
    for args in [
        ["queue", "list", "--json", "-c", config],
        ["queue", "--json", "-c", config, "list"],
        ["-c", config, "--json", "queue", "list"],
    ] {
        let queue = posthorn_with(&args, "");
        assert!(queue.status.success(), "{args:?}: {queue:?}");
        let answer: serde_json::Value = serde_json::from_slice(&queue.stdout).unwrap();
        assert_eq!(answer["ok"], true, "{args:?}");
    }
    let checked = posthorn_with(&["check-config", "--config", config], "");
    assert!(checked.status.success(), "{checked:?}");
    // Before `sendmail`, --config is posthorn's; after it, sendmail's flags rule (-C).
    let sent = posthorn_with(
        &["--config", config, "sendmail", "bob@example.com"],
        "Subject: via --config\n\nbody\n",
    );
    assert!(sent.status.success(), "{sent:?}");
    server.wait_for_messages("bob", 1);
    let pointless = posthorn_with(&["dns-records", "example.com", "--json"], "");
    assert_eq!(pointless.status.code(), Some(64), "{pointless:?}");
}

#[test]
fn sendmail_help_prints_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(posthorn(), &link).unwrap();
    for output in [
        posthorn_with(&["sendmail", "--help"], ""),
        run_command(Command::new(&link), &["--help"], ""),
    ] {
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let usage = String::from_utf8_lossy(&output.stdout);
        assert!(
            usage.starts_with("usage: posthorn sendmail [-t] [-i]") && usage.contains("-C FILE"),
            "{usage}"
        );
    }
}

#[test]
fn user_list_shows_every_account_with_its_addresses_send_as_and_quota() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("posthorn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n\n[[domain]]\nname = \"example.com\"\n\n\
             [[domain]]\nname = \"example.org\"\n\n[[account]]\nname = \"alice\"\n\
             quota = \"2GiB\"\nsend_as = [\"@example.com\"]\n\n[[account]]\nname = \"bob\"\n\
             addresses = [\"robert@example.com\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let added = posthorn_with(
        &[
            "user",
            "add",
            "dave",
            "--address",
            "dave@example.org",
            "--quota",
            "10MiB",
            "-c",
            config,
        ],
        "pw\n",
    );
    assert!(added.status.success(), "{added:?}");
    assert!(
        posthorn_with(&["user", "passwd", "alice", "-c", config], "pw\n")
            .status
            .success()
    );

    let listed = posthorn_with(&["user", "list", "-c", config], "");
    assert!(listed.status.success(), "{listed:?}");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "alice\tconfig + users file\taddresses: alice@example.com, alice@example.org\t\
         send as: @example.com\tquota: 2GiB\tpassword: set\n\
         bob\tconfig\taddresses: robert@example.com\tsend as: robert@example.com\t\
         quota: (none)\tpassword: none\n\
         dave\tusers file\taddresses: dave@example.org\tsend as: dave@example.org\t\
         quota: 10MiB\tpassword: set\n"
    );
    let json = posthorn_with(&["user", "list", "--json", "-c", config], "");
    let users: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(users.as_array().map(Vec::len), Some(3), "{users}");
    assert_eq!(users[2]["source"], "users file");
    assert_eq!(users[2]["quota"], 10 << 20);
    assert_eq!(users[0]["addresses"][1], "alice@example.org");
}
