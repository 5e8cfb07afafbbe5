//! SMTP conversations written as scripts, one scenario per file in `tests/data/dialogs/`
//! (the format is described in the README there), each played against its own real server
//! on a loopback port. A script says what a client sends and what the server must answer,
//! line by line, and what must (or must not) have reached the Maildirs and the spool; a
//! mismatch is reported with the script's file and line. Scenarios that need more than a
//! conversation (timing, memory, files prepared beforehand, concurrency) stay in Rust, in
//! `hostile.rs` and `receive.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Options, PATIENCE, TestServer, wait_until};

/// One step of a script.
#[derive(Debug)]
enum Step {
    /// `NAME connect`: opens a connection to the mx listener.
    Connect(String),
    /// `NAME -> TEXT` (CRLF appended) or `NAME => TEXT` (as is).
    Send(String, Vec<u8>),
    /// `NAME <- TEXT` (`exact`) or `NAME <~ TEXT`: the next reply line.
    Line {
        conn: String,
        text: Vec<u8>,
        exact: bool,
    },
    /// `NAME <* [TEXT]`: the rest of the current reply; one of its lines is TEXT.
    Rest(String, Vec<u8>),
    /// `NAME closed`: the server closes the connection with nothing more to read.
    Closed(String),
    /// `NAME close`: the client closes the connection.
    Close(String),
    /// `spool empty`: no message in the spool and none being received.
    SpoolEmpty,
    /// `maildir ACCOUNT ...`, checked once the spool is empty.
    Maildir(String, MaildirCheck),
}

/// What a `maildir` line checks.
#[derive(Debug)]
enum MaildirCheck {
    Count(usize),
    Starts(Vec<u8>),
    Ends(Vec<u8>),
    Has(Vec<u8>),
}

/// A parsed script: the server's extra configuration and the numbered steps.
struct Script {
    config: String,
    steps: Vec<(usize, String, Step)>,
}

/// The scripts in the dialogs folder, sorted.
fn script_paths() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dialogs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "dialog"))
        .collect();
    paths.sort();
    paths
}

fn parse(text: &str) -> Result<Script, (usize, String)> {
    let mut script = Script {
        config: String::new(),
        steps: Vec::new(),
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        if word == "config" {
            if !script.steps.is_empty() {
                return Err((number, "config lines come before the first step".into()));
            }
            script.config.push_str(rest);
            script.config.push('\n');
            continue;
        }
        let step = parse_step(word, rest).map_err(|e| (number, e))?;
        script.steps.push((number, line.to_string(), step));
    }
    if script.steps.is_empty() {
        return Err((0, "no steps".into()));
    }
    Ok(script)
}

fn parse_step(word: &str, rest: &str) -> Result<Step, String> {
    match word {
        "spool" if rest == "empty" => return Ok(Step::SpoolEmpty),
        "spool" => return Err(format!("unknown spool check {rest:?}")),
        "maildir" => {
            let mut parts = rest.splitn(3, ' ');
            let (Some(account), Some(check)) = (parts.next(), parts.next()) else {
                return Err("maildir ACCOUNT count|starts|ends|has ...".into());
            };
            let argument = parts.next().unwrap_or("");
            let check = match check {
                "count" => MaildirCheck::Count(
                    argument
                        .parse()
                        .map_err(|_| format!("not a count: {argument:?}"))?,
                ),
                "starts" => MaildirCheck::Starts(unescape(argument)?),
                "ends" => MaildirCheck::Ends(unescape(argument)?),
                "has" => MaildirCheck::Has(unescape(argument)?),
                _ => return Err(format!("unknown maildir check {check:?}")),
            };
            return Ok(Step::Maildir(account.to_string(), check));
        }
        _ => {}
    }
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("not a connection name: {word:?}"));
    }
    let conn = word.to_string();
    let (op, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Ok(match op {
        "connect" | "closed" | "close" if !text.is_empty() => {
            return Err(format!("nothing may follow {op:?}"));
        }
        "connect" => Step::Connect(conn),
        "closed" => Step::Closed(conn),
        "close" => Step::Close(conn),
        "->" => {
            let mut bytes = unescape(text)?;
            bytes.extend_from_slice(b"\r\n");
            Step::Send(conn, bytes)
        }
        "=>" => Step::Send(conn, unescape(text)?),
        "<-" | "<~" => Step::Line {
            conn,
            text: unescape(text)?,
            exact: op == "<-",
        },
        "<*" => Step::Rest(conn, unescape(text)?),
        _ => return Err(format!("unknown operation {op:?}")),
    })
}

/// Decodes `\r`, `\n`, `\t`, `\\`, `\{`, `\}` and `\xHH`, and expands `{N*TEXT}` to TEXT
/// (itself decoded, so repeats nest) N times.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let escaped = *bytes.get(i + 1).ok_or("a lone \\ at the end")?;
                i += 2;
                match escaped {
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'\\' | b'{' | b'}' => out.push(escaped),
                    b'x' => {
                        let hex = text.get(i..i + 2).ok_or("\\x needs two hex digits")?;
                        let value = u8::from_str_radix(hex, 16)
                            .map_err(|_| format!("\\x{hex} is not hexadecimal"))?;
                        out.push(value);
                        i += 2;
                    }
                    other => return Err(format!("unknown escape \\{}", other as char)),
                }
            }
            b'{' => {
                let close = matching_brace(bytes, i)?;
                let inner = &text[i + 1..close];
                let (count, body) = inner
                    .split_once('*')
                    .ok_or_else(|| format!("{{{inner}}} is not {{N*TEXT}}"))?;
                let count: usize = count
                    .parse()
                    .map_err(|_| format!("{{{inner}}}: {count:?} is not a count"))?;
                out.extend(unescape(body)?.repeat(count));
                i = close + 1;
            }
            b'}' => return Err("a } without its {".into()),
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing the `{` at `open`.
fn matching_brace(bytes: &[u8], open: usize) -> Result<usize, String> {
    let mut depth = 0;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err("a { without its }".into())
}

/// Bytes as they would be written in a script.
fn shown(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &b in bytes {
        match b {
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            b'\t' => text.push_str("\\t"),
            b'\\' => text.push_str("\\\\"),
            b' '..=b'~' => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
    }
    text
}

/// A client connection of a script, and the reply it is reading.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The lines of the current (or last) reply, without CRLF.
    reply: Vec<Vec<u8>>,
    /// The last line read ended its reply.
    reply_done: bool,
}

impl Conn {
    fn open(server: &TestServer) -> Result<Conn, String> {
        let stream =
            TcpStream::connect(server.addr).map_err(|e| format!("connect {}: {e}", server.addr))?;
        stream
            .set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            writer: stream.try_clone().map_err(|e| e.to_string())?,
            reader: BufReader::new(stream),
            reply: Vec::new(),
            reply_done: true,
        })
    }

    /// Reads one reply line.
    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading a reply line: {e}")),
        }
        let Some(line) = line.strip_suffix(b"\r\n") else {
            return Err(format!("a reply line without CRLF: {}", shown(&line)));
        };
        if self.reply_done {
            self.reply.clear();
        }
        self.reply_done = line.get(3) != Some(&b'-');
        self.reply.push(line.to_vec());
        Ok(line.to_vec())
    }

    /// Reads the rest of the current reply.
    fn rest(&mut self) -> Result<(), String> {
        while !self.reply_done {
            self.line()?;
        }
        Ok(())
    }

    /// Ok once the server has closed the connection with nothing more sent.
    fn closed(&mut self) -> Result<(), String> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) if rest.is_empty() => Ok(()),
            Ok(_) => Err(format!("more from the server: {}", shown(&rest))),
            Err(e) => Err(format!("waiting for the server to close: {e}")),
        }
    }
}

/// Plays `text` (the script at `path`) against a new server; the error names the file and
/// line, with the server's log.
fn play(path: &Path, text: &str) -> Result<(), String> {
    let name = path.display();
    let script = parse(text).map_err(|(line, e)| format!("{name}:{line}: {e}"))?;
    let server = Options::default().config(&script.config).start();
    let mut conns: HashMap<String, Conn> = HashMap::new();
    for (number, line, step) in &script.steps {
        run(&server, &mut conns, step).map_err(|e| {
            format!(
                "{name}:{number}: {line}\n    {e}\n--- server log ---\n{}",
                server.log()
            )
        })?;
    }
    Ok(())
}

/// The open connection `name`.
fn open<'a>(conns: &'a mut HashMap<String, Conn>, name: &str) -> Result<&'a mut Conn, String> {
    conns
        .get_mut(name)
        .ok_or_else(|| format!("no connection {name:?} open"))
}

fn run(server: &TestServer, conns: &mut HashMap<String, Conn>, step: &Step) -> Result<(), String> {
    match step {
        Step::Connect(name) => {
            if conns.contains_key(name) {
                return Err(format!("{name:?} is already open"));
            }
            conns.insert(name.clone(), Conn::open(server)?);
        }
        Step::Send(name, bytes) => {
            let c = open(conns, name)?;
            // Else the next `<~` would read an old reply's line: a script mistake.
            if !c.reply_done {
                return Err(format!(
                    "the last reply is not read whole (`{name} <*` reads the rest)"
                ));
            }
            c.writer
                .write_all(bytes)
                .map_err(|e| format!("sending: {e}"))?;
        }
        Step::Line {
            conn: name,
            text,
            exact,
        } => {
            let c = open(conns, name)?;
            let line = c.line()?;
            let matches = if *exact {
                line == *text
            } else {
                line.starts_with(text)
            };
            if !matches {
                return Err(format!("got {}", shown(&line)));
            }
        }
        Step::Rest(name, text) => {
            let c = open(conns, name)?;
            c.rest()?;
            if !text.is_empty() && !c.reply.contains(text) {
                let reply: Vec<String> = c.reply.iter().map(|l| shown(l)).collect();
                return Err(format!("no such line in the reply {reply:#?}"));
            }
        }
        Step::Closed(name) => {
            open(conns, name)?.closed()?;
            conns.remove(name);
        }
        Step::Close(name) => {
            let c = conns
                .remove(name)
                .ok_or_else(|| format!("no connection {name:?} open"))?;
            let _ = c.writer.shutdown(Shutdown::Both);
        }
        Step::SpoolEmpty => {
            wait_until("no spool file being written", || {
                server.spool_files_in_progress().is_empty().then_some(())
            })?;
            empty_spool(server)?;
        }
        Step::Maildir(account, check) => {
            empty_spool(server)?;
            let messages = server.messages(account);
            let found = match check {
                MaildirCheck::Count(count) => messages.len() == *count,
                MaildirCheck::Starts(text) => messages.iter().any(|m| m.starts_with(text)),
                MaildirCheck::Ends(text) => messages.iter().any(|m| m.ends_with(text)),
                MaildirCheck::Has(text) => messages
                    .iter()
                    .any(|m| m.windows(text.len()).any(|w| w == &text[..])),
            };
            if !found {
                let shown: Vec<String> = messages.iter().map(|m| shown(m)).collect();
                return Err(format!(
                    "{} message(s) for {account}: {shown:#?}",
                    messages.len()
                ));
            }
        }
    }
    Ok(())
}

/// Waits for an empty spool. A message is delivered while it is in the spool and leaves it
/// only once delivered, so the Maildirs are final then.
fn empty_spool(server: &TestServer) -> Result<(), String> {
    wait_until("an empty spool", || {
        server.queue_files().is_empty().then_some(())
    })
    .map_err(|e| format!("{e}: {:?}", server.queue_files()))
}

/// Scripts played at once, each with its own server: a script can spend most of its time
/// waiting out the pauses the server makes before replying to repeated errors.
const AT_ONCE: usize = 4;

/// Plays the script at `path`; a panic of the harness (a server that does not start) is
/// this script's failure.
fn play_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::panic::catch_unwind(|| play(path, &text)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("{}: {why}", path.display()))
    })
}

#[test]
fn dialogs() {
    let paths = script_paths();
    assert!(!paths.is_empty(), "no dialog scripts");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| {
                while let Some(path) = paths.get(next.fetch_add(1, Ordering::SeqCst)) {
                    match play_file(path) {
                        Ok(()) => eprintln!("ok   {}", path.display()),
                        Err(e) => {
                            eprintln!("FAIL {}", path.display());
                            failures.lock().unwrap().push(e);
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} dialogs failed:\n\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n\n")
    );
}

/// The driver itself can fail: a reply other than the script's is reported with its file
/// and line, and so is a syntax error, before any server starts.
#[test]
fn a_mismatch_is_reported_with_file_and_line() {
    let path = Path::new("self-check.dialog");
    let wrong = "# a comment\nc connect\nc <~ 220 mx.test\nc -> NOOP\nc <- 250 2.0.0 not this\n";
    let error = play(path, wrong).expect_err("a wrong reply must fail");
    assert!(
        error.starts_with("self-check.dialog:5: c <- 250 2.0.0 not this\n    got 250 2.0.0"),
        "{error}"
    );
    let error = play(path, "c connect\nc ~> NOOP\n").expect_err("a syntax error");
    assert_eq!(error, "self-check.dialog:2: unknown operation \"~>\"");
    assert_eq!(
        unescape("a{3*b\\r\\n}{2*{2*x}-}\\x00").unwrap(),
        b"ab\r\nb\r\nb\r\nxx-xx-\0"[..]
    );
}
