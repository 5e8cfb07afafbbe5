//! A private Exim for the benchmark: Debian's `exim4-daemon-light` binary (unpacked by
//! `bench/run.sh`, not installed: Debian allows one MTA package and Postfix is ours), run as
//! a daemon with its own configuration, spool and logs in a temporary folder. Like the
//! Postfix instance it relays everything from loopback to the sink, with its spool fsynced
//! before each 250 (Exim's default), no DNS, no ident, no TLS.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::free_port;

/// Where `bench/run.sh` unpacks the binary.
pub const DEFAULT_BINARY: &str = "target/exim/usr/sbin/exim4";

/// The user Debian's build runs as; it must exist (compiled in).
const EXIM_USER: &str = "Debian-exim";

/// A running private Exim daemon; dropping it stops it.
pub struct PrivateExim {
    /// Its SMTP address.
    pub addr: SocketAddr,
    /// The daemon's pid (its sessions and deliveries are its descendants).
    pub pid: i32,
    dir: PathBuf,
}

impl PrivateExim {
    /// Writes the configuration under `dir` and starts the daemon, relaying to
    /// `127.0.0.1:sink_port`; waits until it listens.
    pub fn start(binary: &Path, dir: &Path, sink_port: u16) -> anyhow::Result<PrivateExim> {
        anyhow::ensure!(
            binary.is_file(),
            "{} not found: bench/run.sh unpacks Debian's exim4-daemon-light there",
            binary.display()
        );
        let binary = std::fs::canonicalize(binary)?;
        // Exim's processes run as its user, which must reach the folder.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let dir = dir.join("exim");
        for sub in ["spool", "log"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let owner = Command::new("chown")
            .args(["-R", EXIM_USER])
            .arg(&dir)
            .status()?;
        anyhow::ensure!(
            owner.success(),
            "chown {EXIM_USER} {}: does the user exist? (bench/run.sh makes it)",
            dir.display()
        );
        let port = free_port()?;
        let config = dir.join("exim.conf");
        std::fs::write(&config, configuration(&binary, &dir, port, sink_port))?;
        let output = Command::new(&binary)
            .arg("-C")
            .arg(&config)
            .arg("-bd")
            .stdin(Stdio::null())
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "exim -bd failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let pid = loop {
            let pid = std::fs::read_to_string(dir.join("exim-daemon.pid"))
                .ok()
                .and_then(|text| text.trim().parse().ok());
            if let Some(pid) = pid
                && std::net::TcpStream::connect(addr).is_ok()
            {
                break pid;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "Exim did not listen on {addr}; see {}",
                dir.join("log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(PrivateExim { addr, pid, dir })
    }
}

impl Drop for PrivateExim {
    fn drop(&mut self) {
        // SIGTERM stops the daemon; sessions and deliveries still running end with their
        // clients and the sink, which the benchmark stops too.
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The whole configuration: accept from loopback, relay everything to the sink.
fn configuration(binary: &Path, dir: &Path, port: u16, sink_port: u16) -> String {
    let dir = dir.display();
    format!(
        "exim_path = {binary}\n\
         primary_hostname = exim.bench.example\n\
         spool_directory = {dir}/spool\n\
         log_file_path = {dir}/log/%slog\n\
         pid_file_path = {dir}/exim-daemon.pid\n\
         keep_environment =\n\
         daemon_smtp_ports = {port}\n\
         local_interfaces = 127.0.0.1\n\
         tls_advertise_hosts =\n\
         host_lookup =\n\
         rfc1413_hosts =\n\
         # The same room as the others: no connection caps, the kernel's full listen queue,\n\
         # no load-based queueing (the load limits are unset by default).\n\
         smtp_accept_max = 20000\n\
         smtp_accept_max_per_host =\n\
         smtp_connect_backlog = 4096\n\
         smtp_accept_queue = 0\n\
         hostlist relay_from_hosts = 127.0.0.0/8\n\
         acl_smtp_rcpt = acl_check_rcpt\n\
         begin acl\n\
         acl_check_rcpt:\n  accept hosts = +relay_from_hosts\n  deny\n\
         begin routers\n\
         sink:\n  driver = manualroute\n  route_list = * 127.0.0.1\n  transport = to_sink\n  self = send\n\
         begin transports\n\
         to_sink:\n  driver = smtp\n  port = {sink_port}\n  hosts_avoid_tls = *\n\
         begin retry\n\
         * * F,1h,10s\n",
        binary = binary.display()
    )
}
