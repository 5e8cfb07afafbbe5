//! Posthorn's IMAP server beside Dovecot (issue 19): memory under 50 busy clients and
//! after they leave, logins per second (first logins and cached), FETCH and SEARCH rates,
//! and a 100 000-message mailbox, first and warm. Both servers get the same users, the
//! same argon2id hash and hard-linked copies of the same generated Maildirs, and are
//! started afresh for each group of measurements; the load generator is ours
//! ([`client`], [`workloads`]).

pub mod client;
pub mod dovecot;
pub mod mailbox;
pub mod report;
pub mod servers;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::procs::{PeakMemory, Tree};
use servers::{ImapServer, Site};
use workloads::{LargeSession, Login, Logins, Op, Tally};

/// What `posthorn-bench imap` measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `posthorn` binary.
    pub posthorn: PathBuf,
    /// Busy clients at once (one user each).
    pub busy_clients: usize,
    /// How long they stay busy.
    pub busy_for: Duration,
    /// Clients of the login and command-rate loops.
    pub rate_clients: usize,
    /// How long each rate is measured.
    pub rate_for: Duration,
    /// Messages in each busy user's mailbox.
    pub messages: usize,
    /// Users that log in once each (first-login rate).
    pub fresh_users: usize,
    /// Messages in the large mailbox (0: skip it).
    pub large: usize,
}

/// Memory of a process tree, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Sum of the processes' RSS.
    pub rss: u64,
    /// Sum of their PSS (shared pages divided among the sharers).
    pub pss: u64,
}

impl Memory {
    fn of(tree: &Tree) -> Memory {
        Memory {
            rss: tree.rss_kib(),
            pss: tree.pss_kib(),
        }
    }
}

/// How often memory is sampled while clients work.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How long after the last client left the "after" memory is read.
pub const SETTLE: Duration = Duration::from_secs(5);

/// One run of the busy clients.
#[derive(Debug, Clone)]
pub struct BusyRun {
    /// Their commands.
    pub tally: Tally,
    /// The memory peak while they worked.
    pub peak: Memory,
    /// `SETTLE` after they left.
    pub after: Memory,
}

/// The figures of one server, on the ordinary mailboxes.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Started, nobody connected.
    pub idle: Memory,
    /// The busy clients on a fresh server: each user's first login among them.
    pub busy_first: BusyRun,
    /// The same again right after: every user logged in before (what an auth cache
    /// keeps), so the peak is the sessions' own.
    pub busy_again: BusyRun,
    /// Logins of users never seen before.
    pub first_logins: Tally,
    /// Logins of one user over and over.
    pub repeat_logins: Tally,
    /// Each measured command: its tally and the hits of its SEARCH.
    pub ops: Vec<(Op, Tally, usize)>,
}

/// The figures of one server on the large mailbox.
#[derive(Debug, Clone)]
pub struct Large {
    /// The first session, on a cold page cache and no index of the server's own.
    pub first: LargeSession,
    /// A second session right after.
    pub warm: LargeSession,
    /// The memory peak over both.
    pub peak: Memory,
    /// Memory at the end, with nobody connected.
    pub after: Memory,
}

/// Everything one run measured, Posthorn first.
#[derive(Debug)]
pub struct Results {
    /// Machine, versions, settings.
    pub environment: Vec<(String, String)>,
    /// The plan.
    pub plan: Plan,
    /// Per server: the ordinary measurements.
    pub figures: Vec<(ImapServer, Result<Figures, String>)>,
    /// Per server: the large mailbox (empty when skipped).
    pub large: Vec<(ImapServer, Result<Large, String>)>,
}

/// The one password of every benchmark user.
const PASSWORD: &str = "bench-imap-password-19";

/// Runs every measurement on both servers.
pub fn run(plan: &Plan) -> anyhow::Result<Results> {
    anyhow::ensure!(
        plan.posthorn.exists(),
        "{} not found: build it with cargo build --release -p posthorn",
        plan.posthorn.display()
    );
    let work = tempfile::Builder::new()
        .prefix("posthorn-imapbench")
        .tempdir()?;
    let hash = dovecot::argon2id_hash(PASSWORD)?;
    let hash = hash
        .strip_prefix("{ARGON2ID}")
        .ok_or_else(|| anyhow::anyhow!("doveadm gave {hash:?}"))?
        .to_string();
    let environment = report::environment(&plan.posthorn, work.path(), &hash);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let template = work.path().join("template");
    eprintln!("generating {} messages", plan.messages);
    mailbox::generate(&template, plan.messages)?;
    let busy_users: Vec<String> = (0..plan.busy_clients).map(|i| format!("u{i:03}")).collect();
    let site = Site {
        password: PASSWORD.into(),
        hash: hash.clone(),
        mailboxes: busy_users
            .iter()
            .map(|u| (u.clone(), template.clone()))
            .collect(),
        bare_users: (0..plan.fresh_users).map(|i| format!("f{i:04}")).collect(),
    };
    let figures = ImapServer::BOTH
        .iter()
        .map(|&server| {
            eprintln!("{}: busy clients, logins, command rates", server.name());
            let outcome =
                measure(server, plan, &site, work.path(), &runtime).map_err(|e| format!("{e:#}"));
            eprintln!("  {outcome:?}");
            (server, outcome)
        })
        .collect();

    let mut large = Vec::new();
    if plan.large > 0 {
        let template = work.path().join("large");
        eprintln!("generating {} messages", plan.large);
        mailbox::generate(&template, plan.large)?;
        let site = Site {
            password: PASSWORD.into(),
            hash,
            mailboxes: vec![("large".into(), template)],
            bare_users: Vec::new(),
        };
        for server in ImapServer::BOTH {
            eprintln!("{}: {} messages", server.name(), plan.large);
            let outcome = measure_large(server, plan, &site, work.path(), &runtime)
                .map_err(|e| format!("{e:#}"));
            eprintln!("  {outcome:?}");
            large.push((server, outcome));
        }
    }
    Ok(Results {
        environment,
        plan: plan.clone(),
        figures,
        large,
    })
}

/// The ordinary measurements on a fresh `server`.
fn measure(
    server: ImapServer,
    plan: &Plan,
    site: &Site,
    work: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Figures> {
    let running = servers::start(server, site, &plan.posthorn, work)?;
    let login = Login {
        addr: running.addr,
        password: Arc::from(site.password.as_str()),
    };
    let idle = Memory::of(&running.tree);

    let users: Arc<[String]> = site.mailboxes.iter().map(|(u, _)| u.clone()).collect();
    let busy_run = || {
        let rss = PeakMemory::of(running.tree, SAMPLE_EVERY, Tree::rss_kib);
        let pss = PeakMemory::of(running.tree, SAMPLE_EVERY, Tree::pss_kib);
        let tally = runtime.block_on(workloads::busy(
            login.clone(),
            Arc::clone(&users),
            plan.busy_clients,
            plan.busy_for,
        ));
        let peak = Memory {
            rss: rss.finish(),
            pss: pss.finish(),
        };
        std::thread::sleep(SETTLE);
        BusyRun {
            tally,
            peak,
            after: Memory::of(&running.tree),
        }
    };
    let busy_first = busy_run();
    let busy_again = busy_run();

    let first_logins = runtime.block_on(workloads::logins(
        login.clone(),
        plan.rate_clients,
        Logins::EachOnce(site.bare_users.iter().cloned().collect()),
    ));
    let one: Arc<str> = Arc::from(users[0].as_str());
    let repeat_logins = runtime.block_on(workloads::logins(
        login.clone(),
        plan.rate_clients,
        Logins::Repeat(Arc::clone(&one), plan.rate_for),
    ));
    let ops = Op::MEASURED
        .iter()
        .map(|&op| {
            let (tally, hits) = runtime.block_on(workloads::op_rate(
                login.clone(),
                Arc::clone(&one),
                plan.rate_clients,
                op,
                plan.rate_for,
            ));
            (op, tally, hits)
        })
        .collect();
    Ok(Figures {
        idle,
        busy_first,
        busy_again,
        first_logins,
        repeat_logins,
        ops,
    })
}

/// The large mailbox on a fresh `server`: a first session on a cold page cache, then a
/// warm one.
fn measure_large(
    server: ImapServer,
    plan: &Plan,
    site: &Site,
    work: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Large> {
    let running = servers::start(server, site, &plan.posthorn, work)?;
    let login = Login {
        addr: running.addr,
        password: Arc::from(site.password.as_str()),
    };
    drop_page_cache()?;
    let rss = PeakMemory::of(running.tree, SAMPLE_EVERY, Tree::rss_kib);
    let pss = PeakMemory::of(running.tree, SAMPLE_EVERY, Tree::pss_kib);
    let first = runtime.block_on(workloads::large_session(&login, "large"))?;
    let warm = runtime.block_on(workloads::large_session(&login, "large"))?;
    let peak = Memory {
        rss: rss.finish(),
        pss: pss.finish(),
    };
    std::thread::sleep(SETTLE);
    Ok(Large {
        first,
        warm,
        peak,
        after: Memory::of(&running.tree),
    })
}

/// Writes dirty pages and empties the page cache, so that a "first" measurement reads the
/// mailbox from disk on both servers alike (needs root).
fn drop_page_cache() -> anyhow::Result<()> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| anyhow::anyhow!("cannot drop the page cache (root needed): {e}"))
}
