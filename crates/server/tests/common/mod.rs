//! Test harness: the real `posthorn` binary on an ephemeral loopback port with its own data
//! folder, its log captured, and a raw SMTP client for conversations byte by byte.
#![allow(dead_code)]

pub mod dns;
pub mod mailbox;
pub mod sink;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use posthorn_testkit::{PATIENCE, wait_until};

/// Builds the configuration of a test server.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra keys for the `[server]` table.
    pub server: String,
    /// Extra tables appended to the file (domains, accounts, limits...).
    pub config: String,
    /// A command the binary runs under (e.g. `strace ... -o FILE`), given the binary and
    /// its arguments after its own.
    pub wrapper: Vec<String>,
}

impl Options {
    /// Extra `[server]` keys.
    pub fn server(mut self, keys: &str) -> Self {
        self.server.push_str(keys);
        self.server.push('\n');
        self
    }

    /// Extra tables.
    pub fn config(mut self, tables: &str) -> Self {
        self.config.push_str(tables);
        self.config.push('\n');
        self
    }

    /// Runs the binary under `command` (its program and arguments); the binary's path and
    /// arguments follow them.
    pub fn wrapped(mut self, command: &[&str]) -> Self {
        self.wrapper = command.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Starts a server in a new temporary folder.
    pub fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let mut server = TestServer {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            root,
            _dir: Some(dir),
            log: Arc::new(Mutex::new(String::new())),
            log_readers: Arc::new(AtomicUsize::new(0)),
            options: self,
        };
        server.launch();
        server
    }
}

/// A running `posthorn serve`.
pub struct TestServer {
    child: Option<Child>,
    /// The mx listener.
    pub addr: SocketAddr,
    /// Holds `posthorn.toml` and `data/`.
    pub root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    log: Arc<Mutex<String>>,
    /// Threads still reading a run's log: none once every run's stderr is at its end.
    log_readers: Arc<AtomicUsize>,
    options: Options,
}

impl TestServer {
    /// A server on the defaults but for its folder and port.
    pub fn start() -> TestServer {
        Options::default().start()
    }

    /// The configuration file the server runs with.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("posthorn.toml")
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The server's process id: our child's, or under a wrapper the process it started
    /// the binary in (signals and memory figures are about the server, not the wrapper).
    pub fn pid(&self) -> u32 {
        let child = self.child.as_ref().expect("server running").id();
        if self.options.wrapper.is_empty() {
            return child;
        }
        wait_until("the wrapped server process", || wrapped_server(child))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// The server's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.memory_field("VmRSS:")
    }

    /// The server's highest resident memory since it started, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.memory_field("VmHWM:")
    }

    /// Waits up to a minute for the server's resident memory to come back within twice
    /// `idle_kib` (its size before a burst of load) and returns it; panics if it does not.
    pub fn wait_for_memory_back(&self, idle_kib: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.rss_kib();
            if now <= 2 * idle_kib {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "memory {now} KiB a minute after load (idle {idle_kib} KiB)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A `/proc/PID/status` line in kB.
    fn memory_field(&self, name: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("memory figure of the server process")
    }

    /// The address of the (first) listener with `role`, as the server logged it at its
    /// latest start.
    pub fn listener(&self, role: &str) -> SocketAddr {
        let log = self.log();
        let last_start = log.rfind("--- start ---").unwrap_or(0);
        log[last_start..]
            .lines()
            .filter(|l| l.contains("listening") && l.contains(&format!("role={role} ")))
            .find_map(|l| l.split("address=").nth(1))
            .unwrap_or_else(|| panic!("no {role} listener in the log:\n{log}"))
            .trim()
            .parse()
            .expect("listening address")
    }

    fn launch(&mut self) {
        let config = format!(
            "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n{}\n[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:0\"\n\n{}",
            self.data().display(),
            self.options.server,
            self.options.config
        );
        std::fs::write(self.config_path(), config).expect("write config");
        let binary = env!("CARGO_BIN_EXE_posthorn");
        let mut command = match self.options.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start posthorn {:?}: {e}", self.options.wrapper));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::clone(&self.log);
        log.lock().unwrap().push_str("--- start ---\n");
        let readers = Arc::clone(&self.log_readers);
        readers.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
            readers.fetch_sub(1, Ordering::SeqCst);
        });
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let log = self.log();
            let last_start = log.rfind("--- start ---").unwrap_or(0);
            // Every listener is logged before "posthorn started": wait for all of them.
            let started_up = log[last_start..].contains("posthorn started");
            if let Some(address) = log[last_start..]
                .lines()
                .filter(|l| started_up && l.contains("listening"))
                .find_map(|l| l.split("address=").nth(1))
            {
                self.addr = address.trim().parse().expect("listening address");
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("posthorn exited with {status} at start:\n{log}");
            }
            assert!(
                started.elapsed() < PATIENCE,
                "posthorn did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same folder (after `kill9` or `stop`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server still running");
        self.launch();
    }

    /// SIGKILL: the crash the spool must survive. Under a wrapper the server is killed
    /// first, then the wrapper.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            if !self.options.wrapper.is_empty()
                && let Some(server) = wrapped_server(child.id())
            {
                signal(server, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM to the server, then waits for our child (the server, or its wrapper) to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.pid();
        let mut child = self.child.take().expect("server running");
        signal(pid, rustix::process::Signal::TERM);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                panic!("posthorn did not stop:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Every line the server has logged so far, for assertions about what was (or was not)
    /// logged: lines reach the test through the server's writer thread and a pipe, so one
    /// logged just before something the test saw happen may not be in `log()` yet. A
    /// running server is given a session of its own, whose HELO name is used once, and its
    /// "session" line is waited for: the log is one ordered stream, so every line logged
    /// before that one has arrived. A stopped server's log is whole once its pipe is at
    /// its end.
    pub fn settled_log(&self) -> String {
        if self.child.is_none() {
            wait_until("the end of the server's log", || {
                (self.log_readers.load(Ordering::SeqCst) == 0).then_some(())
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
            return self.log();
        }
        static BARRIERS: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "log-barrier-{}.test",
            BARRIERS.fetch_add(1, Ordering::SeqCst)
        );
        let mut client = Client::greeted(self.addr);
        client.expect(&format!("HELO {name}"), "250 ");
        client.expect("QUIT", "221 ");
        self.wait_for_log(&format!("helo=\"{name}\" "));
        self.log()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        wait_until(&format!("log line {needle:?}"), || {
            self.log().contains(needle).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
    }

    /// The Maildir of an account.
    pub fn maildir(&self, account: &str) -> PathBuf {
        self.data().join("mail").join(account)
    }

    /// Every message in an account's Maildir (`new/` and `cur/`), sorted by file name.
    pub fn messages(&self, account: &str) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir(account).join(sub)) {
                files.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits until an account has `count` messages and returns them.
    pub fn wait_for_messages(&self, account: &str, count: usize) -> Vec<Vec<u8>> {
        wait_until(&format!("{count} messages for {account}"), || {
            let messages = self.messages(account);
            (messages.len() >= count).then_some(messages)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// Names of committed files in the spool (messages and state files).
    pub fn queue_files(&self) -> Vec<String> {
        // The spool's pool files (`.pool-N`, `.pool-of-ID`) hold no message until one is
        // committed.
        let mut files = list_files(&self.data().join("queue"));
        files.retain(|name| !name.starts_with(".pool-"));
        files
    }

    /// Queue ids of the messages committed to the spool (their state files left out).
    pub fn queued_messages(&self) -> Vec<String> {
        self.queue_files()
            .into_iter()
            .filter(|name| !name.ends_with(".state"))
            .collect()
    }

    /// Octets written so far of the messages the server is receiving into its spool now,
    /// seen through the server's open descriptors: pool files (`queue/.pool-N`, or
    /// `queue/.pool-of-ID` recycled) that have been written to, and unnamed files
    /// (`O_TMPFILE`) in `queue/`. A message is written in order, so its descriptor's
    /// position says how much; the pool keeps its ready files open at position 0 (a
    /// recycled one still as long as the message it held).
    pub fn spool_files_in_progress(&self) -> Vec<u64> {
        let queue = self.data().join("queue");
        let descriptors = PathBuf::from(format!("/proc/{}/fd", self.pid()));
        let Ok(entries) = std::fs::read_dir(&descriptors) else {
            return Vec::new();
        };
        let (pooled, unnamed) = (
            format!("{}/.pool-", queue.display()),
            format!("{}/#", queue.display()),
        );
        entries
            .flatten()
            .filter_map(|entry| {
                let target = std::fs::read_link(entry.path()).ok()?;
                let target = target.to_string_lossy();
                let spool = target.starts_with(&pooled)
                    || (target.starts_with(&unnamed) && target.ends_with(" (deleted)"));
                let info = format!(
                    "/proc/{}/fdinfo/{}",
                    self.pid(),
                    entry.file_name().to_str()?
                );
                let position = std::fs::read_to_string(info)
                    .ok()?
                    .lines()
                    .find_map(|line| line.strip_prefix("pos:")?.trim().parse::<u64>().ok())?;
                (spool && (position > 0 || target.starts_with(&unnamed))).then_some(position)
            })
            .collect()
    }

    /// Waits until the spool holds no committed message.
    pub fn wait_for_empty_queue(&self) {
        wait_until("an empty queue", || {
            self.queue_files().is_empty().then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", self.queue_files(), self.log()));
    }

    /// A raw client connected to the mx listener, greeting read.
    pub fn client(&self) -> Client {
        let mut client = Client::connect(self.addr);
        let greeting = client.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The child of process `parent` that runs our binary (by its name in `/proc`), if any.
fn wrapped_server(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let (head, tail) = stat.rsplit_once(") ")?;
        let ppid: u32 = tail.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && head.ends_with("(posthorn")).then_some(pid)
    })
}

/// Files (not folders) directly in `dir`.
pub fn list_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A raw SMTP client: exact bytes out, whole replies in.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and reads the 220 greeting.
    pub fn greeted(addr: SocketAddr) -> Client {
        let mut client = Client::connect(addr);
        let greeting = client.reply();
        assert!(
            greeting.starts_with("220 "),
            "greeting from {addr}: {greeting:?}"
        );
        client
    }

    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Waits up to `wait` for each reply from now on (a loaded server's final reply to a
    /// large message may take longer than `PATIENCE`).
    pub fn patience(&mut self, wait: Duration) {
        self.writer.set_read_timeout(Some(wait)).unwrap();
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.writer.write_all(bytes.as_ref()).expect("send");
    }

    /// Reads one whole reply (all its lines), or "" if the server closed the connection.
    pub fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return reply,
                Ok(_) => {}
                Err(e) => panic!("reading reply after {reply:?}: {e}"),
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Sends `line` with CRLF and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n"));
        self.reply()
    }

    /// Sends `line` and asserts the reply starts with `expected` (e.g. "250 2.1.5").
    pub fn expect(&mut self, line: &str, expected: &str) -> String {
        let reply = self.command(line);
        assert!(
            reply.starts_with(expected),
            "{line:?}: expected {expected:?}, got {reply:?}"
        );
        reply
    }

    /// True once the server has closed the connection (reads to end of stream).
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }

    /// EHLO, MAIL, RCPT for each recipient, DATA with `content` (dot-stuffed here), and the
    /// final reply.
    pub fn send_message(&mut self, from: &str, to: &[&str], content: &str) -> String {
        self.expect("EHLO client.test", "250");
        self.expect(&format!("MAIL FROM:<{from}>"), "250 2.1.0");
        for rcpt in to {
            self.expect(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5");
        }
        self.expect("DATA", "354");
        let mut stuffed = String::new();
        for line in content.split_inclusive("\r\n") {
            if line.starts_with('.') {
                stuffed.push('.');
            }
            stuffed.push_str(line);
        }
        self.send(stuffed);
        self.command(".")
    }
}

/// The queue id from a `250 2.0.0 OK queued as ID` reply.
pub fn queue_id(reply: &str) -> String {
    reply
        .trim_end()
        .rsplit(' ')
        .next()
        .expect("queue id")
        .to_string()
}

/// Splits a delivered message at the first empty line: (headers, body).
pub fn split_message(message: &[u8]) -> (String, Vec<u8>) {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header/body separator");
    (
        String::from_utf8_lossy(&message[..at + 2]).into_owned(),
        message[at + 4..].to_vec(),
    )
}

/// Runs `command args` with `input` on stdin; its output once it has exited.
pub fn run_command(mut command: Command, args: &[&str], input: &str) -> std::process::Output {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `header` (header lines ending in CRLF) without the checking stage's verdict fields
/// (`X-Spam-*`, `X-Posthorn-Checks`, with their continuation lines): for tests about
/// the other fields we add.
pub fn without_verdict(header: &str) -> String {
    let mut kept = String::new();
    let mut skipping = false;
    for line in header.split_inclusive("\r\n") {
        if !line.starts_with([' ', '\t']) {
            skipping = line.starts_with("X-Spam-") || line.starts_with("X-Posthorn-Checks:");
        }
        if !skipping {
            kept.push_str(line);
        }
    }
    kept
}

/// Asserts that `sender` is `original` rewritten by the Sender Rewriting Scheme for
/// `domain` (`SRS0=hash=time=original-domain=original-local@domain`).
pub fn assert_rewritten(sender: &str, original: &str, domain: &str) {
    let (local, original_domain) = original.rsplit_once('@').expect("an address");
    assert!(
        sender.starts_with("SRS0=")
            && sender.ends_with(&format!("={original_domain}={local}@{domain}")),
        "{sender} is not {original} rewritten for {domain}"
    );
}

/// Now as a `Date` field writes it (RFC 5322 §3.3), so a test message never ages into
/// a content check's "date in the past".
pub fn date_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    mail_parser::DateTime::from_timestamp(now).to_rfc822()
}

/// Sends `signal` to process `pid`; panics if it cannot (the test would be meaningless).
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a process id");
    rustix::process::kill_process(pid, signal).expect("kill(2)");
}
