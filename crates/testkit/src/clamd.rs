//! A private ClamAV daemon for tests: Debian's `/usr/sbin/clamd` in the foreground with its
//! own configuration, signature databases, sockets, log and temporary files in a temporary
//! folder. It never touches the system instance (`/etc/clamav`, `/var/lib/clamav`).
//!
//! ```ignore
//! let clamd = PrivateClamd::start();
//! // ... scan through clamd.socket() or clamd.tcp_addr() ...
//! ```
//!
//! Its databases are two small files of our own, not ClamAV's (tests do not download, and
//! clamd 1.x knows no EICAR without ClamAV's `main.cvd`): [`EICAR_SIGNATURE`], an MD5 hash
//! signature (`.hdb`) of the EICAR test file, and [`CUSTOM_SIGNATURE`], a body signature
//! (`.ndb`) matching [`CUSTOM_MARKER`] anywhere in a stream. It listens on a Unix socket
//! and on `127.0.0.1:PORT`, scans mail (`ScanMail yes`: MIME parts are decoded and scanned
//! one by one) and takes streams of up to [`STREAM_MAX_LENGTH`]. Dropping it stops it
//! (SIGTERM, then SIGKILL after a bounded wait).

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postfix::{free_port, wait_bounded};
use crate::wait_until;

/// The `clamd` of Debian's `clamav-daemon` package.
pub const CLAMD: &str = "/usr/sbin/clamd";

/// clamd's `StreamMaxLength`: the largest stream it scans (1 MiB).
pub const STREAM_MAX_LENGTH: usize = 1 << 20;

/// The name clamd reports for the EICAR test file. Signatures from databases other than
/// ClamAV's own get `.UNOFFICIAL` appended.
pub const EICAR_SIGNATURE: &str = "Eicar-Test-Signature.UNOFFICIAL";

/// The name clamd reports for a stream containing [`CUSTOM_MARKER`].
pub const CUSTOM_SIGNATURE: &str = "Posthorn.Test.Marker.UNOFFICIAL";

/// The octets our own signature matches, at any offset in any kind of file.
pub const CUSTOM_MARKER: &[u8] = b"POSTHORN-CLAMD-TEST-MARKER-5e0c1d";

/// The MD5 of [`eicar`], as the EICAR hash signature names it (the file the `.hdb` line
/// describes is fixed, so its hash is too).
const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

/// How long clamd has to stop after SIGTERM before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// The 68-octet EICAR anti-virus test file (eicar.org). Assembled at run time so that this
/// source file is not itself reported by scanners on developers' machines.
pub fn eicar() -> Vec<u8> {
    let head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    let tail = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    [head, tail].concat().into_bytes()
}

/// A running private clamd; dropping it stops it and removes its folder.
pub struct PrivateClamd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl PrivateClamd {
    /// Writes the configuration and databases into a new temporary folder, starts clamd and
    /// waits (bounded) until it answers PING on both sockets. Panics with clamd's own words
    /// if it is not installed or does not start.
    pub fn start() -> PrivateClamd {
        assert!(
            Path::new(CLAMD).is_file(),
            "clamd is not installed ({CLAMD} is missing): the ClamAV tests need Debian's \
             clamav-daemon package (apt-get install clamav-daemon)"
        );
        let mut failures = Vec::new();
        // Another process may take the free port before clamd binds it; clamd then goes on
        // without TCP, so a start fails and is retried on another port.
        for _ in 0..3 {
            match Self::try_start() {
                Ok(clamd) => return clamd,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "private clamd did not start:\n{}",
            failures.join("\n---- next attempt ----\n")
        );
    }

    fn try_start() -> Result<PrivateClamd, String> {
        let dir = tempfile::Builder::new()
            .prefix("posthorn-clamd-")
            .tempdir()
            .expect("temp dir for clamd");
        let root = dir.path();
        for sub in ["db", "tmp"] {
            fs::create_dir(root.join(sub)).expect("create clamd dirs");
        }
        write_databases(&root.join("db"));
        let port = free_port();
        fs::write(root.join("clamd.conf"), clamd_conf(root, port)).expect("write clamd.conf");
        let output = fs::File::create(root.join("output.log")).expect("create output.log");
        let started = Instant::now();
        let child = Command::new(CLAMD)
            .arg("--config-file")
            .arg(root.join("clamd.conf"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("dup output.log"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CLAMD}: {e}"));
        let mut clamd = PrivateClamd {
            dir,
            child: Some(child),
            port,
        };
        clamd.wait_for_pong()?;
        eprintln!(
            "private clamd answered PING {:?} after it was started",
            started.elapsed()
        );
        Ok(clamd)
    }

    /// Waits until clamd answers PING on its Unix socket, then checks it bound its TCP port
    /// (a failure there is only logged) and answers there too.
    fn wait_for_pong(&mut self) -> Result<(), String> {
        let socket = self.socket();
        let answered = wait_until("clamd answering PING", || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Some(Err(format!("clamd exited: {status}")));
            }
            UnixStream::connect(&socket)
                .ok()
                .and_then(|mut s| ping(&mut s))
                .map(Ok)
        });
        let failure = |what: String| format!("{what}\n{}", self.diagnosis());
        answered.and_then(|a| a).map_err(failure)?;
        let bound = format!("TCP: Bound to [127.0.0.1]:{}", self.port);
        if !self.log().contains(&bound) {
            return Err(failure(format!("clamd did not log {bound:?}")));
        }
        let tcp = std::net::TcpStream::connect(self.tcp_addr()).ok();
        match tcp.and_then(|mut s| ping(&mut s)) {
            Some(()) => Ok(()),
            None => Err(failure(format!("no PONG on {}", self.tcp_addr()))),
        }
    }

    /// clamd's Unix socket (`LocalSocket`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("clamd.sock")
    }

    /// clamd's TCP address (`TCPSocket` on `TCPAddr 127.0.0.1`).
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// clamd's log so far (its `LogFile`).
    pub fn log(&self) -> String {
        self.read("clamd.log")
    }

    /// Its log, and what it wrote to its standard output and error (where it says why it
    /// could not read its configuration), for a failure message.
    fn diagnosis(&self) -> String {
        format!(
            "clamd's output:\n{}\nclamd's log:\n{}",
            self.read("output.log"),
            self.log()
        )
    }

    fn read(&self, file: &str) -> String {
        fs::read(self.dir.path().join(file))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for PrivateClamd {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        wait_bounded(child, STOP_PATIENCE);
    }
}

/// Sends `zPING` and reads the reply (bounded by socket timeouts); `Some` on `PONG`.
fn ping<S: Read + Write + SocketTimeouts>(stream: &mut S) -> Option<()> {
    stream.set_timeouts(Duration::from_secs(2)).ok()?;
    stream.write_all(b"zPING\0").ok()?;
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).ok()?;
    (&reply == b"PONG\0").then_some(())
}

/// Read and write timeouts, which std's Unix and TCP streams both have under other names.
trait SocketTimeouts {
    fn set_timeouts(&self, limit: Duration) -> std::io::Result<()>;
}

impl SocketTimeouts for UnixStream {
    fn set_timeouts(&self, limit: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

impl SocketTimeouts for std::net::TcpStream {
    fn set_timeouts(&self, limit: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

/// Our two signature databases (formats: ClamAV's "Creating signatures" manual).
fn write_databases(db: &Path) {
    let name = EICAR_SIGNATURE.trim_end_matches(".UNOFFICIAL");
    // `.hdb`: MD5:size:name of a whole file.
    let hdb = format!("{EICAR_MD5}:{}:{name}\n", eicar().len());
    fs::write(db.join("posthorn.hdb"), hdb).expect("write posthorn.hdb");
    // `.ndb`: name:target type (0, any file):offset (*, anywhere):hex of the octets.
    let name = CUSTOM_SIGNATURE.trim_end_matches(".UNOFFICIAL");
    let hex = CUSTOM_MARKER.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    fs::write(db.join("posthorn.ndb"), format!("{name}:0:*:{hex}\n")).expect("write posthorn.ndb");
}

/// `clamd.conf` for an instance rooted at `root`, listening on `127.0.0.1:port` too. No
/// `User`: clamd runs as whoever runs the tests, who owns the folder.
fn clamd_conf(root: &Path, port: u16) -> String {
    let root = root.display();
    format!(
        "# private test instance (generated by posthorn-testkit's clamd.rs)\n\
         Foreground yes\n\
         LocalSocket {root}/clamd.sock\n\
         TCPSocket {port}\n\
         TCPAddr 127.0.0.1\n\
         DatabaseDirectory {root}/db\n\
         TemporaryDirectory {root}/tmp\n\
         PidFile {root}/clamd.pid\n\
         LogFile {root}/clamd.log\n\
         LogTime yes\n\
         StreamMaxLength {STREAM_MAX_LENGTH}\n\
         ScanMail yes\n\
         Bytecode no\n\
         MaxThreads 4\n"
    )
}
