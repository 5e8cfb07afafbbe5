//! `posthorn-bench`: compare Posthorn with Postfix, generate load, run the crash soak.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use posthorn_bench::compare::{self, Case, Server};
use posthorn_bench::load::{self, Spec};
use posthorn_bench::procs;
use posthorn_bench::report::Results;
use posthorn_bench::scale;
use posthorn_bench::soak::{self, SoakSpec};

#[derive(Parser)]
#[command(name = "posthorn-bench", about = "Posthorn's benchmark and crash soak")]
struct Cli {
    /// The posthorn binary to measure.
    #[arg(long, default_value = "target/release/posthorn")]
    posthorn: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Posthorn and Postfix side by side: every case, idle connections, a large queue; one
    /// markdown report.
    Compare {
        /// Fewer messages per case (a few minutes instead of a quarter of an hour).
        #[arg(long)]
        quick: bool,
        /// Only Posthorn (when Postfix is not installed).
        #[arg(long)]
        skip_postfix: bool,
        /// Messages in the large-queue test (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        queue: usize,
        /// Idle connections to hold (0 skips it).
        #[arg(long, default_value_t = 10_000)]
        idle: usize,
        /// Where to write the report.
        #[arg(long, default_value = "bench/results/latest.md")]
        out: PathBuf,
    },
    /// Only the large-queue test: start-up on a big spool, memory per message, delivery
    /// rate with a big and a small queue.
    Scale {
        /// Messages in the large queue.
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        /// Deliveries timed, and the size of the small queue.
        #[arg(long, default_value_t = 20_000)]
        probe: usize,
    },
    /// Send messages to a running server and report throughput and DATA-to-250 latency.
    Load {
        /// The server.
        #[arg(long)]
        target: std::net::SocketAddr,
        /// Messages to send.
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Connections at once.
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        /// Message size in octets.
        #[arg(long, default_value_t = 4096)]
        size: usize,
        /// Keep connections open between messages.
        #[arg(long)]
        reuse: bool,
        /// Envelope recipient.
        #[arg(long, default_value = "to@example.org")]
        to: String,
    },
    /// Kill Posthorn at random moments while mail pours in; check nothing is lost.
    Soak {
        /// Messages to get acknowledged.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Clients sending at once.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Deliver into a local Maildir instead of relaying to a sink.
        #[arg(long)]
        local: bool,
        /// Shortest wait between kills, in milliseconds.
        #[arg(long, default_value_t = 300)]
        kill_min: u64,
        /// Longest wait between kills, in milliseconds.
        #[arg(long, default_value_t = 3000)]
        kill_max: u64,
    },
}

/// Runs every measurement.
fn compare(
    posthorn: &std::path::Path,
    quick: bool,
    skip_postfix: bool,
    queue: usize,
    idle: usize,
) -> anyhow::Result<Results> {
    anyhow::ensure!(
        posthorn.exists(),
        "{} not found: build it with cargo build --release -p posthorn",
        posthorn.display()
    );
    let (small, large) = if quick { (2_000, 100) } else { (20_000, 500) };
    let mut results = Results {
        environment: compare::environment(posthorn),
        ..Results::default()
    };
    for size in [4096, 1 << 20] {
        for concurrency in [1, 10, 50, 500] {
            let case = Case {
                concurrency,
                size,
                messages: if size < (1 << 20) { small } else { large },
            };
            eprintln!(
                "case: {concurrency} clients, {size} octets, {} messages",
                case.messages
            );
            let ours = compare::measure(Server::Posthorn, posthorn, case)?;
            eprintln!("  posthorn: {ours:?}");
            let theirs = if skip_postfix {
                None
            } else {
                let theirs = compare::measure(Server::Postfix, posthorn, case)?;
                eprintln!("  postfix:  {theirs:?}");
                Some(theirs)
            };
            results.cases.push((case, ours, theirs));
        }
    }
    if idle > 0 {
        eprintln!("idle: {idle} connections");
        let ours = compare::idle_memory(Server::Posthorn, posthorn, idle);
        let theirs = if skip_postfix {
            Err("skipped".into())
        } else {
            compare::idle_memory(Server::Postfix, posthorn, idle)
        };
        results.idle = Some((idle, ours, theirs));
    }
    if queue > 0 {
        eprintln!("large queue: {queue} messages");
        results.scale = Some(scale::measure(posthorn, queue, queue.min(20_000))?);
    }
    Ok(results)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare {
            quick,
            skip_postfix,
            queue,
            idle,
            out,
        } => {
            procs::raise_file_limit();
            match compare(&cli.posthorn, quick, skip_postfix, queue, idle) {
                Ok(results) => {
                    let text = results.markdown();
                    println!("{text}");
                    if let Some(parent) = out.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    if let Err(e) = std::fs::write(&out, &text) {
                        eprintln!("cannot write {}: {e}", out.display());
                        return ExitCode::FAILURE;
                    }
                    eprintln!("report written to {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("benchmark failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Scale { messages, probe } => {
            match scale::measure(&cli.posthorn, messages, probe) {
                Ok(figures) => {
                    let results = Results {
                        scale: Some(figures),
                        ..Results::default()
                    };
                    println!("{}", results.markdown());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("scale test failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Load {
            target,
            messages,
            concurrency,
            size,
            reuse,
            to,
        } => {
            let spec = Spec {
                target,
                messages,
                concurrency,
                size,
                reuse,
                from: "from@example.com".into(),
                to,
                tag: "load".into(),
                persist: false,
                timeout: std::time::Duration::from_secs(60),
            };
            let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            else {
                return ExitCode::FAILURE;
            };
            let report = runtime.block_on(load::run(spec));
            let secs = report.elapsed.as_secs_f64();
            println!(
                "acknowledged {} failed {} in {secs:.2} s: {:.0} msgs/s; DATA-to-250 p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                report.acknowledged.len(),
                report.failed,
                report.acknowledged.len() as f64 / secs,
                report.latency(0.5).as_secs_f64() * 1000.0,
                report.latency(0.99).as_secs_f64() * 1000.0,
                report.latency(1.0).as_secs_f64() * 1000.0,
            );
            if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Soak {
            messages,
            clients,
            local,
            kill_min,
            kill_max,
        } => {
            let spec = SoakSpec {
                binary: cli.posthorn,
                messages,
                clients,
                local,
                kill_every: (kill_min, kill_max),
            };
            match soak::run(&spec) {
                Ok(report) => {
                    println!("{report}");
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("soak could not run: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
