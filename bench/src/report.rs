//! The benchmark's report: one markdown document with the machine, the versions, every
//! figure of both servers with their ratio, and the targets, met or not, plainly.

use crate::compare::{Case, Figures};
use crate::scale::ScaleFigures;

/// Memory of a server before and with the idle connections (MiB), or why not measured.
pub type IdleMemory = Result<(f64, f64), String>;

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Results {
    /// Machine and versions.
    pub environment: Vec<(String, String)>,
    /// Per case: Posthorn's and Postfix's figures (Postfix's missing if not measured).
    pub cases: Vec<(Case, Figures, Option<Figures>)>,
    /// Idle connections: how many, and each server's PSS before and with them (or why not).
    pub idle: Option<(usize, IdleMemory, IdleMemory)>,
    /// The large-queue figures.
    pub scale: Option<ScaleFigures>,
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

impl Results {
    /// The markdown document.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Posthorn and Postfix, side by side\n\n| | |\n|---|---|\n");
        for (key, value) in &self.environment {
            out.push_str(&format!("| {key} | {value} |\n"));
        }
        if !self.cases.is_empty() {
            out.push_str(
            "\nBoth servers accept any recipient from loopback and relay everything to Postfix's \
             `smtp-sink` on loopback, each with its durable queue (fsync on); each case starts both \
             afresh. Throughput: Postfix's `smtp-source`, a new connection per message. \
             **accept** = messages/s while the clients send; **e2e** = messages/s until the sink \
             has them all; **p50/p99** = time from the end of DATA to the 250, from our own \
             generator (up to 3000 messages, same clients and size); **CPU** = CPU seconds of the \
             server's processes per 1000 messages; **memory** = peak PSS of the server's processes. \
             Ratio = Posthorn / Postfix (above 1 is better for throughput, below 1 for the rest).\n\n",
        );
            out.push_str("| clients | size | messages | figure | Posthorn | Postfix | ratio |\n|---:|---:|---:|---|---:|---:|---:|\n");
            for (case, ours, theirs) in &self.cases {
                let rows: [(&str, f64, Option<f64>, usize); 6] = [
                    (
                        "accept msgs/s",
                        ours.accept,
                        theirs.as_ref().map(|t| t.accept),
                        0,
                    ),
                    (
                        "e2e msgs/s",
                        ours.end_to_end,
                        theirs.as_ref().map(|t| t.end_to_end),
                        0,
                    ),
                    (
                        "DATA-to-250 p50 ms",
                        ours.p50_ms,
                        theirs.as_ref().map(|t| t.p50_ms),
                        2,
                    ),
                    (
                        "DATA-to-250 p99 ms",
                        ours.p99_ms,
                        theirs.as_ref().map(|t| t.p99_ms),
                        2,
                    ),
                    (
                        "CPU s / 1000 msgs",
                        ours.cpu_per_1000,
                        theirs.as_ref().map(|t| t.cpu_per_1000),
                        2,
                    ),
                    (
                        "peak memory MiB",
                        ours.peak_mib,
                        theirs.as_ref().map(|t| t.peak_mib),
                        1,
                    ),
                ];
                for (name, value, other, decimals) in rows {
                    let name = match (name, theirs.as_ref()) {
                        ("DATA-to-250 p99 ms", Some(t))
                            if t.latency_failures + ours.latency_failures > 0 =>
                        {
                            format!(
                                "{name} (timed out or failed: Posthorn {}, Postfix {})",
                                ours.latency_failures, t.latency_failures
                            )
                        }
                        _ => name.to_string(),
                    };
                    out.push_str(&format!(
                        "| {} | {} | {} | {name} | {value:.decimals$} | {} | {} |\n",
                        case.concurrency,
                        size_name(case.size),
                        case.messages,
                        other.map_or_else(|| "-".into(), |o| format!("{o:.decimals$}")),
                        other.map_or_else(|| "-".into(), |o| ratio(value, o)),
                    ));
                }
            }
        }
        if let Some((count, ours, theirs)) = &self.idle {
            out.push_str(&format!("\n## {count} idle connections (greeted, EHLO sent)\n\n| | Posthorn | Postfix |\n|---|---:|---:|\n"));
            let show = |r: &IdleMemory, pick: fn(&(f64, f64)) -> f64| match r {
                Ok(pair) => format!("{:.1} MiB", pick(pair)),
                Err(e) => format!("not measured: {e}"),
            };
            out.push_str(&format!(
                "| memory before | {} | {} |\n",
                show(ours, |p| p.0),
                show(theirs, |p| p.0)
            ));
            out.push_str(&format!(
                "| memory with them | {} | {} |\n",
                show(ours, |p| p.1),
                show(theirs, |p| p.1)
            ));
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
        let case = |clients: usize| {
            self.cases
                .iter()
                .find(|(c, _, _)| c.concurrency == clients && c.size < (1 << 20))
        };
        for (clients, factor) in [(50, 2.0), (1, 1.0)] {
            let target = format!("e2e ≥ {factor}× Postfix at {clients} client(s), 4 KiB");
            match case(clients) {
                Some((_, ours, Some(theirs))) => {
                    let r = ours.end_to_end / theirs.end_to_end;
                    row(&target, format!("{r:.2}×"), Some(r >= factor));
                }
                _ => row(&target, "-".into(), None),
            }
        }
        match case(10) {
            Some((_, ours, _)) => row(
                "DATA-to-250 p99 < 5 ms at 10 clients",
                format!("{:.2} ms", ours.p99_ms),
                Some(ours.p99_ms < 5.0),
            ),
            None => row("DATA-to-250 p99 < 5 ms at 10 clients", "-".into(), None),
        }
        match &self.idle {
            Some((count, Ok((_, with)), _)) => row(
                &format!("{count} idle connections under 200 MB"),
                format!("{with:.1} MiB"),
                Some(*with < 200.0),
            ),
            _ => row("10000 idle connections under 200 MB", "-".into(), None),
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
