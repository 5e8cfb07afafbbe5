//! Posthorn, Postfix and Exim side by side, one after the other in the same run, with the
//! same load: each relays everything it accepts from loopback to the benchmark's sink, with
//! its durable queue on the same filesystem. Throughput comes from Postfix's `smtp-source`
//! (as in the baseline, a new connection per message); DATA-to-250 latency from our own
//! generator.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use posthorn_testkit::postfix::PostfixOptions;

use crate::exim::PrivateExim;
use crate::fast_sink::FastSink;
use crate::filesystem::Filesystem;
use crate::fresh_fs::FreshFs;
use crate::load::{self, Spec};
use crate::procs::{PeakMemory, Tree};
use crate::server::{Posthorn, free_port};

/// One load case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Clients at once.
    pub concurrency: usize,
    /// Message size in octets.
    pub size: usize,
    /// Messages for throughput.
    pub messages: usize,
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Us.
    Posthorn,
    /// Us, with the checking stage on for this (trusted) mail too: every local check,
    /// no DNS lists, clamd or milters.
    PosthornChecked,
    /// Debian's Postfix.
    Postfix,
    /// Debian's Exim (exim4-daemon-light).
    Exim,
}

impl Server {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Server::Posthorn => "Posthorn",
            Server::PosthornChecked => "Posthorn, checks on",
            Server::Postfix => "Postfix",
            Server::Exim => "Exim",
        }
    }
}

/// The programs under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `posthorn`.
    pub posthorn: PathBuf,
    /// `exim4`, unpacked from Debian's package.
    pub exim: PathBuf,
}

/// Postfix with the same room as Posthorn (`max_connections = 20000`): Postfix's default of
/// 100 processes made it refuse or queue clients at 500, and its listen queue follows the
/// process limit. Connection-count limits exempt `mynetworks` anyway; set so all the same.
const POSTFIX_ROOM: [&str; 3] = [
    "default_process_limit = 20000",
    "smtpd_client_connection_count_limit = 20000",
    "smtpd_client_connection_rate_limit = 0",
];

/// The figures of one case on one server.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Messages per second while the clients sent.
    pub accept: f64,
    /// Messages per second until the sink had them all.
    pub end_to_end: f64,
    /// DATA-to-250 median, milliseconds.
    pub p50_ms: f64,
    /// DATA-to-250 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// CPU seconds of the server's processes per 1000 messages.
    pub cpu_per_1000: f64,
    /// Peak proportional set size of the server's processes, MiB.
    pub peak_mib: f64,
    /// Messages of the latency run that failed or timed out (60 s).
    pub latency_failures: usize,
}

/// A server under test with its sink.
pub(crate) struct Running {
    sink: Sink,
    tree: Tree,
    pub(crate) addr: SocketAddr,
    _server: Box<dyn std::any::Any>,
    _dir: tempfile::TempDir,
    /// Dropped last: unmounted once the server and its folder are gone.
    _fresh: FreshFs,
}

/// The sink every server relays to, counting messages.
struct Sink {
    inner: FastSink,
    port: u16,
}

impl Sink {
    fn start() -> anyhow::Result<Sink> {
        let inner = FastSink::start()?;
        let port = inner.addr.port();
        Ok(Sink { inner, port })
    }

    /// Waits (up to 15 minutes) until the sink has `messages`.
    fn wait_for(&self, messages: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(900);
        while self.count() < messages {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the sink got {} of {messages}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn count(&self) -> usize {
        self.inner.count()
    }
}

pub(crate) fn start(server: Server, binaries: &Binaries) -> anyhow::Result<Running> {
    let host = Filesystem::of(&std::env::temp_dir())?;
    let fresh = FreshFs::create(&host)?;
    let dir = tempfile::tempdir_in(fresh.path())?;
    let sink = Sink::start()?;
    let (root, addr, process): (i32, SocketAddr, Box<dyn std::any::Any>) = match server {
        Server::Posthorn | Server::PosthornChecked => {
            let checks = if server == Server::PosthornChecked {
                "[checks]\nsubmissions = true\n\n"
            } else {
                ""
            };
            let port = free_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let config = dir.path().join("posthorn.toml");
            std::fs::write(
                &config,
                format!(
                    "[server]\nhostname = \"posthorn.bench.example\"\ndata_dir = \"{}\"\n\n\
                     [[listener]]\nrole = \"mx\"\naddress = \"{addr}\"\n\n\
                     [limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n\n\
                     [policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n\n{checks}\
                     [relay]\nhost = \"[127.0.0.1]:{}\"\ntls = \"none\"\n",
                    dir.path().join("data").display(),
                    sink.port
                ),
            )?;
            let process = Posthorn::start(
                &binaries.posthorn,
                &config,
                addr,
                &dir.path().join("posthorn.log"),
            )?;
            let pid = process.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
            (pid, addr, Box::new(process))
        }
        Server::Postfix => {
            let mut options = PostfixOptions::default()
                .relayhost(sink.port)
                .parent(fresh.path());
            for line in POSTFIX_ROOM {
                options = options.main_cf(line);
            }
            let postfix = options.start();
            let pid = postfix
                .master_pid()
                .ok_or_else(|| anyhow::anyhow!("no Postfix master pid"))?;
            (pid, postfix.addr(), Box::new(postfix))
        }
        Server::Exim => {
            let exim = PrivateExim::start(&binaries.exim, dir.path(), sink.port)?;
            (exim.pid, exim.addr, Box::new(exim))
        }
    };
    Ok(Running {
        sink,
        tree: Tree { root },
        addr,
        _server: process,
        _dir: dir,
        _fresh: fresh,
    })
}

/// The ceiling of a case on this machine: messages/s from `smtp-source` straight into the
/// sink, no server between (both tools' CPU is part of every case too).
pub fn sink_alone(case: Case) -> anyhow::Result<f64> {
    let sink = Sink::start()?;
    let started = Instant::now();
    send(SocketAddr::from(([127, 0, 0, 1], sink.port)), case)?;
    sink.wait_for(case.messages)?;
    Ok(case.messages as f64 / started.elapsed().as_secs_f64())
}

/// Sends a case's messages with Postfix's `smtp-source`, a new connection per message.
fn send(to: SocketAddr, case: Case) -> anyhow::Result<()> {
    let status = Command::new("/usr/sbin/smtp-source")
        .args(["-c", "-s", &case.concurrency.to_string()])
        .args([
            "-m",
            &case.messages.to_string(),
            "-l",
            &case.size.to_string(),
        ])
        .args([
            "-f",
            "from@example.com",
            "-t",
            "to@example.org",
            "-M",
            "bench.example.com",
        ])
        .arg(to.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "smtp-source failed: {status}");
    Ok(())
}

/// Exim holds every connection about 0.2 s after the message is accepted (before its 221
/// to a pipelined QUIT), so at 1 client 20 000 messages would take over an hour: it gets a
/// tenth of each case (and of the latency probes). Its figures are rates all the same.
const EXIM_SHARE: usize = 10;

/// Measures one case on one server, with fresh instances.
pub fn measure(server: Server, binaries: &Binaries, case: Case) -> anyhow::Result<Figures> {
    let share = if server == Server::Exim {
        EXIM_SHARE
    } else {
        1
    };
    let case = Case {
        messages: case.messages / share,
        ..case
    };
    let running = start(server, binaries)?;
    let cpu_before = running.tree.cpu_seconds();
    let memory = PeakMemory::start(running.tree, Duration::from_millis(200));
    let (accepted_in, delivered_in) = relay(&running, server, case)?;
    let cpu = running.tree.cpu_seconds() - cpu_before;
    let probe = latency(
        &running,
        Case {
            messages: case.messages.min(3000 / share),
            ..case
        },
    )?;
    let peak = memory.finish();
    Ok(Figures {
        accept: case.messages as f64 / accepted_in.as_secs_f64(),
        end_to_end: case.messages as f64 / delivered_in.as_secs_f64(),
        p50_ms: probe.p50_ms,
        p99_ms: probe.p99_ms,
        cpu_per_1000: cpu * 1000.0 / case.messages as f64,
        peak_mib: peak as f64 / 1024.0,
        latency_failures: probe.failed,
    })
}

/// End-to-end messages/s of one case on a fresh server, nothing else measured.
pub fn end_to_end(server: Server, binaries: &Binaries, case: Case) -> anyhow::Result<f64> {
    let running = start(server, binaries)?;
    let (_, delivered_in) = relay(&running, server, case)?;
    Ok(case.messages as f64 / delivered_in.as_secs_f64())
}

/// Sends a case's messages through a running server: the time until the clients were done,
/// and until the sink had every message.
fn relay(running: &Running, server: Server, case: Case) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    send(running.addr, case).map_err(|e| anyhow::anyhow!("{}: {e}", server.name()))?;
    let accepted_in = started.elapsed();
    running
        .sink
        .wait_for(case.messages)
        .map_err(|e| anyhow::anyhow!("{}: {e}", server.name()))?;
    Ok((accepted_in, started.elapsed()))
}

/// DATA-to-250 at `case` while another process rewrites a 1 GiB file on the queue's
/// filesystem without pause: what a sync covering the whole filesystem (`syncfs`) costs
/// next to one covering only our files, when the machine does other work too.
pub fn under_write_load(
    server: Server,
    binaries: &Binaries,
    case: Case,
) -> anyhow::Result<Latency> {
    let running = start(server, binaries)?;
    let file = running._dir.path().join("other-program.dat");
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do dd if=/dev/zero of='{}' bs=1M count=1024 conv=notrunc status=none; done",
            file.display()
        ))
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()?;
    // Let write-back get going before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let figures = latency(&running, case);
    if let Some(group) = i32::try_from(writer.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = writer.wait();
    figures
}

/// DATA-to-250 as our generator measures it: a new connection per message.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Messages that failed or timed out (60 s).
    pub failed: usize,
}

/// DATA-to-250 percentiles of `case` from our generator, against a running server.
fn latency(running: &Running, case: Case) -> anyhow::Result<Latency> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(load::run(Spec {
        target: running.addr,
        messages: case.messages,
        concurrency: case.concurrency,
        size: case.size,
        reuse: false,
        from: "from@example.com".into(),
        to: "to@example.org".into(),
        tag: "latency".into(),
        persist: false,
        timeout: Duration::from_secs(60),
    }));
    Ok(Latency {
        p50_ms: report.latency(0.5).as_secs_f64() * 1000.0,
        p99_ms: report.latency(0.99).as_secs_f64() * 1000.0,
        failed: report.failed,
    })
}

/// Memory of a server holding `count` idle connections (greeted, EHLO sent): PSS in MiB
/// before and with them, or why it could not be measured.
pub fn idle_memory(
    server: Server,
    binaries: &Binaries,
    count: usize,
) -> Result<(f64, f64), String> {
    let running = start(server, binaries).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    let before = running.tree.pss_kib() as f64 / 1024.0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let connections = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), load::idle(running.addr, count)).await
    });
    let streams = match connections {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(format!(
                "{count} connections were not all greeted within 120 s"
            ));
        }
    };
    std::thread::sleep(Duration::from_secs(1));
    let with = running.tree.pss_kib() as f64 / 1024.0;
    drop(streams);
    Ok((before, with))
}

/// What `program args` prints, trimmed; empty when it cannot run.
pub(crate) fn output_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The report header's facts every benchmark shares: date, machine, kernel, and the
/// Posthorn binary `posthorn` with its commit.
pub(crate) fn machine_facts(posthorn: &Path) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("MemTotal:")
        .trim()
        .to_string();
    vec![
        (
            "date".into(),
            output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        ),
        ("machine".into(), format!("{cpu}, {cores} cores, {memory}")),
        ("kernel".into(), output_of("uname", &["-sr"])),
        (
            "posthorn".into(),
            output_of(&posthorn.to_string_lossy(), &["--version"]),
        ),
        (
            "posthorn commit".into(),
            output_of("git", &["rev-parse", "--short", "HEAD"]),
        ),
    ]
}

/// Facts about the machine and the software, for the report's header.
pub fn environment(binaries: &Binaries, queues: &Filesystem) -> Vec<(String, String)> {
    let mut facts = machine_facts(&binaries.posthorn);
    facts.extend([
        (
            "postfix".into(),
            // -d: the built-in default, which needs no main.cf (none exists here).
            output_of("/usr/sbin/postconf", &["-d", "-h", "mail_version"]),
        ),
        (
            "exim".into(),
            output_of(&binaries.exim.to_string_lossy(), &["-bV"])
                .lines()
                .find(|l| l.starts_with("Exim version"))
                .unwrap_or("not found")
                .to_string(),
        ),
        (
            "queues on".into(),
            format!(
                "a fresh ext4 on a loop device for every server start, made like {}",
                queues.describe()
            ),
        ),
    ]);
    facts
}
