//! Durability seen from the system calls. A SIGKILL leaves the page cache intact, so the
//! crash tests would still pass with every fsync deleted; this test runs the real server
//! under `strace` while mail flows and checks that each promise is backed by a sync that
//! completed in time:
//!
//! - (a) a `250 ... queued as ID` is written to the client only after a sync that covers the
//!   spool file's content and one that covers a name it will be found by after a crash
//!   (fsync of the file and of `queue/`, or a `syncfs` of their filesystem): either its name
//!   `queue/ID`, given by a rename or by a link of an unnamed (`O_TMPFILE`) file through
//!   `/proc/self/fd`, or the pool name it was made under, or recycled to, before the mail
//!   arrived (`queue/.pool-N`, `queue/.pool-of-ID`; recovery gives a whole message left
//!   there its queue id);
//! - (b) a Maildir file is written and synced, renamed into `new/`, and `new/` (and every
//!   folder made on the way) is synced before the recipient is marked delivered: before the
//!   state write that records the delivery, or the removal (or recycling) of the spool
//!   file;
//! - (c) a state file is written whole and synced before it is renamed over `ID.state`,
//!   and the thread that saved it goes on only once its name is synced too (`save_state`
//!   returns durable).
//!
//! Order is the order of the log's lines: strace handles one event at a time and a
//! traced thread waits at each call's entry and exit until strace has printed it. A call
//! is seen to begin at its full line or its `<unfinished ...>` line and to end at its full
//! line or its `resumed>` line. A call made because another returned (the 250 after the
//! sync, the state write after the delivery) therefore always comes later, so a correct
//! server never fails here; a missing sync is simply not there. (Two calls that race in
//! the server may be printed in either order, so a race is caught when it shows, not
//! always.) The test fails, rather than skips, without strace: `scripts/test-all`
//! installs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::dns::TestDns;
use common::sink::Sink;
use common::{Options, TestServer, list_files, wait_until};

/// Every call that writes, names, removes or syncs a file, or writes to a socket. Names
/// with `?` are skipped where the architecture lacks them.
const TRACED: &str = "trace=openat,?open,?creat,close,write,pwrite64,writev,pwritev,pwritev2,\
                      ftruncate,copy_file_range,sendfile,sendto,sendmsg,fsync,fdatasync,syncfs,\
                      sync,sync_file_range,?rename,renameat,renameat2,?link,linkat,?unlink,\
                      unlinkat,?mkdir,mkdirat";

/// Clients on parallel connections, each sending every kind of message in `SCRIPT`.
const CLIENTS: usize = 4;

/// A message that fails DMARC under `p=quarantine`, sent from 127.0.0.2 (checked, unlike
/// the trusted 127.0.0.1) to an account without a Maildir yet: its delivery makes
/// `carol/.Junk` and `carol` at once, and both need syncing into their parents. Sent alone
/// once all else is done, so that no other message's syncfs can cover for a missing sync.
const QUARANTINED: &str = r#"
import os, smtplib
with smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]), source_address=("127.0.0.2", 0)) as s:
    s.ehlo("out.other.test")
    code, text = s.mail("attacker@other.test")
    assert code == 250, (code, text)
    code, text = s.rcpt("carol@localhost")
    assert code == 250, (code, text)
    code, text = s.data(b"From: billing@quarantine.test\r\nSubject: junk\r\n\r\nPay now.\r\n")
    assert code == 250, (code, text)
    print("quarantined", text.decode().split()[-1], "carol@localhost")
"#;

/// Python's smtplib, one connection per thread: local, relayed, mixed, locally delivered
/// plus deferred by the next hop, and BDAT (mixed); client 0 also sends one large message,
/// which the server writes to its spool file while it arrives. Prints `kind id recipients`
/// per accepted message.
const SCRIPT: &str = r#"
import os, smtplib, sys, threading
host, port, clients = os.environ["HOST"], int(os.environ["PORT"]), int(os.environ["CLIENTS"])
results, errors, lock = [], [], threading.Lock()

def content(subject, size):
    line = "a line of the body, long enough to make a message of some size\r\n"
    return ("From: sender@client.test\r\nSubject: %s\r\n\r\n%s" % (subject, line * (1 + size // len(line)))).encode()

def envelope(s, rcpts):
    code, text = s.mail("sender@client.test")
    assert code == 250, (code, text)
    for r in rcpts:
        code, text = s.rcpt(r)
        assert code == 250, (r, code, text)

def data(s, rcpts, body):
    envelope(s, rcpts)
    code, text = s.data(body)
    assert code == 250, (code, text)
    return text.decode()

def bdat(s, rcpts, body):
    envelope(s, rcpts)
    half = len(body) // 2
    for chunk, last in ((body[:half], b""), (body[half:], b" LAST")):
        s.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        code, text = s.getreply()
        assert code == 250, (code, text)
    return text.decode()

def client(n):
    try:
        with smtplib.SMTP(host, port) as s:
            s.ehlo("client%d.test" % n)
            assert s.has_extn("chunking"), s.esmtp_features
            sends = [
                ("local", data, ["alice@localhost"], 500),
                ("relayed", data, ["r%d@sink.test" % n], 500),
                ("mixed", data, ["alice@localhost", "bob@localhost", "m%d@sink.test" % n], 2000),
                ("deferred", data, ["bob@localhost", "later%d@sink.test" % n], 500),
                ("bdat", bdat, ["alice@localhost", "b%d@sink.test" % n], 5000),
            ]
            if n == 0:
                sends.append(("large", data, ["bob@localhost"], 300000))
            for kind, send, rcpts, size in sends:
                reply = send(s, rcpts, content("%s %d" % (kind, n), size))
                with lock:
                    results.append("%s %s %s" % (kind, reply.split()[-1], ",".join(rcpts)))
    except Exception as e:
        with lock:
            errors.append("client %d: %r" % (n, e))

threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("\n".join(results))
if errors:
    sys.exit("\n".join(errors))
"#;

#[test]
fn every_promise_follows_a_completed_sync() {
    let strace = Command::new("strace").arg("-V").output();
    assert!(
        strace.is_ok_and(|o| o.status.success()),
        "strace is needed for this test (Debian: apt-get install strace; scripts/test-all \
         installs it)"
    );
    let sink = Sink::builder()
        .rcpt(|address| {
            if address.starts_with("later") {
                "451 4.3.0 try again later"
            } else {
                "250 2.1.5 ok"
            }
        })
        .start();
    let dns = TestDns::builder()
        .txt("quarantine.test", "v=spf1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .txt("other.test", "v=spf1 ip4:127.0.0.2 -all")
        .start();
    let traces = tempfile::tempdir().expect("temp dir for the trace");
    let trace_path = traces.path().join("strace.log");
    let trace_arg = trace_path.to_str().expect("trace path is UTF-8");
    let mut server = Options::default()
        .config(&format!(
            "[policy]\ntrusted_networks = [\"127.0.0.1/32\"]\n\n\
             [verify]\nskip_networks = [\"127.0.0.1/32\"]\n\n\
             [delivery]\nnameserver = \"{}\"\n\n\
             [[account]]\nname = \"alice\"\n\n[[account]]\nname = \"bob\"\n\n\
             [[account]]\nname = \"carol\"\n\n[[account]]\nname = \"postmaster\"\n\n\
             [[route]]\ndomain = \"sink.test\"\nhost = \"[127.0.0.1]:{}\"\ntls = \"none\"\n",
            dns.addr,
            sink.addr.port()
        ))
        .wrapped(&[
            "strace",
            "-f",
            "-qq",
            "-ttt",
            "-T",
            "-y",
            "-s",
            "65536",
            "-e",
            TRACED,
            "-e",
            "signal=none",
            "-o",
            trace_arg,
        ])
        .start();

    let mut accepted = python(&server, SCRIPT);
    assert_eq!(accepted.len(), 5 * CLIENTS + 1, "{accepted:?}");

    // Everything that can happen without a retry has happened: the sink has what was
    // relayed, the Maildirs what was local, and the queue only the deferred messages,
    // with their remote attempt recorded.
    sink.wait_for_messages(3 * CLIENTS);
    server.wait_for_messages("alice", 3 * CLIENTS);
    server.wait_for_messages("bob", 2 * CLIENTS + 1);
    let deferred: BTreeSet<String> = accepted
        .iter()
        .filter(|(kind, _)| kind == "deferred")
        .flat_map(|(_, id)| [id.clone(), format!("{id}.state")])
        .collect();
    let queue = server.data().join("queue");
    wait_until("only the deferred messages queued, attempted", || {
        let files: BTreeSet<String> = server.queue_files().into_iter().collect();
        let attempted = deferred.iter().filter(|f| f.ends_with(".state")).all(|f| {
            std::fs::read_to_string(queue.join(f)).is_ok_and(|s| !s.contains("\"attempts\":0"))
        });
        (files == deferred && attempted).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", server.queue_files(), server.log()));
    accepted.extend(python(&server, QUARANTINED));
    let junk = server.maildir("carol").join(".Junk").join("new");
    wait_until("the quarantined message delivered", || {
        let delivered = list_files(&junk).len() == 1;
        let queued: BTreeSet<String> = server.queue_files().into_iter().collect();
        (delivered && queued == deferred).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", server.queue_files(), server.log()));
    let status = server.stop();
    assert!(
        status.success(),
        "server under strace: {status}\n{}",
        server.log()
    );

    let text = std::fs::read_to_string(&trace_path).expect("read the strace log");
    let trace = Trace::parse(&text, &server.data());
    let report = trace.check();
    let ids: BTreeSet<&str> = accepted.iter().map(|(_, id)| id.as_str()).collect();
    let replied: BTreeSet<&str> = report.replies.iter().map(String::as_str).collect();
    assert_eq!(
        replied, ids,
        "the trace's `queued as` replies are those the clients got"
    );
    assert_eq!(
        report.deliveries,
        5 * CLIENTS + 2,
        "Maildir deliveries seen"
    );
    assert!(
        report.recycled >= 1,
        "no message received into a recycled spool file"
    );
    assert!(
        report.state_files >= CLIENTS,
        "state files seen: {}",
        report.state_files
    );
    if !report.failures.is_empty() {
        // Kept for reading: the positions in the messages are its line numbers.
        let kept = traces.keep().join("strace.log");
        panic!(
            "durability rules broken (trace kept in {}):\n{}",
            kept.display(),
            report.failures.summary()
        );
    }
}

/// Runs a Python client `script` against the server; returns the `kind id` of each
/// message it reports accepted.
fn python(server: &TestServer, script: &str) -> Vec<(String, String)> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("HOST", server.addr.ip().to_string())
        .env("PORT", server.addr.port().to_string())
        .env("CLIENTS", CLIENTS.to_string())
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "clients failed:\n{}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// What the checks found: the ids of the `queued as` replies, how many Maildir deliveries
/// and state files they checked, and every broken rule.
struct Report {
    replies: Vec<String>,
    /// Messages received into a delivered message's recycled file.
    recycled: usize,
    deliveries: usize,
    state_files: usize,
    failures: Failures,
}

/// Broken rules, by rule: one missing sync breaks many messages alike, and the summary
/// should show that at a glance.
#[derive(Default)]
struct Failures {
    by_rule: BTreeMap<&'static str, Vec<String>>,
    /// Folders already reported: each is named once, not for every file under it.
    folders: BTreeSet<PathBuf>,
}

impl Failures {
    fn add(&mut self, rule: &'static str, message: String) {
        self.by_rule.entry(rule).or_default().push(message);
    }

    fn is_empty(&self) -> bool {
        self.by_rule.is_empty()
    }

    /// Per rule, how often it broke and the first few cases.
    fn summary(&self) -> String {
        const SHOWN: usize = 4;
        let mut text = String::new();
        for (rule, messages) in &self.by_rule {
            text.push_str(&format!("{rule}: {} times\n", messages.len()));
            for message in messages.iter().take(SHOWN) {
                text.push_str(&format!("  {message}\n"));
            }
            if messages.len() > SHOWN {
                text.push_str("  ...\n");
            }
        }
        text
    }
}

/// One system call, from the position where it began to the one where it ended (the same
/// for a call printed in full). Positions are line indexes of the trace.
#[derive(Debug, Clone)]
struct Call {
    pid: u32,
    begin: usize,
    end: usize,
    name: String,
    args: Vec<String>,
    ret: String,
}

impl Call {
    /// A call that returned and did not fail.
    fn succeeded(&self) -> bool {
        !self.ret.is_empty() && !self.ret.starts_with('-') && !self.ret.starts_with('?')
    }

    /// The path `-y` shows for argument `i` (a descriptor), if any.
    fn fd_path(&self, i: usize) -> Option<PathBuf> {
        self.args
            .get(i)
            .and_then(|a| decoration(a))
            .map(PathBuf::from)
    }

    /// The octets of every string literal in argument `i`.
    fn data(&self, i: usize) -> Vec<u8> {
        self.args
            .get(i)
            .map(|a| literals(a).concat())
            .unwrap_or_default()
    }

    /// A path argument: the string at `i`, resolved against the directory descriptor at
    /// `dir` when relative.
    fn path(&self, dir: Option<usize>, i: usize) -> Option<PathBuf> {
        let name = literals(self.args.get(i)?).into_iter().next()?;
        let name = PathBuf::from(String::from_utf8_lossy(&name).into_owned());
        if name.is_absolute() {
            return Some(name);
        }
        Some(self.fd_path(dir?)?.join(name))
    }

    /// Where the call began, for messages.
    fn at(&self) -> String {
        format!("line {} ({} by {})", self.begin + 1, self.name, self.pid)
    }
}

/// What a call did to files, as far as the checks care.
#[derive(Debug, Clone)]
enum Op {
    /// Data written to (or truncated in) the file or socket at `path`.
    Write {
        path: PathBuf,
        data: Vec<u8>,
    },
    /// fsync or fdatasync of `path`.
    Sync {
        path: PathBuf,
    },
    /// syncfs (or sync) of the filesystem holding `path`.
    SyncFs {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Unlink {
        path: PathBuf,
    },
    Mkdir {
        path: PathBuf,
    },
    Create {
        path: PathBuf,
    },
    Close {
        path: PathBuf,
    },
    Other,
}

/// A call and what it did.
struct Event {
    call: Call,
    op: Op,
}

/// The server's calls in the order they completed, and its data folder.
struct Trace {
    events: Vec<Event>,
    data: PathBuf,
}

impl Trace {
    /// Parses a `strace -f -ttt -T -y` log of the server with data folder `data`.
    fn parse(text: &str, data: &Path) -> Trace {
        let device = std::fs::metadata(data).expect("data folder").dev();
        let mut pending: HashMap<u32, (usize, String)> = HashMap::new();
        // What each descriptor number was last opened as (one process, so one table).
        let mut opened: HashMap<String, PathBuf> = HashMap::new();
        let mut events = Vec::new();
        for (index, line) in text.lines().enumerate() {
            // `PID TIME CALL`, the pid padded to a column.
            let Some((pid, rest)) = line.trim_start().split_once(' ') else {
                continue;
            };
            let Some((_time, rest)) = rest.trim_start().split_once(' ') else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let (begin, whole) = if let Some(tail) = rest.strip_prefix("<... ") {
                let Some((_, tail)) = tail.split_once(" resumed>") else {
                    continue;
                };
                let Some((begin, head)) = pending.remove(&pid) else {
                    continue;
                };
                (begin, format!("{head}{tail}"))
            } else if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
                pending.insert(pid, (index, head.to_string()));
                continue;
            } else {
                (index, rest.to_string())
            };
            let Some(call) = parse_call(pid, begin, index, &whole) else {
                continue;
            };
            if call.succeeded()
                && matches!(call.name.as_str(), "open" | "openat")
                && let Some(((number, _), path)) =
                    call.ret.split_once('<').zip(decoration(&call.ret))
            {
                opened.insert(number.to_string(), PathBuf::from(path));
            }
            let op = match operation(&call) {
                _ if !call.succeeded() => Op::Other,
                // A syncfs of another filesystem covers nothing here.
                Op::SyncFs { path } if !on_filesystem(&path, device) => Op::Other,
                // A link of `/proc/self/fd/N` names the file open as N.
                Op::Rename { from, to } => match from
                    .strip_prefix("/proc/self/fd")
                    .ok()
                    .and_then(|number| opened.get(number.to_str()?))
                {
                    Some(file) => Op::Rename {
                        from: file.clone(),
                        to,
                    },
                    None => Op::Rename { from, to },
                },
                op => op,
            };
            events.push(Event { call, op });
        }
        Trace {
            events,
            data: data.to_path_buf(),
        }
    }

    /// The first sync to complete among those that begin after position `after` and
    /// cover the content of the file known by any of `names`.
    fn content_sync(&self, names: &[&Path], after: usize) -> Option<&Call> {
        self.first_sync(after, |op, _| match op {
            Op::Sync { path } => names.contains(&path.as_path()),
            Op::SyncFs { .. } => true,
            _ => false,
        })
    }

    /// The first sync to complete among those that begin after `after` and cover the
    /// entries of folder `dir`.
    fn entry_sync(&self, dir: &Path, after: usize) -> Option<&Call> {
        self.first_sync(after, |op, _| match op {
            Op::Sync { path } => path == dir,
            Op::SyncFs { .. } => true,
            _ => false,
        })
    }

    fn first_sync(&self, after: usize, covers: impl Fn(&Op, &Call) -> bool) -> Option<&Call> {
        self.events
            .iter()
            .filter(|e| e.call.begin > after && covers(&e.op, &e.call))
            .map(|e| &e.call)
            .min_by_key(|c| c.end)
    }

    /// Writes (and truncations) of the file known by any of `names`.
    fn writes<'a>(&'a self, names: &'a [&Path]) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(
            move |e| matches!(&e.op, Op::Write { path, .. } if names.contains(&path.as_path())),
        )
    }

    /// Checks that each folder created on the way to `path` has its entry synced into its
    /// parent before position `deadline`; a crash could take the folder, and the file in it.
    fn check_folders(&self, path: &Path, deadline: usize, what: &str, failures: &mut Failures) {
        for event in &self.events {
            let Op::Mkdir { path: dir } = &event.op else {
                continue;
            };
            let made = &event.call;
            let Some(parent) = dir.parent() else { continue };
            if !path.starts_with(dir) || made.end >= deadline || failures.folders.contains(dir) {
                continue;
            }
            match self.entry_sync(parent, made.end) {
                Some(sync) if sync.end < deadline => {}
                sync => {
                    failures.folders.insert(dir.clone());
                    failures.add(
                        "folder made but its entry not synced before a file in it was relied on",
                        format!(
                            "{} (made at {}), needed by {what}; first sync of {} after: {}",
                            dir.display(),
                            made.at(),
                            parent.display(),
                            describe(sync)
                        ),
                    );
                }
            }
        }
    }

    /// Runs every check.
    fn check(&self) -> Report {
        let mut failures = Failures::default();
        let replies = self.check_replies(&mut failures);
        let deliveries = self.check_deliveries(&mut failures);
        let state_files = self.check_states(&mut failures);
        Report {
            replies,
            recycled: self.recycled_receipts(),
            deliveries,
            state_files,
            failures,
        }
    }

    /// How many message files were named from a recycled pool file.
    fn recycled_receipts(&self) -> usize {
        let queue = self.data.join("queue");
        self.events
            .iter()
            .filter(|e| match &e.op {
                Op::Rename { from, to } => {
                    to.parent() == Some(queue.as_path())
                        && from
                            .file_name()
                            .is_some_and(|name| name.to_string_lossy().starts_with(".pool-of-"))
                }
                _ => false,
            })
            .count()
    }

    /// (a): each `250 ... queued as ID` on a socket follows the file's writes, its rename
    /// to `queue/ID`, and completed syncs of its content and name.
    fn check_replies(&self, failures: &mut Failures) -> Vec<String> {
        let queue = self.data.join("queue");
        let mut ids = Vec::new();
        for event in &self.events {
            let Op::Write { path, data } = &event.op else {
                continue;
            };
            if !is_socket(path) {
                continue;
            }
            let reply = String::from_utf8_lossy(data);
            for id in reply
                .split("queued as ")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next())
            {
                ids.push(id.to_string());
                let replied = event.call.begin;
                let what = format!("message {id} (250 at {})", event.call.at());
                let spool = queue.join(id);
                let named = self.events.iter().find_map(|e| match &e.op {
                    Op::Rename { from, to } if *to == spool && e.call.end < replied => {
                        Some((from, &e.call))
                    }
                    _ => None,
                });
                let Some((from, renamed)) = named else {
                    failures.add("(a) spool file not named queue/ID before its 250", what);
                    continue;
                };
                // An unnamed file is known as `queue/#INODE (deleted)` until its link, a
                // name other files share before and after it: only the calls between its
                // making and its link are its own. A pool file is made under its name, or
                // given it when a delivered message's file is recycled.
                let creation = self
                    .events
                    .iter()
                    .filter(|e| {
                        matches!(&e.op, Op::Create { path } | Op::Rename { to: path, .. }
                            if path == from)
                            && e.call.end < renamed.begin
                    })
                    .map(|e| e.call.end)
                    .max();
                let made = creation.unwrap_or(0);
                let its_own = |path: &Path, call: &Call| {
                    path == spool || (path == from && call.begin > made && call.end < renamed.begin)
                };
                let names = [from.as_path(), spool.as_path()];
                let writes: Vec<&Event> = self
                    .writes(&names)
                    .filter(|e| matches!(&e.op, Op::Write { path, .. } if its_own(path, &e.call)))
                    .collect();
                let Some(last) = writes.iter().map(|e| e.call.end).max() else {
                    failures.add("(a) spool file never written", what);
                    continue;
                };
                if let Some(late) = writes.iter().find(|e| e.call.end >= replied) {
                    failures.add(
                        "(a) spool file written after its 250",
                        format!("{what}: written at {}", late.call.at()),
                    );
                }
                let content_sync = self.first_sync(last, |op, call| match op {
                    Op::Sync { path } => its_own(path, call),
                    Op::SyncFs { .. } => true,
                    _ => false,
                });
                match content_sync {
                    Some(sync) if sync.end < replied => {}
                    sync => failures.add(
                        "(a) 250 before the spool file's content was synced",
                        format!(
                            "{what}: last written at line {}; first covering sync: {}",
                            last + 1,
                            describe(sync)
                        ),
                    ),
                }
                let pooled = from
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(".pool-"));
                // A pool file's own name must be durable; the one of an unnamed file, or a
                // file renamed, is the name it was given.
                let (named_at, named) = match creation {
                    Some(made) if pooled => (made, "made under its pool name"),
                    _ => (renamed.end, "renamed"),
                };
                match self.entry_sync(&queue, named_at) {
                    Some(sync) if sync.end < replied => {}
                    sync => failures.add(
                        "(a) 250 before the spool file's name in queue/ was synced",
                        format!(
                            "{what}: {named} at line {}; first covering sync: {}",
                            named_at + 1,
                            describe(sync)
                        ),
                    ),
                }
                self.check_folders(&spool, replied, &what, failures);
            }
        }
        ids.sort();
        ids
    }

    /// (b): each file made in a Maildir's `tmp/` is written, synced, renamed into `new/`,
    /// and `new/` synced, before the delivery is recorded. Returns how many it checked.
    fn check_deliveries(&self, failures: &mut Failures) -> usize {
        let mail = self.data.join("mail");
        let queue = self.data.join("queue");
        let mut count = 0;
        for (index, event) in self.events.iter().enumerate() {
            let Op::Create { path: tmp } = &event.op else {
                continue;
            };
            let in_tmp = tmp.parent().and_then(Path::file_name) == Some("tmp".as_ref());
            if !tmp.starts_with(&mail) || !in_tmp {
                continue;
            }
            count += 1;
            let name = tmp.file_name().expect("file name").to_string_lossy();
            let what = format!("Maildir file {name} (made at {})", event.call.at());
            let Some(renamed) = self.events[index..].iter().find_map(|e| match &e.op {
                Op::Rename { from, to } if from == tmp => Some((to.clone(), &e.call)),
                _ => None,
            }) else {
                failures.add("(b) Maildir file never renamed out of tmp/", what);
                continue;
            };
            let (new, renamed) = renamed;
            let names = [tmp.as_path(), new.as_path()];
            let writes: Vec<&Event> = self.writes(&names).collect();
            let header = writes
                .first()
                .map(|e| match &e.op {
                    Op::Write { data, .. } => String::from_utf8_lossy(data).into_owned(),
                    _ => String::new(),
                })
                .unwrap_or_default();
            let Some(id) = received_id(&header) else {
                failures.add("(b) Maildir file without our Received header", what);
                continue;
            };
            let what = format!("{what}, message {id}");
            // The delivery counts once a state write names this file as delivered, or the
            // spool file goes (removed, or recycled into the pool).
            let state_tmp = queue.join("tmp").join(format!("{id}.state"));
            let marker = format!("delivered to maildir {name}\"");
            let spool = queue.join(&id);
            let recorded = self
                .events
                .iter()
                .filter(|e| match &e.op {
                    Op::Write { path, data } => {
                        *path == state_tmp && String::from_utf8_lossy(data).contains(&marker)
                    }
                    Op::Unlink { path } | Op::Rename { from: path, .. } => *path == spool,
                    _ => false,
                })
                .min_by_key(|e| e.call.begin);
            let Some(recorded) = recorded else {
                failures.add("(b) Maildir delivery never recorded", what);
                continue;
            };
            let deadline = recorded.call.begin;
            let what = format!("{what} (recorded delivered at {})", recorded.call.at());
            let last = writes
                .iter()
                .map(|e| e.call.end)
                .max()
                .unwrap_or(event.call.end);
            if new.parent().and_then(Path::file_name) != Some("new".as_ref()) {
                failures.add(
                    "(b) Maildir file not renamed into new/",
                    format!("{what}: renamed to {}", new.display()),
                );
            }
            if let Some(late) = writes.iter().find(|e| e.call.end >= renamed.begin) {
                failures.add(
                    "(b) Maildir file written after its rename into new/",
                    format!("{what}: written at {}", late.call.at()),
                );
            }
            match self.content_sync(&names, last) {
                Some(sync) if sync.end < renamed.begin => {}
                sync => failures.add(
                    "(b) Maildir file renamed into new/ before its content was synced",
                    format!(
                        "{what}: last written at line {}, renamed at {}; first covering sync: {}",
                        last + 1,
                        renamed.at(),
                        describe(sync)
                    ),
                ),
            }
            let folder = new.parent().unwrap_or(&new);
            match self.entry_sync(folder, renamed.end) {
                Some(sync) if sync.end < deadline => {}
                sync => failures.add(
                    "(b) delivery recorded before new/ was synced after the rename",
                    format!(
                        "{what}: renamed at {}; first sync of {}: {}",
                        renamed.at(),
                        folder.display(),
                        describe(sync)
                    ),
                ),
            }
            self.check_folders(&new, deadline, &what, failures);
        }
        count
    }

    /// (c): each state file replaces `ID.state` whole and durably before its writer goes
    /// on. Returns how many it checked.
    fn check_states(&self, failures: &mut Failures) -> usize {
        let queue = self.data.join("queue");
        let mut count = 0;
        let mut last_create: BTreeMap<&Path, (usize, u32)> = BTreeMap::new();
        for (index, event) in self.events.iter().enumerate() {
            if let Op::Create { path } = &event.op {
                last_create.insert(path, (index, event.call.pid));
            }
            let Op::Rename { from, to } = &event.op else {
                continue;
            };
            let is_state = to.parent() == Some(queue.as_path())
                && to.extension() == Some("state".as_ref())
                && from.parent() == Some(queue.join("tmp").as_path());
            if !is_state {
                continue;
            }
            count += 1;
            let renamed = &event.call;
            let what = format!(
                "state file {} (renamed at {})",
                to.file_name().expect("name").to_string_lossy(),
                renamed.at()
            );
            let Some(&(created, writer)) = last_create.get(from.as_path()) else {
                failures.add("(c) state file renamed from nowhere", what);
                continue;
            };
            let names = [from.as_path(), to.as_path()];
            let own: Vec<&Event> = self.events[created..index]
                .iter()
                .filter(|e| match &e.op {
                    Op::Write { path, .. } | Op::Close { path } => names.contains(&path.as_path()),
                    _ => false,
                })
                .collect();
            let last = own
                .iter()
                .filter(|e| matches!(e.op, Op::Write { .. }))
                .map(|e| e.call.end)
                .max()
                .unwrap_or(self.events[created].call.end);
            if let Some(late) = self
                .writes(&names)
                .find(|e| e.call.end >= renamed.begin && e.call.begin < renamed.begin)
            {
                failures.add(
                    "(c) state file renamed while being written",
                    format!("{what}: written at {}", late.call.at()),
                );
            }
            // The writer's last step with this file: its close, or the rename if its own.
            let handed = own
                .iter()
                .filter(|e| e.call.pid == writer)
                .map(|e| e.call.end)
                .chain((renamed.pid == writer).then_some(renamed.end))
                .max()
                .unwrap_or(self.events[created].call.end);
            let content = self.content_sync(&names, last);
            // Renamed over the old state first, a crash could leave `ID.state` empty, and
            // an unreadable state sets the whole message aside.
            if content.is_none_or(|sync| sync.end >= renamed.begin) {
                failures.add(
                    "(c) state file renamed before its content was synced",
                    format!(
                        "{what}: last written at line {}; first covering sync: {}",
                        last + 1,
                        describe(content)
                    ),
                );
            }
            let name = self.entry_sync(&queue, renamed.end);
            let durable = content.zip(name).map(|(c, n)| c.end.max(n.end));
            let next = self
                .events
                .iter()
                .find(|e| e.call.pid == writer && e.call.begin > handed);
            if let Some(next) = next
                && durable.is_none_or(|durable| next.call.begin < durable)
            {
                failures.add(
                    "(c) save_state returned before the state file was synced",
                    format!(
                        "{what}: its writer went on at {}; content sync: {}, name sync: {}",
                        next.call.at(),
                        describe(content),
                        describe(name)
                    ),
                );
            }
        }
        for event in &self.events {
            if let Op::Write { path, .. } = &event.op
                && path.parent() == Some(queue.as_path())
                && path.extension() == Some("state".as_ref())
            {
                failures.add(
                    "(c) state file written in place",
                    format!("{} at {}", path.display(), event.call.at()),
                );
            }
        }
        count
    }
}

/// True if `path` (or, once gone, its nearest existing folder) is on filesystem `device`.
fn on_filesystem(path: &Path, device: u64) -> bool {
    path.ancestors()
        .find_map(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.dev() == device)
}

/// A sync for a failure message.
fn describe(sync: Option<&Call>) -> String {
    match sync {
        Some(sync) => format!(
            "{}({}) ending at line {}",
            sync.name,
            sync.args.first().map_or("", String::as_str),
            sync.end + 1
        ),
        None => "none".to_string(),
    }
}

/// `socket:[...]` (or `TCP:[...]` with `-yy`) rather than a file.
fn is_socket(path: &Path) -> bool {
    let path = path.to_string_lossy();
    path.starts_with("socket:") || path.starts_with("TCP")
}

/// The queue id in our Received header: `by mx.test (Posthorn) with ESMTP id ID`.
fn received_id(header: &str) -> Option<String> {
    let after = header.split("(Posthorn) with ").nth(1)?;
    let id = after.split_whitespace().nth(2)?;
    Some(id.trim_end_matches(';').to_string())
}

/// What a successful call did.
fn operation(call: &Call) -> Op {
    let fd = |i| call.fd_path(i);
    let op = match call.name.as_str() {
        "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "sendto" | "sendmsg" => fd(0)
            .map(|path| Op::Write {
                path,
                data: call.data(1),
            }),
        "ftruncate" | "sendfile" => fd(0).map(|path| Op::Write {
            path,
            data: Vec::new(),
        }),
        "copy_file_range" => fd(2).map(|path| Op::Write {
            path,
            data: Vec::new(),
        }),
        "fsync" | "fdatasync" => fd(0).map(|path| Op::Sync { path }),
        "syncfs" => fd(0).map(|path| Op::SyncFs { path }),
        "sync" => Some(Op::SyncFs {
            path: PathBuf::from("/"),
        }),
        "rename" | "link" => call
            .path(None, 0)
            .zip(call.path(None, 1))
            .map(|(from, to)| Op::Rename { from, to }),
        "renameat" | "renameat2" | "linkat" => call
            .path(Some(0), 1)
            .zip(call.path(Some(2), 3))
            .map(|(from, to)| Op::Rename { from, to }),
        "unlink" => call.path(None, 0).map(|path| Op::Unlink { path }),
        "unlinkat" => call.path(Some(0), 1).map(|path| Op::Unlink { path }),
        "mkdir" => call.path(None, 0).map(|path| Op::Mkdir { path }),
        "mkdirat" => call.path(Some(0), 1).map(|path| Op::Mkdir { path }),
        "creat" => call.path(None, 0).map(|path| Op::Create { path }),
        "open" | "openat" => {
            let flags = if call.name == "open" { 1 } else { 2 };
            let creates = call
                .args
                .get(flags)
                .is_some_and(|f| f.contains("O_CREAT") || f.contains("O_TMPFILE"));
            let path = decoration(&call.ret).map(PathBuf::from);
            path.filter(|_| creates).map(|path| Op::Create { path })
        }
        "close" => fd(0).map(|path| Op::Close { path }),
        _ => None,
    };
    op.unwrap_or(Op::Other)
}

/// `name(args) = ret <duration>` into a call.
fn parse_call(pid: u32, begin: usize, end: usize, text: &str) -> Option<Call> {
    let (name, rest) = text.split_once('(')?;
    let (args, after) = split_args(rest)?;
    let ret = after.trim_start().strip_prefix("= ")?;
    // The duration is the last `<...>`; a descriptor's path may hold one too.
    let ret = match ret.rfind(" <") {
        Some(at) if ret.ends_with('>') => &ret[..at],
        _ => ret,
    };
    Some(Call {
        pid,
        begin,
        end,
        name: name.to_string(),
        args,
        ret: ret.trim().to_string(),
    })
}

/// Splits the arguments after a call's `(` at top-level commas, up to the closing `)`;
/// returns them and what follows. String literals and `-y` paths (`3</a,b>`) are taken
/// whole.
fn split_args(text: &str) -> Option<(Vec<String>, &str)> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                current.push(c);
                while let Some((_, c)) = chars.next() {
                    current.push(c);
                    if c == '\\' {
                        current.extend(chars.next().map(|(_, e)| e));
                    } else if c == '"' {
                        break;
                    }
                }
            }
            '<' => {
                current.push(c);
                for (_, c) in chars.by_ref() {
                    current.push(c);
                    if c == '>' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' if depth == 0 => {
                if !current.trim().is_empty() {
                    args.push(current.trim().to_string());
                }
                return Some((args, &text[at + 1..]));
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => {
                args.push(current.trim().to_string());
                current.clear();
            }
            _ => current.push(c),
        }
    }
    None
}

/// The `-y` path of a descriptor: `3</path>` gives `/path`.
fn decoration(arg: &str) -> Option<&str> {
    // An unnamed (`O_TMPFILE`) file shows as `N</folder/#INODE>(deleted)`.
    let arg = arg.strip_suffix("(deleted)").unwrap_or(arg);
    let start = arg.find('<')?;
    arg[start + 1..].strip_suffix('>')
}

/// The octets of every string literal in `text` (strace's C escapes undone; a
/// truncated literal's `...` is dropped).
fn literals(text: &str) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                while i < bytes.len() && bytes[i] != b'>' {
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                let mut octets = Vec::new();
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] != b'\\' {
                        octets.push(bytes[i]);
                        i += 1;
                        continue;
                    }
                    i += 1;
                    let Some(&e) = bytes.get(i) else { break };
                    i += 1;
                    match e {
                        b'n' => octets.push(b'\n'),
                        b'r' => octets.push(b'\r'),
                        b't' => octets.push(b'\t'),
                        b'v' => octets.push(0x0b),
                        b'f' => octets.push(0x0c),
                        b'x' => {
                            let hex = text.get(i..i + 2).unwrap_or("");
                            octets.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                            i += 2;
                        }
                        b'0'..=b'7' => {
                            let mut value = u32::from(e - b'0');
                            for _ in 0..2 {
                                match bytes.get(i) {
                                    Some(&d @ b'0'..=b'7') => {
                                        value = value * 8 + u32::from(d - b'0');
                                        i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            octets.push(value as u8);
                        }
                        other => octets.push(other),
                    }
                }
                i += 1;
                found.push(octets);
            }
            _ => i += 1,
        }
    }
    found
}

#[test]
fn the_parser_joins_unfinished_calls_and_reads_paths_and_strings() {
    let data = Path::new("/d/data");
    let log = "\
7 1.000001 openat(AT_FDCWD</w>, \"/d/data/queue/tmp/ID\", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 5</d/data/queue/tmp/ID> <0.000010>
7 1.000002 write(5</d/data/queue/tmp/ID>, \"a\\r\\n\\\"b\\\"\\0\\3771\"..., 9) = 9 <0.000010>
7 1.000003 rename(\"/d/data/queue/tmp/ID\", \"/d/data/queue/ID\") = 0 <0.000010>
7  1.000004 syncfs(4</d/data/queue> <unfinished ...>
8 1.000005 fsync(6</d/data/mail/a/tmp/1.M2,S=3>) = 0 <0.000010>
7 1.000006 <... syncfs resumed>) = 0 <0.000020>
9 1.000007 sendto(3<socket:[1]>, \"250 2.0.0 OK queued as ID\\r\\n\", 27, MSG_NOSIGNAL, NULL, 0) = 27 <0.000010>
9 1.000008 unlink(\"/d/data/queue/X\") = -1 ENOENT (No such file or directory) <0.000010>
";
    let trace = Trace {
        data: data.to_path_buf(),
        ..Trace::parse(log, Path::new("/"))
    };
    let ops: Vec<&Op> = trace.events.iter().map(|e| &e.op).collect();
    assert!(matches!(ops[0], Op::Create { path } if path == Path::new("/d/data/queue/tmp/ID")));
    assert!(matches!(ops[1], Op::Write { data, .. } if data == b"a\r\n\"b\"\0\xff1"));
    assert!(matches!(ops[2], Op::Rename { to, .. } if to == Path::new("/d/data/queue/ID")));
    assert!(
        matches!(ops[3], Op::Sync { path } if path == Path::new("/d/data/mail/a/tmp/1.M2,S=3"))
    );
    let syncfs = &trace.events[4].call;
    assert_eq!(
        (syncfs.name.as_str(), syncfs.begin, syncfs.end),
        ("syncfs", 3, 5)
    );
    assert!(matches!(ops[5], Op::Write { path, .. } if is_socket(path)));
    assert!(matches!(ops[6], Op::Other), "a failed call does nothing");
    assert_eq!(
        received_id(
            "Received: from x ([127.0.0.1])\r\n\tby mx.test (Posthorn) with ESMTP id 1abc\r\n\tfor <a@b>;"
        ),
        Some("1abc".to_string())
    );
}

#[test]
fn the_parser_follows_an_unnamed_file_to_its_link() {
    let log = "\
7 1.000001 openat(4</d/data/queue>, \".\", O_RDWR|O_CLOEXEC|O_TMPFILE, 0600) = 5</d/data/queue/#12>(deleted) <0.000010>
7 1.000002 write(5</d/data/queue/#12>(deleted), \"a\", 1) = 1 <0.000010>
7 1.000003 fdatasync(5</d/data/queue/#12>(deleted)) = 0 <0.000010>
8 1.000004 linkat(AT_FDCWD</w>, \"/proc/self/fd/5\", AT_FDCWD</w>, \"/d/data/queue/ID\", AT_SYMLINK_FOLLOW) = 0 <0.000010>
";
    let trace = Trace::parse(log, Path::new("/"));
    let ops: Vec<&Op> = trace.events.iter().map(|e| &e.op).collect();
    let unnamed = Path::new("/d/data/queue/#12");
    assert!(matches!(ops[0], Op::Create { path } if path == unnamed));
    assert!(matches!(ops[1], Op::Write { path, .. } if path == unnamed));
    assert!(matches!(ops[2], Op::Sync { path } if path == unnamed));
    assert!(matches!(ops[3], Op::Rename { from, to }
        if from == unnamed && to == Path::new("/d/data/queue/ID")));
}
