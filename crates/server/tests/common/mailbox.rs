//! Helpers shared by the POP3 and IMAP tests: listeners by role, mail for alice by SMTP,
//! the messages of a Maildir folder as they are on disk, and a raw IMAP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Options, PATIENCE, TestServer};

/// A simple message with a unique subject.
pub fn message(subject: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n"
    )
}

/// Delivers `contents` to alice by SMTP, one at a time, each waited for.
pub fn deliver_raw(server: &TestServer, contents: &[String]) {
    let mut client = server.client();
    for content in contents {
        let before = server.messages("alice").len();
        let reply = client.send_message("sender@example.org", &["alice@example.com"], content);
        assert!(reply.starts_with("250"), "delivery: {reply}");
        server.wait_for_messages("alice", before + 1);
    }
}

/// Delivers a [`message`] for each of `subjects` to alice by SMTP.
pub fn deliver(server: &TestServer, subjects: &[&str]) {
    let contents: Vec<String> = subjects.iter().map(|s| message(s)).collect();
    deliver_raw(server, &contents);
}

/// Every listener with `role`, in the order the server logged them (its config order).
/// A server for alice at example.com (`password`, and `account_keys` in her account
/// table) with one IMAP listener that takes logins in the clear.
pub fn imap_server(password: &str, account_keys: &str) -> TestServer {
    let alice = posthorn::accounts::passwords::hash(password).unwrap();
    Options::default()
        .config(&format!(
            r#"
[[listener]]
role = "imap"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{alice}"
{account_keys}
"#
        ))
        .start()
}

pub fn listeners(server: &TestServer, role: &str) -> Vec<SocketAddr> {
    let log = server.log();
    let last_start = log.rfind("--- start ---").unwrap_or(0);
    let found: Vec<SocketAddr> = log[last_start..]
        .lines()
        .filter(|l| l.contains("listening") && l.contains(&format!("role={role} ")))
        .filter_map(|l| l.split("address=").nth(1))
        .map(|a| a.trim().parse().expect("listening address"))
        .collect();
    assert!(!found.is_empty(), "no {role} listener in the log:\n{log}");
    found
}

/// The files of a Maildir folder (`cur/` and `new/`): (name, content), sorted by name.
pub fn maildir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(content) = std::fs::read(entry.path()) {
                files.push((name, content));
            }
        }
    }
    files.sort();
    files
}

pub fn subject_of(content: &[u8]) -> String {
    String::from_utf8_lossy(content)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("?")
        .trim()
        .to_string()
}

/// A raw IMAP client: exact commands out, whole responses (literals included) in.
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

/// The size of the literal a response line announces at its end (`{n}\r\n`).
fn literal_at_end(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

impl Imap {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> (Imap, String) {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut imap = Imap {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            next_tag: 1,
        };
        let greeting = imap.response();
        (imap, greeting)
    }

    /// Connects, checks the `* OK` greeting and logs alice in with `password`.
    pub fn logged_in(addr: SocketAddr, password: &str) -> Imap {
        let (mut imap, greeting) = Imap::connect(addr);
        assert!(greeting.starts_with("* OK"), "greeting: {greeting:?}");
        imap.ok(&format!("LOGIN alice \"{password}\""));
        imap
    }

    /// Waits up to `wait` for each response from now on (a command queued behind
    /// others' turns answers late).
    pub fn patience(&mut self, wait: Duration) {
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
    }

    /// The client's end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.writer.write_all(bytes.as_ref()).expect("send");
    }

    /// One response line with the literals it carries, or "" at end of stream.
    pub fn response(&mut self) -> String {
        String::from_utf8_lossy(&self.response_octets().0).into_owned()
    }

    /// One response as octets, literals included, and its literals apart.
    pub fn response_octets(&mut self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut literals = Vec::new();
        let mut text = Vec::new();
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(_) => {}
                Err(e) => panic!(
                    "reading a response after {:?}: {e}",
                    String::from_utf8_lossy(&text)
                ),
            }
            text.extend_from_slice(&line);
            match literal_at_end(&line) {
                Some(n) => {
                    let mut literal = vec![0; n];
                    self.reader.read_exact(&mut literal).expect("literal");
                    text.extend_from_slice(&literal);
                    literals.push(literal);
                }
                None => return (text, literals),
            }
        }
    }

    /// A new tag.
    pub fn tag(&mut self) -> String {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Reads responses up to and including the one tagged `tag`.
    pub fn until_tagged(&mut self, tag: &str) -> String {
        self.responses_until(tag).concat()
    }

    /// The responses up to and including the one tagged `tag`, one string each.
    fn responses_until(&mut self, tag: &str) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let response = self.response();
            assert!(
                !response.is_empty(),
                "connection closed before {tag} completed; got {all:?}"
            );
            let done = response.starts_with(&format!("{tag} "));
            all.push(response);
            if done {
                return all;
            }
        }
    }

    /// Sends a tagged command; returns every response up to the tagged one, one string
    /// each (a response's literals included).
    pub fn responses(&mut self, command: &str) -> Vec<String> {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n"));
        self.responses_until(&tag)
    }

    /// Sends a tagged command; returns every response up to the tagged one.
    pub fn command(&mut self, command: &str) -> String {
        self.responses(command).concat()
    }

    /// Sends a command and asserts its tagged status (`OK`, `NO`, `BAD`), optionally
    /// followed by a response code prefix such as `[TRYCREATE]`.
    pub fn expect(&mut self, command: &str, status: &str) -> String {
        let tag = format!("a{}", self.next_tag);
        let all = self.command(command);
        let last = all.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("{tag} {status}")),
            "{command:?}: expected {status:?}, got {all:?}"
        );
        all
    }

    pub fn ok(&mut self, command: &str) -> String {
        self.expect(command, "OK")
    }

    /// Reads lines until one satisfies `done`, with an overall `limit`; returns them all
    /// or panics with what came.
    pub fn wait_for(&mut self, limit: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut all = String::new();
        loop {
            let left = limit.saturating_sub(started.elapsed());
            assert!(!left.is_zero(), "no {what} within {limit:?}; got {all:?}");
            self.reader.get_ref().set_read_timeout(Some(left)).unwrap();
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("connection closed waiting for {what}; got {all:?}"),
                Ok(_) => {}
                Err(e) => panic!("no {what} within {limit:?} ({e}); got {all:?}"),
            }
            all.push_str(&line);
            if done(&line) {
                self.reader
                    .get_ref()
                    .set_read_timeout(Some(PATIENCE))
                    .unwrap();
                return all;
            }
        }
    }

    /// True once the server has closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }
}

/// Runs the python3 `script` with the IMAP listener's port in `PORT` and alice's password
/// `password` in `PW`, and returns what it printed; it must succeed.
pub fn python_with_imap(server: &TestServer, password: &str, script: &str) -> String {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("PORT", listeners(server, "imap")[0].port().to_string())
        .env("PW", password)
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
