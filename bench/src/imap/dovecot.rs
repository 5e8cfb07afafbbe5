//! A private Dovecot for the comparison: Debian's binaries with a configuration of its own
//! in the benchmark's folder (nothing under /etc is read or touched), run as `nobody` on a
//! loopback port, logging to a file, passwords in a `passwd-file` of argon2id hashes,
//! mail in `maildir:` folders the benchmark fills.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::imap::servers::wait_greeting;

/// The unprivileged user Dovecot runs as, all its processes.
const RUN_AS: &str = "nobody";
const RUN_AS_GROUP: &str = "nogroup";

/// Dovecot's auth cache as the benchmark sets it: as long as Posthorn's default
/// `auth.cache_ttl` (Dovecot's own default is no cache at all). Dovecot's cache keeps the
/// hash, not the outcome, so a cached login still pays for argon2id; the last setting lets
/// its auth workers do that on every core instead of the one auth process.
pub const AUTH_CACHE: [&str; 3] = [
    "auth_cache_size = 10M",
    "auth_cache_ttl = 10 mins",
    "auth_cache_verify_password_with_worker = yes",
];

/// A running private Dovecot.
pub struct PrivateDovecot {
    child: Child,
    /// Its IMAP listener.
    pub addr: SocketAddr,
    /// The master's pid, the root of its process tree.
    pub pid: i32,
    /// Its log.
    pub log: PathBuf,
}

/// Writes `dir/dovecot.conf` for users whose mail is under `mail/<user>`, with `users`
/// (`name:{ARGON2ID}hash` lines) as its passwd-file, listening on `addr`.
fn configure(dir: &Path, addr: SocketAddr, users: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(dir.join("users"), users)?;
    let d = dir.display();
    let conf = format!(
        "# The benchmark's private Dovecot; built-in defaults but for these.\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         protocols = imap\n\
         listen = {ip}\n\
         ssl = no\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         default_internal_user = {RUN_AS}\n\
         default_internal_group = {RUN_AS_GROUP}\n\
         default_login_user = {RUN_AS}\n\
         mail_location = maildir:{d}/mail/%u\n\
         {cache}\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
         userdb {{\n  driver = static\n  args = uid={RUN_AS} gid={RUN_AS_GROUP} home={d}/mail/%u\n}}\n\
         protocol imap {{\n  mail_max_userip_connections = 1000\n}}\n\
         service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = {ip}\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n\
         service imap {{\n  process_limit = 1000\n}}\n",
        ip = addr.ip(),
        port = addr.port(),
        cache = AUTH_CACHE.join("\n"),
    );
    let path = dir.join("dovecot.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

impl PrivateDovecot {
    /// Starts Dovecot in `dir` (which holds `mail/`) on `addr` and waits for its greeting.
    /// `dir` is handed to the unprivileged user first.
    pub fn start(dir: &Path, addr: SocketAddr, users: &str) -> anyhow::Result<PrivateDovecot> {
        let conf = configure(dir, addr, users)?;
        let owner = format!("{RUN_AS}:{RUN_AS_GROUP}");
        let status = Command::new("chown")
            .args(["-R", &owner])
            .arg(dir)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "chown -R {owner} {} failed",
            dir.display()
        );
        let log = dir.join("dovecot.log");
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={RUN_AS}"),
                &format!("--regid={RUN_AS_GROUP}"),
                "--clear-groups",
                "/usr/sbin/dovecot",
                "-F",
                "-c",
            ])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dovecot.stderr"))?)
            .spawn()
            .context("cannot run setpriv /usr/sbin/dovecot (Debian's dovecot-imapd)")?;
        let pid = i32::try_from(child.id())?;
        let mut dovecot = PrivateDovecot {
            child,
            addr,
            pid,
            log,
        };
        let stderr = dir.join("dovecot.stderr");
        wait_greeting(addr, || match dovecot.child.try_wait()? {
            Some(status) => bail!(
                "dovecot exited with {status}: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            ),
            None => Ok(()),
        })
        .with_context(|| format!("see {}", dovecot.log.display()))?;
        Ok(dovecot)
    }
}

impl Drop for PrivateDovecot {
    /// SIGTERM to the master, which stops its children, then wait.
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// Dovecot's version, for the report.
pub fn version() -> String {
    Command::new("/usr/sbin/dovecot")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// An `{ARGON2ID}` hash of `password` made by `doveadm pw -s ARGON2ID` (Dovecot's own
/// parameters: libsodium's, m=64 MiB, t=3).
pub fn argon2id_hash(password: &str) -> anyhow::Result<String> {
    let output = Command::new("doveadm")
        .args(["pw", "-s", "ARGON2ID", "-p", password])
        .output()
        .context("cannot run doveadm (Debian's dovecot-core)")?;
    anyhow::ensure!(
        output.status.success(),
        "doveadm pw failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
