//! CPU time and memory of a server's whole process tree, read from /proc: a single process
//! for Posthorn, a master and its many children for Postfix.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A process and its descendants.
#[derive(Debug, Clone, Copy)]
pub struct Tree {
    /// The root's pid.
    pub root: i32,
}

impl Tree {
    /// Every pid in the tree, the root first.
    pub fn pids(&self) -> Vec<i32> {
        let mut parents: HashMap<i32, i32> = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                if let Some(fields) = stat_fields(pid)
                    && let Some(ppid) = fields.get(1).and_then(|f| f.parse().ok())
                {
                    parents.insert(pid, ppid);
                }
            }
        }
        let mut tree = vec![self.root];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(
                parents
                    .iter()
                    .filter(|(_, p)| **p == parent)
                    .map(|(pid, _)| *pid),
            );
            i += 1;
        }
        tree
    }

    /// CPU seconds used so far: user + system of every live process, plus what the root has
    /// collected from children that already exited (Postfix forks and reaps all the time).
    pub fn cpu_seconds(&self) -> f64 {
        let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
        let mut total = 0u64;
        for pid in self.pids() {
            let Some(fields) = stat_fields(pid) else {
                continue;
            };
            // After "(comm)": fields[0] = state; utime = 11, stime = 12, cutime = 13, cstime = 14.
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            total += field(11) + field(12);
            if pid == self.root {
                total += field(13) + field(14);
            }
        }
        total as f64 / ticks
    }

    /// Proportional set size of the tree in KiB (shared pages split between processes, so
    /// Postfix's many processes are not counted many times).
    pub fn pss_kib(&self) -> u64 {
        self.pids()
            .into_iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
            .filter_map(|rollup| {
                rollup
                    .lines()
                    .find_map(|l| l.strip_prefix("Pss:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .sum()
    }
}

impl Tree {
    /// Resident set size of the tree in KiB, the plain sum over its processes (pages
    /// shared between them, such as libraries, counted once per process).
    pub fn rss_kib(&self) -> u64 {
        let page_kib = rustix::param::page_size() as u64 / 1024;
        self.pids()
            .into_iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/statm")).ok())
            .filter_map(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * page_kib)
            .sum()
    }
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Samples a tree's memory (a [`Tree`] measure in KiB, PSS unless told) in the background
/// and keeps the peak.
pub struct PeakMemory {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakMemory {
    /// Starts sampling PSS every `every`.
    pub fn start(tree: Tree, every: Duration) -> Self {
        Self::of(tree, every, Tree::pss_kib)
    }

    /// Starts sampling `measure` every `every`.
    pub fn of(tree: Tree, every: Duration, measure: fn(&Tree) -> u64) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(measure(&tree), Ordering::Relaxed);
                    std::thread::sleep(every);
                }
            })
        };
        PeakMemory {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns the peak in KiB.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Raises this process's open-file limit to its hard limit (10 000 connections need it).
pub fn raise_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}
