//! A private Postfix instance for interop tests and benchmarks: Debian's `/usr/sbin/postfix` run with its own
//! `config_directory`, `queue_directory` and `data_directory` in a temporary folder, one smtpd
//! on `127.0.0.1:PORT`, its log in a file (`maillog_file`, written by postlogd), no chroot and
//! no DNS. It never touches the system instance (`/etc/postfix`, `/var/spool/postfix`).
//!
//! ```ignore
//! let sink = Sink::start();
//! let postfix = PostfixOptions::default().starttls().relayhost(sink.addr.port()).start();
//! // ... make Posthorn deliver to [127.0.0.1]:postfix.port() ...
//! postfix.wait_for_log("Anonymous TLS connection established from");
//! ```
//!
//! Every instance relays anything it gets from 127.0.0.0/8 (`mynetworks`, `mydestination =`)
//! to its relayhost, or by `transport_maps` for the domains given to
//! [`PostfixOptions::transport`]. It adds no missing headers and rewrites none
//! (`local_header_rewrite_clients =`), so what it forwards can be compared byte for byte.
//! Dropping it stops it (`postfix stop`, then `postfix abort` and signals to the master, all
//! with bounded waits).

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{PATIENCE, wait_until};

/// The `postfix` command of Debian's package.
pub const POSTFIX: &str = "/usr/sbin/postfix";

/// `myhostname` of every private instance: its greeting, EHLO and Received headers.
pub const HOSTNAME: &str = "postfix.interop.test";

/// How long `postfix stop` (and then `abort`) may take before the master is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A free port on 127.0.0.1 right now: bound to port 0, read, released. Another process may
/// take it before it is used; [`PrivatePostfix::start`] retries on its own choice of port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Configures a [`PrivatePostfix`].
#[derive(Clone, Debug, Default)]
pub struct PostfixOptions {
    port: Option<u16>,
    starttls: bool,
    relayhost: Option<u16>,
    transports: Vec<(String, u16)>,
    main_cf: Vec<String>,
    parent: Option<PathBuf>,
}

impl PostfixOptions {
    /// Makes the instance's folder (its queue among it) in `parent` instead of the
    /// temporary folder: the benchmark gives each instance a fresh filesystem.
    pub fn parent(mut self, parent: &Path) -> Self {
        self.parent = Some(parent.to_path_buf());
        self
    }

    /// Listens on this port instead of one the harness picks (for tests that must name the
    /// port in another configuration before Postfix can start; see [`free_port`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Offers STARTTLS in smtpd (`smtpd_tls_security_level = may`) with a fresh self-signed
    /// certificate for "localhost", and logs handshakes (`smtpd_tls_loglevel = 1`).
    pub fn starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// `relayhost = [127.0.0.1]:PORT`: where everything goes that has no transport (default:
    /// none; mail with neither has nowhere to go and stays deferred).
    pub fn relayhost(mut self, port: u16) -> Self {
        self.relayhost = Some(port);
        self
    }

    /// Mail for `domain` goes to `[127.0.0.1]:port` (`transport_maps`, an inline table).
    pub fn transport(mut self, domain: &str, port: u16) -> Self {
        self.transports.push((domain.to_string(), port));
        self
    }

    /// An extra `main.cf` line (`name = value`), written after the harness's own (the last
    /// setting of a parameter wins).
    pub fn main_cf(mut self, line: &str) -> Self {
        self.main_cf.push(line.to_string());
        self
    }

    /// Starts the instance (see [`PrivatePostfix::start`]).
    pub fn start(self) -> PrivatePostfix {
        PrivatePostfix::start(self)
    }
}

/// A running private Postfix; dropping it stops it and removes its folder.
pub struct PrivatePostfix {
    port: u16,
    dir: tempfile::TempDir,
    master_pid: Option<i32>,
}

/// Why a start failed, and whether another port may help.
struct StartError {
    port_taken: bool,
    message: String,
}

impl PrivatePostfix {
    /// Writes the configuration into a new temporary folder, runs `postfix -c DIR/etc start`
    /// and waits (bounded) until its smtpd listens. Panics with Postfix's own words if it is
    /// not installed or does not start.
    pub fn start(options: PostfixOptions) -> PrivatePostfix {
        assert!(
            Path::new(POSTFIX).is_file(),
            "Postfix is not installed ({POSTFIX} is missing): the interop tests need Debian's \
             postfix package (apt-get install postfix)"
        );
        let attempts = if options.port.is_some() { 1 } else { 3 };
        let mut failures = Vec::new();
        for _ in 0..attempts {
            match Self::try_start(&options) {
                Ok(postfix) => return postfix,
                Err(e) => {
                    let retry = e.port_taken;
                    failures.push(e.message);
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!(
            "private Postfix did not start:\n{}",
            failures.join("\n---- next attempt ----\n")
        );
    }

    fn try_start(options: &PostfixOptions) -> Result<PrivatePostfix, StartError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("posthorn-postfix-");
        let dir = match &options.parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("temp dir for Postfix");
        // Postfix's unprivileged daemons must be able to reach the folder's contents.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod Postfix dir");
        let port = options.port.unwrap_or_else(free_port);
        let mut postfix = PrivatePostfix {
            port,
            dir,
            master_pid: None,
        };
        let root = postfix.dir().to_path_buf();
        for sub in ["etc", "queue", "data", "log"] {
            fs::create_dir(root.join(sub)).expect("create Postfix dirs");
        }
        let chown = Command::new("chown")
            .arg("postfix:postfix")
            .arg(root.join("data"))
            .status()
            .expect("run chown");
        assert!(
            chown.success(),
            "chown postfix:postfix {}: {chown} (does the postfix user exist?)",
            root.join("data").display()
        );
        if options.starttls {
            write_certificate(&root.join("etc"));
        }
        fs::write(root.join("etc/main.cf"), main_cf(&root, options)).expect("write main.cf");
        fs::write(root.join("etc/master.cf"), master_cf(port)).expect("write master.cf");

        let start_log = root.join("log/start.log");
        let output = fs::File::create(&start_log).expect("create start.log");
        let status = run_bounded(
            Command::new(POSTFIX)
                .arg("-c")
                .arg(postfix.etc())
                .arg("start")
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("dup start.log"))
                .stderr(output),
            PATIENCE,
        );
        postfix.master_pid = postfix.read_master_pid();
        let failure = |postfix: &PrivatePostfix, what: String| {
            let start = fs::read_to_string(&start_log).unwrap_or_default();
            let log = postfix.log();
            StartError {
                port_taken: options.port.is_none()
                    && (start.contains("Address already in use")
                        || log.contains("Address already in use")),
                message: format!(
                    "{what}\n`postfix start` said:\n{start}\nmaillog ({}):\n{log}\n\
                     `postfix check` on a terminal said:\n{}",
                    postfix.maillog_path().display(),
                    postfix.check_on_terminal()
                ),
            }
        };
        match status {
            Some(status) if status.success() => {}
            Some(status) => return Err(failure(&postfix, format!("`postfix start` {status}"))),
            None => {
                return Err(failure(
                    &postfix,
                    format!("`postfix start` did not finish in {PATIENCE:?}"),
                ));
            }
        }
        let listening = wait_until(&format!("Postfix listening on 127.0.0.1:{port}"), || {
            is_listening(port).then_some(())
        });
        if let Err(e) = listening {
            return Err(failure(&postfix, e));
        }
        if postfix.master_pid.is_none() {
            postfix.master_pid = postfix.read_master_pid();
        }
        Ok(postfix)
    }

    /// The smtpd port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The smtpd address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The instance's folder (`etc/`, `queue/`, `data/`, `log/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `config_directory`.
    pub fn etc(&self) -> PathBuf {
        self.dir().join("etc")
    }

    /// The `maillog_file`.
    pub fn maillog_path(&self) -> PathBuf {
        self.dir().join("log/maillog")
    }

    /// Postfix's log so far ("" before postlogd wrote anything).
    pub fn log(&self) -> String {
        fs::read(self.maillog_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits (up to `PATIENCE`) until the log contains `needle`, and returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_until(&format!("{needle:?} in Postfix's log"), || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
        .unwrap_or_else(|e| panic!("{e}\nPostfix log:\n{}", self.log()))
    }

    /// Messages in Postfix's queue: files in incoming, active, deferred, maildrop and hold.
    pub fn queue_count(&self) -> usize {
        let queue = self.dir().join("queue");
        ["incoming", "active", "deferred", "maildrop", "hold"]
            .iter()
            .map(|sub| count_files(&queue.join(sub)))
            .sum()
    }

    /// Waits (up to `PATIENCE`) until Postfix's queue is empty.
    pub fn wait_for_empty_queue(&self) {
        wait_until("an empty Postfix queue", || {
            (self.queue_count() == 0).then_some(())
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e} ({} left)\nPostfix log:\n{}",
                self.queue_count(),
                self.log()
            )
        });
    }

    /// What `postfix -c DIR check` prints. Postfix commands write errors to stderr only if
    /// it is a terminal (else to syslog, absent here, or postlogd, not running yet), so a
    /// broken `main.cf` leaves no trace anywhere: `script` lends it a terminal.
    fn check_on_terminal(&self) -> String {
        let output = self.dir().join("log/check.log");
        let Ok(file) = fs::File::create(&output) else {
            return "(cannot create check.log)".to_string();
        };
        let command = format!("{POSTFIX} -c {} check", self.etc().display());
        let ran = Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|child| wait_bounded(child, Duration::from_secs(10)));
        match ran {
            None => format!("(`script` is not available: run `{command}` on a terminal)"),
            Some(_) => fs::read_to_string(&output).unwrap_or_default(),
        }
    }

    /// The master process: the root of the instance's process tree, for measuring its CPU
    /// and memory.
    pub fn master_pid(&self) -> Option<i32> {
        self.master_pid.or_else(|| self.read_master_pid())
    }

    /// The master's pid, from `queue/pid/master.pid`, if it is running.
    fn read_master_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.dir().join("queue/pid/master.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        (pid > 1 && is_alive(pid)).then_some(pid)
    }

    /// `postfix stop`, then `postfix abort`, then SIGTERM and SIGKILL to the master, each
    /// step bounded.
    fn stop(&mut self) {
        let Some(pid) = self.master_pid.take().or_else(|| self.read_master_pid()) else {
            return;
        };
        let postfix = |action: &str| {
            run_bounded(
                Command::new(POSTFIX)
                    .arg("-c")
                    .arg(self.etc())
                    .arg(action)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
                STOP_PATIENCE,
            )
        };
        postfix("stop");
        if wait_gone(pid, STOP_PATIENCE) {
            return;
        }
        postfix("abort");
        if wait_gone(pid, Duration::from_secs(3)) {
            return;
        }
        let Some(master) = rustix::process::Pid::from_raw(pid) else {
            return;
        };
        let _ = rustix::process::kill_process(master, rustix::process::Signal::TERM);
        if !wait_gone(pid, Duration::from_secs(3)) {
            let _ = rustix::process::kill_process(master, rustix::process::Signal::KILL);
            wait_gone(pid, Duration::from_secs(3));
        }
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `main.cf` for an instance rooted at `root`.
fn main_cf(root: &Path, options: &PostfixOptions) -> String {
    let root = root.display();
    let relayhost = options
        .relayhost
        .map(|port| format!("[127.0.0.1]:{port}"))
        .unwrap_or_default();
    let transport_maps = if options.transports.is_empty() {
        String::new()
    } else {
        let entries: Vec<String> = options
            .transports
            .iter()
            .map(|(domain, port)| format!("{domain}=smtp:[127.0.0.1]:{port}"))
            .collect();
        format!("inline:{{ {} }}", entries.join(", "))
    };
    let tls = if options.starttls {
        format!(
            "smtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = {root}/etc/cert.pem\n\
             smtpd_tls_key_file = {root}/etc/key.pem\n\
             smtpd_tls_loglevel = 1\n"
        )
    } else {
        "smtpd_tls_security_level = none\n".to_string()
    };
    let mut cf = format!(
        "# private interop-test instance (generated by tests/common/postfix.rs)\n\
         compatibility_level = 3.6\n\
         config_directory = {root}/etc\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         maillog_file = {root}/log/maillog\n\
         maillog_file_prefixes = {root}/log\n\
         myhostname = {HOSTNAME}\n\
         mydomain = interop.test\n\
         myorigin = $myhostname\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks_style = host\n\
         mynetworks = 127.0.0.0/8\n\
         mydestination =\n\
         relay_domains =\n\
         local_recipient_maps =\n\
         alias_maps =\n\
         alias_database =\n\
         relayhost = {relayhost}\n\
         transport_maps = {transport_maps}\n\
         default_transport = smtp\n\
         smtp_dns_support_level = disabled\n\
         smtp_host_lookup = native\n\
         smtpd_peername_lookup = no\n\
         smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
         smtpd_recipient_restrictions =\n\
         local_header_rewrite_clients =\n\
         smtp_tls_security_level = none\n\
         {tls}\
         biff = no\n\
         append_dot_mydomain = no\n\
         readme_directory = no\n"
    );
    for line in &options.main_cf {
        cf.push_str(line);
        cf.push('\n');
    }
    cf
}

/// `master.cf`: one smtpd on 127.0.0.1:`port`, the usual internal services, no chroot.
fn master_cf(port: u16) -> String {
    format!(
        "# service type  private unpriv  chroot  wakeup  maxproc command + args\n\
         127.0.0.1:{port} inet n - n - - smtpd\n\
         pickup    unix  n       -       n       60      1       pickup\n\
         cleanup   unix  n       -       n       -       0       cleanup\n\
         qmgr      unix  n       -       n       300     1       qmgr\n\
         tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n\
         rewrite   unix  -       -       n       -       -       trivial-rewrite\n\
         bounce    unix  -       -       n       -       0       bounce\n\
         defer     unix  -       -       n       -       0       bounce\n\
         trace     unix  -       -       n       -       0       bounce\n\
         verify    unix  -       -       n       -       1       verify\n\
         flush     unix  n       -       n       1000?   0       flush\n\
         proxymap  unix  -       -       n       -       -       proxymap\n\
         proxywrite unix -       -       n       -       1       proxymap\n\
         smtp      unix  -       -       n       -       -       smtp\n\
         relay     unix  -       -       n       -       -       smtp\n\
         showq     unix  n       -       n       -       -       showq\n\
         error     unix  -       -       n       -       -       error\n\
         retry     unix  -       -       n       -       -       error\n\
         discard   unix  -       -       n       -       -       discard\n\
         anvil     unix  -       -       n       -       1       anvil\n\
         scache    unix  -       -       n       -       1       scache\n\
         postlog   unix-dgram n  -       n       -       1       postlogd\n"
    )
}

/// A self-signed certificate for "localhost" in `etc/cert.pem`, its key in `etc/key.pem`
/// (root-only: smtpd reads it before it drops privileges).
fn write_certificate(etc: &Path) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed cert");
    let cert = etc.join("cert.pem");
    let key = etc.join("key.pem");
    fs::write(&cert, certified.cert.pem()).expect("write cert.pem");
    fs::write(&key, certified.signing_key.serialize_pem()).expect("write key.pem");
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).expect("chmod cert.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key.pem");
}

/// Runs `command` and waits at most `limit`; `None` (and the process killed) if it did not
/// finish in time.
fn run_bounded(command: &mut Command, limit: Duration) -> Option<ExitStatus> {
    match command.spawn() {
        Ok(child) => wait_bounded(child, limit),
        Err(e) => panic!("cannot run {command:?}: {e}"),
    }
}

/// Waits for `child` at most `limit`; `None` (and the process killed) if it did not exit.
pub(crate) fn wait_bounded(mut child: Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True while `pid` exists and is not a zombie.
fn is_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may contain anything.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until `pid` is gone, at most `limit`; true if it is.
fn wait_gone(pid: i32, limit: Duration) -> bool {
    let started = Instant::now();
    while is_alive(pid) {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// True if a socket listens on 127.0.0.1:`port` (from /proc/net/tcp, so that checking does
/// not open a connection Postfix would log).
fn is_listening(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local = fields.next();
            let state = fields.nth(1);
            local == Some(wanted.as_str()) && state == Some("0A")
        })
    })
}

/// Regular files under `dir`, recursively (deferred/ is hashed into subfolders).
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}
