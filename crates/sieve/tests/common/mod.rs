//! The differential harness both differential tests share: a private Pigeonhole
//! (`sieve-test` from Debian's dovecot-sieve) and the normalizing of both sides'
//! actions into the same lines.
//!
//! The messages' X-Spam-Score and X-Virus-Score fields are the "checking stage's
//! verdict" both sides read: Pigeonhole through its spamtest settings, ours through
//! `Context`. The null sender cannot be compared: sieve-test refuses `-f <>` and,
//! given none, takes the From field; tests/table.rs covers it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use posthorn_sieve::{Action, Context, Envelope, Extensions, Limits, Location, Now, compile, run};

const SIEVE_TEST: &str = "/usr/bin/sieve-test";
const RECIPIENT: &str = "bob@example.com";
pub const DEFAULT_SENDER: &str = "alice@example.org";

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A private Pigeonhole set-up: its own config, include folders, maildir and a
/// sendmail that swallows vacation replies. `sieve-test` runs as `nobody`, so all of
/// it is world-readable.
pub struct Pigeonhole {
    dir: tempfile::TempDir,
}

impl Pigeonhole {
    pub fn new() -> Self {
        assert!(
            Path::new(SIEVE_TEST).exists(),
            "{SIEVE_TEST} is missing: apt-get install dovecot-sieve dovecot-core (scripts/test-all does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["personal", "global"] {
            fs::create_dir(root.join(sub)).unwrap();
            for entry in fs::read_dir(data().join("include").join(sub)).unwrap() {
                let entry = entry.unwrap();
                fs::copy(entry.path(), root.join(sub).join(entry.file_name())).unwrap();
            }
        }
        for sub in ["mail", "home"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        let sendmail = root.join("sendmail");
        fs::write(&sendmail, "#!/bin/sh\ncat >/dev/null\n").unwrap();
        let r = root.display();
        let config = format!(
            "sendmail_path = {r}/sendmail\nmail_uid = nobody\nmail_gid = nogroup\nmail_location = maildir:{r}/mail\n\
             plugin {{\n  sieve = file:{r}/personal\n  sieve_global = {r}/global\n\
             sieve_vacation_max_period = 60d\n\
             sieve_extensions = +spamtest +spamtestplus +virustest +vacation-seconds\n\
             sieve_spamtest_status_type = score\n  sieve_spamtest_status_header = X-Spam-Score\n  sieve_spamtest_max_value = 10\n\
             sieve_virustest_status_type = score\n  sieve_virustest_status_header = X-Virus-Score\n  sieve_virustest_max_value = 5\n}}\n"
        );
        fs::write(root.join("dovecot.conf"), config).unwrap();
        open_up(root);
        Pigeonhole { dir }
    }

    pub fn run(
        &self,
        name: &str,
        script: &str,
        message: &[u8],
        sender: &str,
        execute: bool,
    ) -> String {
        let root = self.dir.path();
        let script_path = root.join(format!("{name}.sieve"));
        let message_path = root.join(format!("{name}.eml"));
        fs::write(&script_path, script).unwrap();
        fs::write(&message_path, message).unwrap();
        open_up(root);
        let mut command = Command::new(SIEVE_TEST);
        command
            .env("TZ", "UTC")
            .env("HOME", root.join("home"))
            .arg("-c")
            .arg(root.join("dovecot.conf"));
        command.args(["-f", sender, "-r", RECIPIENT, "-a", RECIPIENT]);
        if execute {
            command
                .arg("-e")
                .arg("-l")
                .arg(format!("maildir:{}", root.join("mail").display()));
        }
        let output = command
            .arg(&script_path)
            .arg(&message_path)
            .output()
            .unwrap();
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

fn open_up(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            open_up(&path);
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// Text, one line: CRLF and LF become "\n", surrounding blank lines go.
fn one_line(text: &str) -> String {
    text.replace("\r\n", "\n")
        .trim_matches('\n')
        .replace('\n', "\\n")
}

/// Flags as the set they are (RFC 5232 §3: case-insensitive; sieve-test may print a
/// keyword given twice in `:flags` twice).
fn flags_text(flags: &[String]) -> String {
    let mut lower: Vec<String> = flags.iter().map(|f| f.to_ascii_lowercase()).collect();
    lower.sort();
    lower.dedup();
    if lower.is_empty() {
        String::new()
    } else {
        format!(" flags={}", lower.join(" "))
    }
}

/// Pigeonhole's "Performed actions" and "Implicit keep" sections as our lines; a
/// failed compile or run is "error" (the server then keeps the message either way).
fn normalize_pigeonhole(output: &str) -> Vec<String> {
    if !output.contains("Performed actions:") {
        return vec!["error".to_owned()];
    }
    let mut lines = Vec::new();
    let mut iter = output
        .lines()
        .skip_while(|l| !l.starts_with("Performed actions:"))
        .skip(1)
        .peekable();
    while let Some(line) = iter.next() {
        let Some(action) = line.strip_prefix(" * ") else {
            continue;
        };
        let mut extras: Vec<String> = Vec::new();
        let mut flags: Vec<String> = Vec::new();
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut reason = String::new();
        while let Some(next) = iter.peek() {
            if next.starts_with(" * ")
                || next.starts_with("Implicit keep:")
                || next.starts_with("sieve-test:")
            {
                break;
            }
            let next = iter.next().unwrap();
            let trimmed = next.trim();
            if let Some(f) = trimmed.strip_prefix("+ add IMAP flags: ") {
                flags.extend(f.split_whitespace().map(str::to_owned));
            } else if trimmed == "+ create mailbox if it does not exist" {
                extras.push("create".into());
            } else if trimmed == "+ preserve implicit keep" {
                extras.push("copy".into());
            } else if let Some(field) = trimmed.strip_prefix("=> ") {
                let (key, value) = field.split_once(':').unwrap();
                let mut value = value.trim_start().to_owned();
                if key.trim() == "handle" {
                    while let Some(more) = iter.peek() {
                        if more.starts_with("START MESSAGE") {
                            break;
                        }
                        value.push('\n');
                        value.push_str(iter.next().unwrap());
                    }
                }
                fields.push((key.trim().to_owned(), one_line(&value)));
            } else if trimmed == "START MESSAGE" {
                let body: Vec<&str> = iter.by_ref().take_while(|l| *l != "END MESSAGE").collect();
                reason = one_line(&body.join("\n"));
            }
        }
        let extras: String = extras.iter().map(|e| format!(" {e}")).collect();
        let text = if let Some(folder) = action.strip_prefix("store message in folder: ") {
            format!("store {folder}{extras}{}", flags_text(&flags))
        } else if let Some(to) = action.strip_prefix("redirect message to: ") {
            format!("redirect {}{extras}", to.trim_matches(['<', '>']))
        } else if let Some(reason) = action.strip_prefix("reject message with reason: ") {
            format!("reject {}", one_line(reason))
        } else if action == "send vacation message:" {
            let field = |k: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            format!(
                "vacation seconds={} subject={} from={} handle={} reason={reason}",
                field("seconds"),
                field("subject"),
                field("from"),
                field("handle")
            )
        } else {
            action.trim().to_owned()
        };
        lines.push(text);
    }
    lines
}

fn normalize_ours(result: Result<Vec<Action>, String>) -> Vec<String> {
    let Ok(actions) = result else {
        return vec!["error".to_owned()];
    };
    actions
        .into_iter()
        .map(|action| match action {
            Action::Keep { flags } => format!("store INBOX{}", flags_text(&flags)),
            Action::FileInto {
                mailbox,
                flags,
                create,
                copy,
            } => {
                format!(
                    "store {mailbox}{}{}{}",
                    if create { " create" } else { "" },
                    if copy { " copy" } else { "" },
                    flags_text(&flags)
                )
            }
            Action::Redirect { address, copy } => {
                format!("redirect {address}{}", if copy { " copy" } else { "" })
            }
            // sieve-test prints a reason's control characters (its line ends) as '?'.
            Action::Reject { reason, .. } => format!(
                "reject {}",
                reason
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect::<String>()
            ),
            Action::Discard => "discard".to_owned(),
            Action::Vacation(v) => format!(
                "vacation seconds={} subject={} from={} handle={} reason={}",
                v.period_seconds,
                v.subject.unwrap_or_default(),
                v.from.unwrap_or_default(),
                one_line(&v.handle),
                one_line(&v.reason)
            ),
        })
        .collect()
}

fn header_number(message: &[u8], name: &str) -> Option<f64> {
    let text = String::from_utf8_lossy(message);
    text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (field, value) = l.split_once(':')?;
        field
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

fn ours(script: &str, message: &[u8], sender: &str) -> Vec<String> {
    let limits = Limits::default();
    let include = |name: &str, location: Location| {
        let folder = if location == Location::Global {
            "global"
        } else {
            "personal"
        };
        fs::read_to_string(
            data()
                .join("include")
                .join(folder)
                .join(format!("{name}.sieve")),
        )
        .ok()
    };
    let envelope = Envelope {
        from: sender.to_owned(),
        to: RECIPIENT.to_owned(),
        auth: None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ctx = Context {
        message,
        envelope: &envelope,
        spam_score: header_number(message, "X-Spam-Score"),
        virus: header_number(message, "X-Virus-Score").map(|v| v as u8),
        now: Now {
            unix: now,
            offset_minutes: 0,
        },
        include: &include,
    };
    let result = compile(script, &Extensions::all(), &limits)
        .map_err(|e| e.to_string())
        .and_then(|s| run(&s, &ctx, &limits).map_err(|e| e.to_string()));
    normalize_ours(result)
}

/// Runs one script on one message on both sides: whether they agree, and the two
/// normalized action lists (Pigeonhole's first).
pub fn compare(
    pigeonhole: &Pigeonhole,
    name: &str,
    script: &str,
    message: &[u8],
    sender: &str,
) -> (bool, Vec<String>, Vec<String>) {
    let output = pigeonhole.run(name, script, message, sender, false);
    if std::env::var_os("SIEVE_DEBUG").is_some() {
        println!("{output}");
    }
    let mut theirs = normalize_pigeonhole(&output);
    // sieve-test lists a vacation action before deciding whether to send it; only
    // a run with -e tells whether the reply would go (RFC 5230 §4.5's checks).
    if theirs.iter().any(|l| l.starts_with("vacation "))
        && !pigeonhole
            .run(name, script, message, sender, true)
            .contains("sent vacation response")
    {
        theirs.retain(|l| !l.starts_with("vacation "));
    }
    let mine = ours(script, message, sender);
    (mine == theirs, theirs, mine)
}
