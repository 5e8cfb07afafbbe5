//! The benchmark's report: one markdown document with the machine, the versions, every
//! figure of both servers with their ratio, and the targets, met or not, plainly.

use crate::compare::{Case, Figures, Latency, Server};
use crate::rounds::Alternating;
use crate::scale::ScaleFigures;

/// Memory of a server before and with the idle connections (MiB), or why not measured.
pub type IdleMemory = Result<(f64, f64), String>;

/// What one server gave in one measurement, or why it gave nothing.
pub type Outcome<T> = Result<T, String>;

/// Everything one run measured. Each list of outcomes has Posthorn first, then the peers in
/// the order of `servers`.
#[derive(Debug, Default)]
pub struct Results {
    /// Machine, versions, filesystem.
    pub environment: Vec<(String, String)>,
    /// The servers measured, Posthorn first.
    pub servers: Vec<Server>,
    /// Per case: `smtp-source` straight into the sink (msgs/s), then every server's figures.
    pub cases: Vec<(Case, Outcome<f64>, Vec<Outcome<Figures>>)>,
    /// Idle connections: how many, and each server's PSS before and with them.
    pub idle: Option<(usize, Vec<IdleMemory>)>,
    /// DATA-to-250 while another program writes to the queues' filesystem.
    pub write_load: Option<(Case, Vec<Outcome<Latency>>)>,
    /// The large-queue figures.
    pub scale: Option<ScaleFigures>,
    /// Posthorn's e2e rate at fewer clients then at many, in alternating rounds.
    pub scaling: Option<(Case, Case, Alternating)>,
}

fn size_name(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size >> 10)
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}", ours / theirs)
    } else {
        "-".into()
    }
}

/// A figure of one server, or why it is missing.
fn cell<T>(outcome: &Outcome<T>, pick: impl Fn(&T) -> f64, decimals: usize) -> String {
    match outcome {
        Ok(value) => format!("{:.decimals$}", pick(value)),
        Err(e) => format!("failed: {}", e.replace(['\n', '|'], " ")),
    }
}

/// The header of a table with one column per server and a ratio column per peer.
fn table_header(first: &str, servers: &[Server]) -> String {
    let mut header = format!("| {first} |");
    let mut rule = String::from("|---|");
    for (i, server) in servers.iter().enumerate() {
        header.push_str(&format!(" {} |", server.name()));
        rule.push_str("---:|");
        if i > 0 {
            header.push_str(&format!(" ratio to {} |", server.name()));
            rule.push_str("---:|");
        }
    }
    format!("{header}\n{rule}\n")
}

/// One table row: every server's figure and Posthorn's ratio to each peer.
fn table_row<T>(
    label: &str,
    outcomes: &[Outcome<T>],
    pick: impl Fn(&T) -> f64,
    decimals: usize,
) -> String {
    let mut row = format!("| {label} |");
    let ours = outcomes.first().and_then(|o| o.as_ref().ok()).map(&pick);
    for (i, outcome) in outcomes.iter().enumerate() {
        row.push_str(&format!(" {} |", cell(outcome, &pick, decimals)));
        if i > 0 {
            let theirs = outcome.as_ref().ok().map(&pick);
            let r = match (ours, theirs) {
                (Some(o), Some(t)) => ratio(o, t),
                _ => "-".into(),
            };
            row.push_str(&format!(" {r} |"));
        }
    }
    row.push('\n');
    row
}

impl Results {
    /// The markdown document.
    pub fn markdown(&self) -> String {
        let names: Vec<&str> = self.servers.iter().map(|s| s.name()).collect();
        let mut out = format!("# {}, side by side\n\n| | |\n|---|---|\n", names.join(", "));
        for (key, value) in &self.environment {
            out.push_str(&format!("| {key} | {value} |\n"));
        }
        if !self.cases.is_empty() {
            out.push_str(
                "\nEvery server accepts any recipient from loopback and relays everything to \
                 the benchmark's sink on loopback (`fast_sink.rs`: Postfix's `smtp-sink` took at \
                 most ~240 MiB/s and measured itself with 1 MiB messages), with its queue on the filesystem above and \
                 its own way of making a message durable before the 250 (Posthorn: `fdatasync` per \
                 file, many at once, into files whose names were made durable ahead by one \
                 fsync of the folder per batch; Postfix and Exim: `fsync` per file); each case starts it afresh. \
                 Loopback is a trusted network for all three, so none checks SPF/DKIM/DMARC or \
                 signs. Each has the same room: 20 000 connections, no per-client limits, a \
                 listen queue of 4096 (Postfix: `default_process_limit = 20000`, so up to 20 000 \
                 smtpd processes; Exim: `smtp_accept_max = 20000`, no load-based queueing); \
                 delivery concurrency is each one's default (Postfix: 20 connections to the \
                 sink; Exim: one delivery process per message). Throughput: Postfix's \
                 `smtp-source`, a new connection per message. **accept** = messages/s while \
                 the clients send; **e2e** = messages/s until the sink has them all; \
                 **p50/p99** = time from the end of DATA to the 250, from our own generator (up \
                 to 3000 messages, same clients and size; failures are counted, not timed); \
                 **CPU** = CPU seconds of the server's processes per 1000 messages; **memory** = \
                 peak PSS of the server's processes. Exim gets a tenth of each case's messages (it \
                 holds every connection ~0.2 s after the message, before its 221 to a pipelined \
                 QUIT, which also bounds its throughput here). Ratio = Posthorn / the peer (above 1 is \
                 better for throughput, below 1 for the rest).\n\n",
            );
            out.push_str(&table_header(
                "clients, size, messages: figure",
                &self.servers,
            ));
            type Pick = fn(&Figures) -> f64;
            let rows: [(&str, Pick, usize); 7] = [
                ("accept msgs/s", |f| f.accept, 0),
                ("e2e msgs/s", |f| f.end_to_end, 0),
                ("DATA-to-250 p50 ms", |f| f.p50_ms, 2),
                ("DATA-to-250 p99 ms", |f| f.p99_ms, 2),
                ("latency probes failed", |f| f.latency_failures as f64, 0),
                ("CPU s / 1000 msgs", |f| f.cpu_per_1000, 2),
                ("peak memory MiB", |f| f.peak_mib, 1),
            ];
            for (case, _, outcomes) in &self.cases {
                for (name, pick, decimals) in rows {
                    let label = format!(
                        "{} × {} × {}: {name}",
                        case.concurrency,
                        size_name(case.size),
                        case.messages
                    );
                    out.push_str(&table_row(&label, outcomes, pick, decimals));
                }
            }
        }
        if !self.cases.is_empty() {
            out.push_str(
                "\nThe ceiling: `smtp-source` straight into the sink, no server between, \
                 msgs/s (both tools run beside the server in every case, on the same cores):",
            );
            for (case, alone, _) in &self.cases {
                out.push_str(&format!(
                    " {} × {}: {};",
                    case.concurrency,
                    size_name(case.size),
                    cell(alone, |r| *r, 0)
                ));
            }
            out.push('\n');
        }
        if let Some((fewer, many, rates)) = &self.scaling {
            out.push_str(&format!(
                "\n## {} clients against {} (Posthorn)\n\nOne run of each case above is \
                 decided by this machine's drift (±15% from one minute to the next), so these \
                 two cases run again in alternating rounds, each server start afresh, {} \
                 messages of {} a round.\n\n| clients | e2e msgs/s (median) | rounds |\n|---|---|---|\n\
                 | {} | {:.0} | {} |\n| {} | {:.0} | {} |\n\n{} clients against {}: **{:.2}×**, \
                 the median of the rounds' own ratios (a drift that moves both runs of a round \
                 cancels in their ratio).\n",
                many.concurrency,
                fewer.concurrency,
                fewer.messages,
                size_name(fewer.size),
                fewer.concurrency,
                Alternating::median(&rates.first),
                Alternating::list(&rates.first),
                many.concurrency,
                Alternating::median(&rates.second),
                Alternating::list(&rates.second),
                many.concurrency,
                fewer.concurrency,
                rates.ratio(),
            ));
        }
        if let Some((case, outcomes)) = &self.write_load {
            out.push_str(&format!(
                "\n## DATA-to-250 while another program writes\n\n{} clients, {} messages, {} \
                 of them, while `dd` rewrites a 1 GiB file on the queues' filesystem without \
                 pause (page cache, no sync of its own).\n\n",
                case.concurrency,
                size_name(case.size),
                case.messages
            ));
            out.push_str(&table_header("figure", &self.servers));
            type Pick = fn(&Latency) -> f64;
            let rows: [(&str, Pick, usize); 3] = [
                ("p50 ms", |l| l.p50_ms, 2),
                ("p99 ms", |l| l.p99_ms, 2),
                ("failed", |l| l.failed as f64, 0),
            ];
            for (name, pick, decimals) in rows {
                out.push_str(&table_row(name, outcomes, pick, decimals));
            }
        }
        if let Some((count, outcomes)) = &self.idle {
            out.push_str(&format!(
                "\n## {count} idle connections (greeted, EHLO sent)\n\n"
            ));
            out.push_str(&table_header("PSS, MiB", &self.servers));
            out.push_str(&table_row("before", outcomes, |p| p.0, 1));
            out.push_str(&table_row("with them", outcomes, |p| p.1, 1));
        }
        if let Some(scale) = &self.scale {
            let per_message = (scale.pss_mib - scale.small_pss_mib).max(0.0) * 1024.0 * 1024.0
                / scale.messages.saturating_sub(scale.probe).max(1) as f64;
            out.push_str(&format!(
                "\n## A queue of {} messages (Posthorn)\n\n| | |\n|---|---:|\n\
                 | written (4 threads, one sync(2) at the end) | {:.0} s |\n\
                 | start to first greeting (recovery scans the spool) | {:.2} s ({:.1} µs per message) |\n\
                 | peak memory delivering from it / from a queue of {} | {:.1} MiB / {:.1} MiB ({per_message:.0} octets per extra queued message) |\n\
                 | delivery rate, first {} out of the large queue | {:.0} msgs/s |\n\
                 | delivery rate, a queue of {} | {:.0} msgs/s |\n\
                 | page cache emptied before each delivery run | {} |\n",
                scale.messages,
                scale.fill_secs,
                scale.start_secs,
                scale.start_secs * 1e6 / scale.messages as f64,
                scale.probe,
                scale.pss_mib,
                scale.small_pss_mib,
                scale.probe,
                scale.large_rate,
                scale.probe,
                scale.small_rate,
                if scale.cold_cache {
                    "yes: both queues are read from disk"
                } else {
                    "no (not root): the small queue is read from cache, the large one partly from disk"
                },
            ));
        }
        out.push_str(&self.targets());
        out
    }

    /// The targets against what was measured.
    fn targets(&self) -> String {
        let mut out = String::from("\n## Targets\n\n| target | measured | met |\n|---|---|---|\n");
        let mut row = |target: &str, measured: String, met: Option<bool>| {
            let verdict = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            out.push_str(&format!("| {target} | {measured} | {verdict} |\n"));
        };
        // Posthorn's figures of a case, and the first peer's (Postfix) when measured.
        let figures = |clients: usize, large: bool| {
            self.cases
                .iter()
                .find(|(c, _, _)| c.concurrency == clients && (c.size >= 1 << 20) == large)
                .map(|(_, _, outcomes)| {
                    let get = |i: usize| outcomes.get(i).and_then(|o| o.as_ref().ok());
                    (get(0), get(1))
                })
        };
        let peer = self.servers.get(1).map_or("the peer", |s| s.name());
        for (clients, factor) in [(50, 2.0), (1, 1.0)] {
            let target = format!("e2e ≥ {factor}× {peer} at {clients} client(s), 4 KiB");
            match figures(clients, false) {
                Some((Some(ours), Some(theirs))) => {
                    let r = ours.end_to_end / theirs.end_to_end;
                    row(&target, format!("{r:.2}×"), Some(r >= factor));
                }
                _ => row(&target, "-".into(), None),
            }
        }
        let target = "DATA-to-250 p99 < 5 ms at 10 clients, 4 KiB";
        match figures(10, false) {
            Some((Some(ours), _)) => row(
                target,
                format!("{:.2} ms", ours.p99_ms),
                Some(ours.p99_ms < 5.0),
            ),
            _ => row(target, "-".into(), None),
        }
        let target = "e2e at 500 clients ≥ at 50 clients, 4 KiB";
        match (&self.scaling, figures(500, false), figures(50, false)) {
            (Some((_, _, rates)), _, _) => row(
                target,
                format!(
                    "{:.2}× over {} alternating rounds (medians {:.0} vs {:.0} msgs/s)",
                    rates.ratio(),
                    rates.first.len(),
                    Alternating::median(&rates.second),
                    Alternating::median(&rates.first),
                ),
                Some(rates.ratio() >= 1.0),
            ),
            (None, Some((Some(many), _)), Some((Some(fewer), _))) => row(
                target,
                format!(
                    "{:.0} vs {:.0} msgs/s (one run each)",
                    many.end_to_end, fewer.end_to_end
                ),
                Some(many.end_to_end >= fewer.end_to_end),
            ),
            _ => row(target, "-".into(), None),
        }
        for clients in [1, 10, 50, 500] {
            let target = format!("1 MiB e2e within 10% of accept, {clients} client(s)");
            if let Some((Some(ours), _)) = figures(clients, true) {
                row(
                    &target,
                    format!("{:.0} vs {:.0} msgs/s", ours.end_to_end, ours.accept),
                    Some(ours.end_to_end >= 0.9 * ours.accept),
                );
            }
        }
        match &self.idle {
            Some((count, outcomes)) => match outcomes.first() {
                Some(Ok((_, with))) => row(
                    &format!("{count} idle connections under 200 MB"),
                    format!("{with:.1} MiB"),
                    Some(*with < 200.0),
                ),
                _ => row(
                    &format!("{count} idle connections under 200 MB"),
                    "-".into(),
                    None,
                ),
            },
            None => row("idle connections under 200 MB", "-".into(), None),
        }
        if let Some(scale) = &self.scale {
            let slowdown = scale.small_rate / scale.large_rate.max(f64::MIN_POSITIVE);
            row(
                "per-delivery cost does not grow with queue size",
                format!(
                    "{:.0} msgs/s with {} queued vs {:.0} with {}",
                    scale.large_rate, scale.messages, scale.small_rate, scale.probe
                ),
                Some(slowdown < 1.5),
            );
        }
        out
    }
}
