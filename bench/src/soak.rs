//! The crash soak: messages pour into Posthorn from several clients while it is killed
//! with SIGKILL at random moments and restarted. At the end, every message that got a 250
//! must have been delivered at least once; duplicates are counted (a crash between a
//! delivery and its bookkeeping repeats it, by design); the spool must be empty and no
//! half-written file may remain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::load::{self, Spec, bench_id};
use crate::server::{Posthorn, free_port};
use crate::sink::RecordingSink;

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakSpec {
    /// The `posthorn` binary.
    pub binary: PathBuf,
    /// Messages to get acknowledged.
    pub messages: usize,
    /// Clients sending at once.
    pub clients: usize,
    /// Deliver into a local Maildir instead of relaying to a sink.
    pub local: bool,
    /// Shortest and longest wait between two kills, in milliseconds.
    pub kill_every: (u64, u64),
}

/// What the soak found.
#[derive(Debug)]
pub struct SoakReport {
    /// Messages acknowledged with 250.
    pub acknowledged: usize,
    /// Acknowledged messages never delivered: must be 0.
    pub lost: usize,
    /// Deliveries beyond the first of a message.
    pub duplicates: usize,
    /// Messages delivered that were never acknowledged (the server died before its 250
    /// reached the client, after the message was safe).
    pub unacknowledged_delivered: usize,
    /// SIGKILLs sent.
    pub kills: usize,
    /// Committed messages left in the spool at the end: must be 0.
    pub spool_left: usize,
    /// Half-written files left in the spool: must be 0.
    pub tmp_left: usize,
    /// Files set aside as damaged: must be 0, as a SIGKILL leaves every write made.
    pub set_aside: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl SoakReport {
    /// True when nothing was lost and nothing was left behind.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.spool_left == 0 && self.tmp_left == 0 && self.set_aside == 0
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acknowledged {} | lost {} | duplicates {} | delivered without acknowledgement {} | kills {} | left in spool {} | left in tmp {} | set aside {} | {:.1} s",
            self.acknowledged,
            self.lost,
            self.duplicates,
            self.unacknowledged_delivered,
            self.kills,
            self.spool_left,
            self.tmp_left,
            self.set_aside,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs the soak in a fresh temporary folder.
pub fn run(spec: &SoakSpec) -> anyhow::Result<SoakReport> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let tag = format!("soak{}", std::process::id());
    let sink = RecordingSink::start(&tag)?;
    let port = free_port()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = dir.path().join("posthorn.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), port, sink.addr.port(), spec.local),
    )?;
    let log = dir.path().join("posthorn.log");
    let mut server = Posthorn::start(&spec.binary, &config, addr, &log)?;

    let load_spec = Spec {
        target: addr,
        messages: spec.messages,
        concurrency: spec.clients,
        size: 2048,
        reuse: true,
        from: "soak@bench.example".into(),
        to: if spec.local {
            "postmaster@localhost".into()
        } else {
            "user@remote.example".into()
        },
        tag: tag.clone(),
        persist: true,
        timeout: Duration::from_secs(30),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let done = Arc::clone(&done);
        let handle = runtime.handle().clone();
        std::thread::spawn(move || {
            let report = handle.block_on(load::run(load_spec));
            done.store(true, Ordering::SeqCst);
            report
        })
    };
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(random_between(
            spec.kill_every.0,
            spec.kill_every.1,
        )));
        if done.load(Ordering::SeqCst) {
            break;
        }
        server.kill9();
        kills += 1;
        server.restart()?;
    }
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))?;
    eprintln!(
        "load done after {:.1} s ({} refused or lost)",
        started.elapsed().as_secs_f64(),
        report.failed
    );
    let queue = dir.path().join("data/queue");
    let drained = wait_for(Duration::from_secs(300), || spool_files(&queue) == 0);
    eprintln!(
        "spool drained after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    server.stop();
    let delivered = if spec.local {
        maildir_ids(&dir.path().join("data/mail/postmaster"), &tag)
    } else {
        sink.ids()
    };
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for id in delivered {
        *counts.entry(id).or_default() += 1;
    }
    let acknowledged = report.acknowledged.len();
    let lost = report
        .acknowledged
        .iter()
        .filter(|n| !counts.contains_key(n))
        .count();
    let duplicates = counts.values().map(|c| c - 1).sum();
    let acked: std::collections::HashSet<usize> = report.acknowledged.iter().copied().collect();
    let unacknowledged_delivered = counts.keys().filter(|id| !acked.contains(id)).count();
    let result = SoakReport {
        acknowledged,
        lost,
        duplicates,
        unacknowledged_delivered,
        kills,
        spool_left: spool_files(&queue),
        tmp_left: std::fs::read_dir(queue.join("tmp")).map_or(0, |d| d.count()),
        set_aside: std::fs::read_dir(queue.join("corrupt")).map_or(0, |d| d.count()),
        elapsed: started.elapsed(),
    };
    if !drained || !result.passed() {
        let kept = dir.keep();
        eprintln!("soak failed; its folder is kept: {}", kept.display());
    }
    Ok(result)
}

fn config_text(dir: &Path, port: u16, sink_port: u16, local: bool) -> String {
    let mut text = format!(
        "[server]\nhostname = \"posthorn.soak.example\"\ndata_dir = \"{}\"\nshutdown_grace = \"5s\"\n\n\
         [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:{port}\"\n\n\
         [limits]\nmax_connections_per_ip = 1000\n\n[queue]\nretry_schedule = [\"1s\"]\n",
        dir.join("data").display()
    );
    if !local {
        text.push_str(&format!(
            "\n[policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n\n[relay]\nhost = \"[127.0.0.1]:{sink_port}\"\ntls = \"none\"\n"
        ));
    }
    text
}

/// Committed messages (and state files) in the spool folder, and pool files made for the
/// pool that hold a message: that end in a footer. (The pool keeps files ready for the
/// next messages: empty, or recycled, `.pool-of-<id>`, which still hold their delivered
/// message until the pool's keeper makes its footer void.)
fn spool_files(queue: &Path) -> usize {
    std::fs::read_dir(queue).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                !name.starts_with(".pool-")
                    || (!name.starts_with(".pool-of-") && ends_in_footer(&e.path()))
            })
            .count()
    })
}

/// Whether the file at `path` ends as a spool file's footer does (`<version>QHP`).
fn ends_in_footer(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut end = [0u8; 3];
    len >= 3 && file.read_exact_at(&mut end, len - 3).is_ok() && end == *b"QHP"
}

fn maildir_ids(maildir: &Path, tag: &str) -> Vec<usize> {
    let mut ids = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(content) = std::fs::read(entry.path()) {
                ids.extend(bench_id(&content, tag));
            }
        }
    }
    ids
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn random_between(low: u64, high: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    low + u64::from_le_bytes(bytes) % (high.saturating_sub(low) + 1)
}
