//! `posthorn-bench`: compare Posthorn with Postfix and Exim (SMTP) and Dovecot (IMAP),
//! generate load, run the crash soak.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use posthorn_bench::checks;
use posthorn_bench::compare::{self, Binaries, Case, Server};
use posthorn_bench::filesystem::Filesystem;
use posthorn_bench::imap;
use posthorn_bench::load::{self, Spec};
use posthorn_bench::procs;
use posthorn_bench::report::Results;
use posthorn_bench::rounds::Alternating;
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
    /// Posthorn, Postfix and Exim side by side: every case, latency under another program's
    /// writes, idle connections, a large queue; one markdown report.
    Compare {
        /// Fewer messages per case (about a quarter of an hour with both peers and the
        /// scaling rounds, instead of about an hour).
        #[arg(long)]
        quick: bool,
        /// The peers to measure beside Posthorn (comma-separated: postfix, exim; empty for
        /// none).
        #[arg(long, value_delimiter = ',', default_value = "postfix,exim")]
        peers: Vec<String>,
        /// The `exim4` binary (bench/run.sh unpacks Debian's there).
        #[arg(long, default_value = posthorn_bench::exim::DEFAULT_BINARY)]
        exim: PathBuf,
        /// Client counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,10,50,500")]
        clients: Vec<usize>,
        /// Message sizes to measure, in octets.
        #[arg(long, value_delimiter = ',', default_value = "4096,1048576")]
        sizes: Vec<usize>,
        /// Skip the DATA-to-250 measurement under another program's writes.
        #[arg(long)]
        no_write_load: bool,
        /// Alternating rounds of 50 then 500 clients (4 KiB, 20 000 messages) for the
        /// scaling target (0 skips them; needs both counts and 4 KiB among the cases).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
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
    /// What the checking stage costs: accept throughput with every local check on against
    /// checks off, in alternating rounds.
    Checks {
        /// Clients at once.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Messages a round.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Rounds of each.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Where to write the report.
        #[arg(long, default_value = "bench/results/checks.md")]
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
    /// Posthorn's IMAP server beside Dovecot: memory under busy clients and after, logins
    /// per second (first and cached), FETCH and SEARCH rates, a 100 000-message mailbox.
    Imap {
        /// Busy clients at once, one user each.
        #[arg(long, default_value_t = 50)]
        busy_clients: usize,
        /// Seconds the busy clients work.
        #[arg(long, default_value_t = 30)]
        busy_seconds: u64,
        /// Clients of the login and command-rate loops.
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// Seconds each rate is measured.
        #[arg(long, default_value_t = 10)]
        rate_seconds: u64,
        /// Messages in each busy user's INBOX.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Users that log in once each, for the first-login rate.
        #[arg(long, default_value_t = 200)]
        fresh_users: usize,
        /// Messages in the large mailbox (0 skips it).
        #[arg(long, default_value_t = 100_000)]
        large: usize,
        /// Where to write the report.
        #[arg(long, default_value = "bench/results/imap.md")]
        out: PathBuf,
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

/// What `compare` measures.
struct Plan {
    binaries: Binaries,
    peers: Vec<Server>,
    quick: bool,
    clients: Vec<usize>,
    sizes: Vec<usize>,
    write_load: bool,
    rounds: usize,
    queue: usize,
    idle: usize,
}

/// Each server in turn, Posthorn first; a server that fails a measurement gets its error in
/// the report, and the run goes on.
fn each_server<T>(
    servers: &[Server],
    what: &str,
    measure: impl Fn(Server) -> anyhow::Result<T>,
) -> Vec<Result<T, String>>
where
    T: std::fmt::Debug,
{
    servers
        .iter()
        .map(|&server| {
            let outcome = measure(server).map_err(|e| format!("{e:#}"));
            eprintln!("  {what} {}: {outcome:?}", server.name());
            outcome
        })
        .collect()
}

/// Runs every measurement.
fn compare(plan: &Plan) -> anyhow::Result<Results> {
    let binaries = &plan.binaries;
    anyhow::ensure!(
        binaries.posthorn.exists(),
        "{} not found: build it with cargo build --release -p posthorn",
        binaries.posthorn.display()
    );
    let queues = Filesystem::of(&std::env::temp_dir())?;
    queues.ensure_on_disk()?;
    let mut servers = vec![Server::Posthorn];
    servers.extend(&plan.peers);
    let (small, large) = if plan.quick {
        (2_000, 100)
    } else {
        (20_000, 500)
    };
    let mut results = Results {
        environment: compare::environment(binaries, &queues),
        servers: servers.clone(),
        ..Results::default()
    };
    for &size in &plan.sizes {
        for &concurrency in &plan.clients {
            let case = Case {
                concurrency,
                size,
                messages: if size < (1 << 20) { small } else { large },
            };
            eprintln!(
                "case: {concurrency} clients, {size} octets, {} messages",
                case.messages
            );
            let alone = compare::sink_alone(case).map_err(|e| format!("{e:#}"));
            eprintln!("  sink alone: {alone:?}");
            let outcomes = each_server(&servers, "case", |server| {
                compare::measure(server, binaries, case)
            });
            results.cases.push((case, alone, outcomes));
        }
    }
    // Full-size rounds even in a quick run: a round of 2000 messages lasts about 2 s,
    // short enough for the start of 500 connections and one slow second to decide it.
    let scaling_cases = |concurrency| Case {
        concurrency,
        size: 4096,
        messages: 20_000,
    };
    let (fewer, many) = (scaling_cases(50), scaling_cases(500));
    if plan.rounds > 0
        && plan.sizes.contains(&fewer.size)
        && [fewer, many]
            .iter()
            .all(|c| plan.clients.contains(&c.concurrency))
    {
        eprintln!(
            "scaling: {} then {} clients, {} rounds",
            fewer.concurrency, many.concurrency, plan.rounds
        );
        let rate = |case| compare::end_to_end(Server::Posthorn, binaries, case);
        match Alternating::measure(plan.rounds, || rate(fewer), || rate(many)) {
            Ok(rates) => results.scaling = Some((fewer, many, rates)),
            Err(e) => eprintln!("  scaling rounds failed: {e:#}"),
        }
    }
    if plan.write_load {
        let case = Case {
            concurrency: 10,
            size: 4096,
            messages: 3000,
        };
        eprintln!("DATA-to-250 under another program's writes");
        let outcomes = each_server(&servers, "write load", |server| {
            compare::under_write_load(server, binaries, case)
        });
        results.write_load = Some((case, outcomes));
    }
    if plan.idle > 0 {
        eprintln!("idle: {} connections", plan.idle);
        let outcomes = each_server(&servers, "idle", |server| {
            compare::idle_memory(server, binaries, plan.idle).map_err(anyhow::Error::msg)
        });
        results.idle = Some((plan.idle, outcomes));
    }
    if plan.queue > 0 {
        eprintln!("large queue: {} messages", plan.queue);
        results.scale = Some(scale::measure(
            &binaries.posthorn,
            plan.queue,
            plan.queue.min(20_000),
        )?);
    }
    Ok(results)
}

/// Prints a report and writes it to `out`.
fn write_report(out: &Path, text: &str) -> ExitCode {
    println!("{text}");
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = std::fs::write(out, text) {
        eprintln!("cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("report written to {}", out.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare {
            quick,
            peers,
            exim,
            clients,
            sizes,
            no_write_load,
            rounds,
            queue,
            idle,
            out,
        } => {
            procs::raise_file_limit();
            let peers: Result<Vec<Server>, String> = peers
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| match p.as_str() {
                    "postfix" => Ok(Server::Postfix),
                    "exim" => Ok(Server::Exim),
                    other => Err(format!("unknown peer {other:?}: postfix or exim")),
                })
                .collect();
            let peers = match peers {
                Ok(peers) => peers,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let plan = Plan {
                binaries: Binaries {
                    posthorn: cli.posthorn,
                    exim,
                },
                peers,
                quick,
                clients,
                sizes,
                write_load: !no_write_load,
                rounds,
                queue,
                idle,
            };
            match compare(&plan) {
                Ok(results) => write_report(&out, &results.markdown()),
                Err(e) => {
                    eprintln!("benchmark failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Checks {
            clients,
            messages,
            rounds,
            out,
        } => {
            let binaries = Binaries {
                posthorn: cli.posthorn.clone(),
                exim: PathBuf::new(),
            };
            match checks::measure(&binaries, clients, messages, rounds) {
                Ok(cost) => {
                    let report = cost.report(clients, messages);
                    println!("{report}");
                    if let Err(e) = std::fs::write(&out, &report) {
                        eprintln!("cannot write {}: {e}", out.display());
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("checks cost failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Imap {
            busy_clients,
            busy_seconds,
            clients,
            rate_seconds,
            messages,
            fresh_users,
            large,
            out,
        } => {
            procs::raise_file_limit();
            let plan = imap::Plan {
                posthorn: cli.posthorn,
                busy_clients,
                busy_for: Duration::from_secs(busy_seconds),
                rate_clients: clients,
                rate_for: Duration::from_secs(rate_seconds),
                messages,
                fresh_users,
                large,
            };
            match imap::run(&plan) {
                Ok(results) => write_report(&out, &results.markdown()),
                Err(e) => {
                    eprintln!("IMAP benchmark failed: {e:#}");
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
                timeout: Duration::from_secs(60),
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
