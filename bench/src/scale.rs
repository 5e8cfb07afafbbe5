//! A very large queue: how long Posthorn takes to start on it (recovery scans the spool),
//! what each queued message costs in memory, and whether a delivery costs more when the
//! queue is huge (it must not: scheduling is a B-tree of due times, not a scan).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use posthorn_proto::{Mailbox, ReversePath};
use posthorn_spool::{Envelope, FsQueueStore, QueueStore, Recipient, Route};

use crate::procs::{PeakMemory, Tree};
use crate::server::{Posthorn, free_port};

/// What the large queue showed.
#[derive(Debug, Clone)]
pub struct ScaleFigures {
    /// Messages in the large queue.
    pub messages: usize,
    /// Seconds to write them (without fsync, one sync at the end).
    pub fill_secs: f64,
    /// Seconds from starting the server to its greeting (recovery included).
    pub start_secs: f64,
    /// Peak memory of the server while it delivers out of the large queue, MiB.
    pub pss_mib: f64,
    /// Peak memory of the server while it delivers the small queue, MiB.
    pub small_pss_mib: f64,
    /// Deliveries per second of the first `probe` messages out of the large queue.
    pub large_rate: f64,
    /// Deliveries per second of a queue of just `probe` messages.
    pub small_rate: f64,
    /// Messages in the small queue.
    pub probe: usize,
    /// Both queues were read from a cold page cache.
    pub cold_cache: bool,
}

/// Fills a spool in `dir/data/queue` with `count` messages for a remote recipient, then
/// flushes it to disk.
fn fill(dir: &Path, count: usize) -> anyhow::Result<()> {
    let store = FsQueueStore::open_without_fsync(dir.join("data/queue"))?;
    let content = b"Subject: queued\r\n\r\nThis message waits in a very large queue.\r\n";
    let threads = 4;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let store = &store;
                scope.spawn(move || -> anyhow::Result<()> {
                    for _ in (t..count).step_by(threads) {
                        let id = store.new_id();
                        store
                            .writer(id)?
                            .commit(content.to_vec(), &envelope(id))
                            .wait()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a fill thread panicked"))??;
        }
        Ok(())
    })?;
    // Flush the fill now, or the kernel's write-back of it would compete with the
    // deliveries being timed.
    rustix::fs::sync();
    Ok(())
}

/// Empties the page cache (root only), so that the large and the small queue are both read
/// from disk: a million messages do not stay cached while a small queue does, and the
/// comparison would measure the cache instead of the scheduler. Returns whether it could.
fn drop_caches() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn envelope(id: posthorn_spool::QueueId) -> Envelope {
    let sender = Mailbox {
        local: "bench".into(),
        domain: "example.com".into(),
    };
    let recipient = Mailbox {
        local: "user".into(),
        domain: "remote.example".into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Envelope::new(
        id,
        ReversePath::Mailbox(sender),
        vec![Recipient::new(recipient, Route::Remote)],
        now,
    )
}

/// A server on `dir` relaying to a fresh sink; returns it, its sink, and its start time.
fn start(
    posthorn: &Path,
    dir: &Path,
) -> anyhow::Result<(Posthorn, crate::sink::RecordingSink, f64)> {
    let sink = crate::sink::RecordingSink::start("scale")?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = dir.join("posthorn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"posthorn.bench.example\"\ndata_dir = \"{}\"\n\n\
             [[listener]]\nrole = \"mx\"\naddress = \"{addr}\"\n\n\
             [policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n\n\
             [relay]\nhost = \"[127.0.0.1]:{}\"\ntls = \"none\"\n",
            dir.join("data").display(),
            sink.addr.port()
        ),
    )?;
    let started = Instant::now();
    let server = Posthorn::start(posthorn, &config, addr, &dir.join("posthorn.log"))?;
    Ok((server, sink, started.elapsed().as_secs_f64()))
}

/// Waits until the sink counts `count` deliveries; returns the seconds it took.
fn delivered(
    sink: &crate::sink::RecordingSink,
    count: usize,
    since: Instant,
) -> anyhow::Result<f64> {
    while sink.delivered() < count {
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(1800),
            "deliveries stalled at {}",
            sink.delivered()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(since.elapsed().as_secs_f64())
}

/// Starts a server on `dir` and measures how it delivers the first `probe` messages:
/// (start seconds, delivery seconds, peak memory MiB).
fn probe_run(posthorn: &Path, dir: &Path, probe: usize) -> anyhow::Result<(f64, f64, f64)> {
    let (server, sink, start_secs) = start(posthorn, dir)?;
    let since = Instant::now();
    let peak = PeakMemory::start(
        Tree {
            root: server.pid().unwrap_or(0),
        },
        Duration::from_millis(50),
    );
    let delivered = delivered(&sink, probe, since);
    let peak_mib = peak.finish() as f64 / 1024.0;
    drop(server);
    Ok((start_secs, delivered?, peak_mib))
}

/// Measures a queue of `messages`, and a queue of `probe` for comparison.
pub fn measure(posthorn: &Path, messages: usize, probe: usize) -> anyhow::Result<ScaleFigures> {
    let large = tempfile::tempdir()?;
    let filling = Instant::now();
    fill(large.path(), messages)?;
    let fill_secs = filling.elapsed().as_secs_f64();
    let cold_large = drop_caches();
    let (start_secs, large_secs, pss_mib) = probe_run(posthorn, large.path(), probe)?;
    drop(large);

    let small = tempfile::tempdir()?;
    fill(small.path(), probe)?;
    let cold_small = drop_caches();
    let (_, small_secs, small_pss_mib) = probe_run(posthorn, small.path(), probe)?;
    Ok(ScaleFigures {
        messages,
        fill_secs,
        start_secs,
        pss_mib,
        small_pss_mib,
        large_rate: probe as f64 / large_secs,
        small_rate: probe as f64 / small_secs,
        probe,
        cold_cache: cold_large && cold_small,
    })
}
