//! The IMAP comparison's report: the machine, the versions and settings, the method, and
//! one table with both servers' figures, their ratio and which is better, losses as plainly
//! as wins.

use std::path::Path;
use std::time::Duration;

use crate::compare::{machine_facts, output_of};
use crate::imap::dovecot;
use crate::imap::servers::ImapServer;
use crate::imap::workloads::{LargeSession, Tally};
use crate::imap::{BusyRun, Figures, Large, Memory, Results, SETTLE};

/// Whether more of a figure is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// One row: its label, which way is better, and each server's value or why it has none.
struct Row {
    label: String,
    better: Better,
    values: Vec<Result<f64, String>>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

/// A row from each server's outcome.
fn row<T>(
    label: impl Into<String>,
    better: Better,
    outcomes: &[(ImapServer, Result<T, String>)],
    pick: impl Fn(&T) -> f64,
) -> Row {
    Row {
        label: label.into(),
        better,
        values: outcomes
            .iter()
            .map(|(_, outcome)| outcome.as_ref().map(&pick).map_err(Clone::clone))
            .collect(),
    }
}

/// Failures of a tally, for its row's label.
fn failures(tally: &Tally) -> String {
    match &tally.first_error {
        Some(e) if tally.failed > 0 => format!(" ({} failed: {})", tally.failed, e),
        _ => String::new(),
    }
}

fn render(rows: &[Row], servers: &[ImapServer]) -> String {
    let mut out = String::from("| measurement |");
    for server in servers {
        out.push_str(&format!(" {} |", server.name()));
    }
    out.push_str(" Posthorn ÷ Dovecot | better |\n|---|");
    out.push_str(&"---:|".repeat(servers.len()));
    out.push_str("---:|---|\n");
    for row in rows {
        out.push_str(&format!("| {} |", row.label.replace('|', "/")));
        for value in &row.values {
            match value {
                Ok(v) if *v >= 100.0 => out.push_str(&format!(" {v:.0} |")),
                Ok(v) => out.push_str(&format!(" {v:.2} |")),
                Err(e) => out.push_str(&format!(" failed: {} |", e.replace(['\n', '|'], " "))),
            }
        }
        match (row.values.first(), row.values.get(1)) {
            (Some(Ok(ours)), Some(Ok(theirs))) if *theirs > 0.0 => {
                let ratio = ours / theirs;
                let ours_better = match row.better {
                    Better::Higher => ratio > 1.0,
                    Better::Lower => ratio < 1.0,
                };
                let winner = if (ratio - 1.0).abs() < 0.05 {
                    "even"
                } else if ours_better {
                    "Posthorn"
                } else {
                    "**Dovecot**"
                };
                out.push_str(&format!(" {ratio:.2} | {winner} |\n"));
            }
            _ => out.push_str(" - | - |\n"),
        }
    }
    out
}

/// One of a server's busy runs.
type RunOf = fn(&Figures) -> &BusyRun;
/// One of a server's large-mailbox sessions.
type SessionOf = fn(&Large) -> &LargeSession;
/// The time of one step of a large-mailbox session.
type StepTime = fn(&LargeSession) -> Duration;

fn ordinary_rows(results: &Results) -> Vec<Row> {
    let f = &results.figures;
    let plan = &results.plan;
    let mem = |label: &str, pick: &dyn Fn(&Figures) -> Memory| {
        [
            row(
                format!("{label}, RSS sum MiB"),
                Better::Lower,
                f,
                move |x| mib(pick(x).rss),
            ),
            row(
                format!("{label}, PSS sum MiB"),
                Better::Lower,
                f,
                move |x| mib(pick(x).pss),
            ),
        ]
    };
    let tally_label = |what: &str, pick: &dyn Fn(&Figures) -> &Tally| {
        let failed: String = f
            .iter()
            .filter_map(|(server, o)| {
                let text = failures(pick(o.as_ref().ok()?));
                (!text.is_empty()).then(|| format!(" {}{text}", server.name()))
            })
            .collect();
        format!("{what}{failed}")
    };
    let mut rows = Vec::new();
    rows.extend(mem("idle, nobody connected", &|x| x.idle));
    let runs: [(&str, RunOf); 2] = [
        ("first logins among them", |x| &x.busy_first),
        ("again, logins cached", |x| &x.busy_again),
    ];
    for (run, pick) in runs {
        rows.extend(mem(
            &format!("peak, {} busy clients ({run})", plan.busy_clients),
            &|x| pick(x).peak,
        ));
        rows.extend(mem(
            &format!("{} s after they left", SETTLE.as_secs()),
            &|x| pick(x).after,
        ));
        rows.push(row(
            tally_label(&format!("busy clients' commands/s ({run})"), &|x| {
                &pick(x).tally
            }),
            Better::Higher,
            f,
            move |x| pick(x).tally.per_second(),
        ));
    }
    rows.push(row(
        tally_label(
            &format!(
                "first logins/s ({} users once each, {} clients)",
                plan.fresh_users, plan.rate_clients
            ),
            &|x| &x.first_logins,
        ),
        Better::Higher,
        f,
        |x| x.first_logins.per_second(),
    ));
    rows.push(row(
        tally_label(
            &format!(
                "repeated logins/s (one user, {} clients)",
                plan.rate_clients
            ),
            &|x| &x.repeat_logins,
        ),
        Better::Higher,
        f,
        |x| x.repeat_logins.per_second(),
    ));
    let ops = f
        .iter()
        .find_map(|(_, o)| o.as_ref().ok())
        .map(|x| x.ops.iter().map(|(op, _, _)| *op).collect::<Vec<_>>())
        .unwrap_or_default();
    for (i, op) in ops.into_iter().enumerate() {
        let hits: Vec<String> = f
            .iter()
            .filter_map(|(_, o)| o.as_ref().ok()?.ops.get(i).map(|(_, _, h)| h.to_string()))
            .collect();
        let hits = if op.name().contains("SEARCH") {
            format!(", hits {}", hits.join(" / "))
        } else {
            String::new()
        };
        let failed: String = f
            .iter()
            .filter_map(|(server, o)| {
                let text = failures(&o.as_ref().ok()?.ops.get(i)?.1);
                (!text.is_empty()).then(|| format!(" {}{text}", server.name()))
            })
            .collect();
        rows.push(row(
            format!(
                "{}/s ({} messages, {} clients{hits}){failed}",
                op.name(),
                plan.messages,
                plan.rate_clients
            ),
            Better::Higher,
            f,
            move |x| x.ops.get(i).map_or(0.0, |(_, t, _)| t.per_second()),
        ));
    }
    rows
}

fn large_rows(results: &Results) -> Vec<Row> {
    let l = &results.large;
    let n = results.plan.large;
    let mut rows = Vec::new();
    let steps: [(&str, StepTime); 4] = [
        ("SELECT INBOX", |s| s.select),
        ("FETCH 50 newest (FLAGS ENVELOPE)", |s| s.fetch_newest),
        ("UID SEARCH SUBJECT", |s| s.search_subject.0),
        ("UID SEARCH FROM", |s| s.search_from.0),
    ];
    let sessions: [(&str, SessionOf); 2] = [("first", |x| &x.first), ("again", |x| &x.warm)];
    for (session, pick) in sessions {
        for (step, time) in steps {
            rows.push(row(
                format!("{n} messages, {session}: {step} ms"),
                Better::Lower,
                l,
                move |x| ms(time(pick(x))),
            ));
        }
    }
    rows.push(row(
        format!("{n} messages: peak RSS sum MiB"),
        Better::Lower,
        l,
        |x| mib(x.peak.rss),
    ));
    rows.push(row(
        format!("{n} messages: peak PSS sum MiB"),
        Better::Lower,
        l,
        |x| mib(x.peak.pss),
    ));
    rows.push(row(
        format!("{n} messages: PSS sum MiB {} s after", SETTLE.as_secs()),
        Better::Lower,
        l,
        |x| mib(x.after.pss),
    ));
    rows
}

impl Results {
    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let servers: Vec<ImapServer> = self.figures.iter().map(|(s, _)| *s).collect();
        let mut out = String::from("# Posthorn's IMAP server beside Dovecot\n\n| | |\n|---|---|\n");
        for (key, value) in &self.environment {
            out.push_str(&format!("| {key} | {} |\n", value.replace('|', "/")));
        }
        out.push_str(&method(self));
        out.push_str("\n## Figures\n\n");
        out.push_str(&render(&ordinary_rows(self), &servers));
        if !self.large.is_empty() {
            out.push_str("\n## A large mailbox\n\n");
            let hits: Vec<String> = self
                .large
                .iter()
                .filter_map(|(server, o)| {
                    let x = o.as_ref().ok()?;
                    Some(format!(
                        "{}: {} messages selected; SUBJECT {} hits, FROM {} hits",
                        server.name(),
                        x.first.exists,
                        x.first.search_subject.1,
                        x.first.search_from.1
                    ))
                })
                .collect();
            out.push_str(&format!("{}.\n\n", hits.join("; ")));
            out.push_str(&render(&large_rows(self), &servers));
        }
        out
    }
}

fn method(results: &Results) -> String {
    let p = &results.plan;
    format!(
        "\n## Method\n\n\
         `bench/run.sh imap` (`posthorn-bench imap`, `bench/src/imap/`). Both servers run on loopback, \
         plain IMAP with LOGIN (no TLS on either), started afresh for each group below, with the same \
         users, all with one argon2id hash made by `doveadm pw -s ARGON2ID` (the parameters in the table \
         above: both servers check the same cost), and hard-linked copies of the same generated Maildir \
         (about 4 KiB messages with varied senders, subjects, threads, list headers, one in three \
         multipart; the older ones in `cur/` mostly seen, 1% in `new/`). Dovecot: Debian's binaries with a \
         configuration of its own (`bench/src/imap/dovecot.rs`), run as `nobody` with `-F`, built-in \
         defaults otherwise (one `imap-login` process per connection, one `imap` process per session), \
         `{cache}`, `mail_location = maildir:`. Posthorn: its defaults (`auth.cache_ttl` 10 min), an `imap` \
         listener that allows LOGIN without TLS. The load generator is ours (tokio, a small IMAP client), \
         on the same {cores} cores as the server. Memory is read from /proc every {sample} ms for the \
         server's whole process tree: the sum of RSS (libraries shared by Dovecot's processes counted in \
         each) and the sum of PSS (shared pages divided among the sharers, the fairer figure for a \
         multi-process server).\n\n\
         - **busy clients**: {busy} clients, one user each (a {messages}-message INBOX each), for {busy_for} s, \
         sessions of LOGIN, SELECT INBOX, 20 commands (30% FETCH of 10 messages' FLAGS ENVELOPE, 15% FETCH \
         of a whole message, 5% SEARCH SUBJECT, 5% SEARCH FROM, 20% STORE ±\\Flagged, 15% NOOP, 10% IDLE for \
         200 ms), LOGOUT, over and over; every command counts in commands/s.\n\
         - **first logins**: {fresh} users that never logged in, each once (connect, LOGIN, LOGOUT), by \
         {rate} clients: every login pays the argon2id check, no cache can help. **repeated logins**: one \
         user (logged in before) for {rate_for} s by {rate} clients, what an auth cache is for.\n\
         - **commands/s**: {rate} sessions of one user (INBOX of {messages} messages) sending one command \
         as fast as the answers come, for {rate_for} s each; the SEARCH hits are shown for both servers \
         (they must agree).\n\
         - **large mailbox**: one user with {large} messages, a fresh server; the page cache is dropped \
         (`/proc/sys/vm/drop_caches`), then one session times SELECT, a FETCH of the 50 newest, SEARCH \
         SUBJECT and SEARCH FROM (\"first\": the server has no index of its own yet, the files are on \
         disk; SEARCH FROM comes after SEARCH SUBJECT has read every file, so its \"first\" is on a warm \
         page cache), and a second session does the same (\"again\").\n\n\
         Ratio = Posthorn ÷ Dovecot; **better** names the winner (within 5%: even), Dovecot's wins in bold.\n",
        cache = dovecot::AUTH_CACHE.join("`, `"),
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        sample = 50,
        busy = p.busy_clients,
        messages = p.messages,
        busy_for = p.busy_for.as_secs(),
        fresh = p.fresh_users,
        rate = p.rate_clients,
        rate_for = p.rate_for.as_secs(),
        large = p.large,
    )
}

/// Facts about the machine, the software and the settings, for the report's header.
pub fn environment(posthorn: &Path, work: &Path, hash: &str) -> Vec<(String, String)> {
    let filesystem = output_of("df", &["--output=fstype,source", &work.to_string_lossy()])
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let parameters = hash.split('$').nth(3).unwrap_or_default().to_string();
    let mut facts = machine_facts(posthorn);
    facts.extend([
        ("dovecot".into(), dovecot::version()),
        (
            "mail on".into(),
            format!("{} ({filesystem})", work.display()),
        ),
        ("argon2id parameters".into(), parameters),
    ]);
    facts
}
