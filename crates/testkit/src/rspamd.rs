//! A private rspamd for interop tests: Debian's `/usr/bin/rspamd` in the foreground with a
//! self-contained configuration in a temporary folder (none of `/etc/rspamd` is read),
//! one proxy worker in milter mode on `127.0.0.1:PORT` that scans by itself, and local
//! checks only: no Redis, DNS pointed at a closed loopback port, no controller, a
//! five-entry TLD list instead of the public suffix list (which takes seconds to compile).
//!
//! What it decides, so tests can ask for each answer:
//! - the GTUBE string rejects the message (`554 5.7.1 Gtube pattern`), as rspamd always
//!   does;
//! - a message whose Subject is [`ADD_HEADER_SUBJECT`] scores 10 (symbol
//!   `POSTHORN_TEST`), which is the "add header" action: rspamd adds `X-Spam: Yes`;
//! - anything else passes without changes.
//!
//! ```ignore
//! let rspamd = Rspamd::start();
//! let client = MilterClient::open(&rspamd.milter_address().parse()?, Options::default()).await?;
//! ```
//!
//! Dropping it stops it (SIGTERM to the main process, which ends its workers; SIGKILL
//! if it has not exited within a bound) and removes its folder.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postfix::free_port;
use crate::{PATIENCE, wait_until};

/// The `rspamd` command of Debian's package.
pub const RSPAMD: &str = "/usr/bin/rspamd";

/// The GTUBE test string, which makes rspamd reject a message.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A Subject that makes the private rspamd choose "add header".
pub const ADD_HEADER_SUBJECT: &str = "posthorn add header";

/// How long rspamd may take to stop after SIGTERM.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A running private rspamd.
pub struct Rspamd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Rspamd {
    /// Writes the configuration, starts rspamd and waits (bounded) until its milter port
    /// accepts connections. Panics with rspamd's own output if it is not installed or
    /// does not start; a port taken meanwhile by another process is retried.
    pub fn start() -> Rspamd {
        assert!(
            Path::new(RSPAMD).is_file(),
            "rspamd is not installed ({RSPAMD} is missing): the milter interop tests need \
             Debian's rspamd package (apt-get install rspamd)"
        );
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Rspamd::try_start() {
                Ok(rspamd) => return rspamd,
                Err(output) => failures.push(output),
            }
        }
        panic!(
            "private rspamd did not start:\n{}",
            failures.join("\n---- next attempt ----\n")
        );
    }

    /// Its milter's address, `127.0.0.1:PORT`.
    pub fn milter_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its milter's address in Postfix's notation, `inet:127.0.0.1:PORT`.
    pub fn milter_address(&self) -> String {
        format!("inet:{}", self.milter_addr())
    }

    /// What rspamd has written to its standard output and error so far (its log).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("rspamd.out")).unwrap_or_default()
    }

    /// Starts one instance; on failure its output (and the instance is gone).
    fn try_start() -> Result<Rspamd, String> {
        let dir = tempfile::Builder::new()
            .prefix("posthorn-rspamd-")
            .tempdir()
            .expect("temp dir for rspamd");
        let port = free_port();
        write_config(dir.path(), port);
        let out = File::create(dir.path().join("rspamd.out")).expect("rspamd output file");
        let err = out.try_clone().expect("rspamd output file");
        let mut command = Command::new(RSPAMD);
        command
            .arg("-f")
            .arg("-c")
            .arg(dir.path().join("rspamd.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // As root, rspamd insists on being told which user its workers run as.
        if rustix::process::geteuid().is_root() {
            command.args(["-u", "root", "-g", "root"]);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {RSPAMD}: {e}"));
        let mut rspamd = Rspamd { child, port, dir };
        let ready = wait_until("rspamd's milter port", || {
            if TcpStream::connect(rspamd.milter_addr()).is_ok() {
                return Some(true);
            }
            matches!(rspamd.child.try_wait(), Ok(Some(_))).then_some(false)
        });
        match ready {
            Ok(true) => Ok(rspamd),
            Ok(false) => Err(rspamd.log()),
            Err(e) => Err(format!("{e} ({PATIENCE:?}):\n{}", rspamd.log())),
        }
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let started = Instant::now();
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if started.elapsed() > STOP_PATIENCE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// rspamd's configuration, its one rule and its TLD list, all in `dir`.
fn write_config(dir: &Path, port: u16) {
    let path = |name: &str| dir.join(name).display().to_string();
    fs::create_dir_all(dir.join("db")).expect("rspamd db dir");
    fs::write(dir.join("tld.dat"), "com\nnet\norg\ntest\nexample\n").expect("write tld.dat");
    fs::write(
        dir.join("rules.lua"),
        format!(
            r#"rspamd_config:register_symbol({{
  name = 'POSTHORN_TEST',
  score = 10.0,
  callback = function(task)
    return task:get_header('Subject') == '{ADD_HEADER_SUBJECT}'
  end,
}})
"#
        ),
    )
    .expect("write rules.lua");
    let config = format!(
        r#"options {{
  pidfile = "{pid}";
  dbdir = "{db}";
  tempdir = "{dir}";
  url_tld = "{tld}";
  disable_hyperscan = true;
  local_addrs = [];
  dns {{ nameserver = ["127.0.0.1:9"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "console"; level = "info"; }}
actions {{ add_header = 6; reject = 15; }}
lua = "{rules}";
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  timeout = 60s;
  count = 1;
  upstream "local" {{ default = yes; self_scan = yes; }}
}}
"#,
        pid = path("rspamd.pid"),
        db = path("db"),
        dir = dir.display(),
        tld = path("tld.dat"),
        rules = path("rules.lua"),
    );
    fs::write(dir.join("rspamd.conf"), config).expect("write rspamd.conf");
}
