//! A `posthorn serve` process the benchmark and the soak start, kill and restart.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Posthorn.
pub struct Posthorn {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Its mx listener (fixed in its config, so a restart keeps it).
    pub addr: SocketAddr,
}

impl Posthorn {
    /// Starts `binary` with `config` (whose listener is `addr`), logging into `log`.
    pub fn start(
        binary: &Path,
        config: &Path,
        addr: SocketAddr,
        log: &Path,
    ) -> std::io::Result<Posthorn> {
        let mut server = Posthorn {
            binary: binary.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            child: None,
            addr,
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the server greets.
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        loop {
            if let Ok(stream) = TcpStream::connect(self.addr) {
                let mut greeting = [0u8; 3];
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                if std::io::Read::read_exact(&mut &stream, &mut greeting).is_ok()
                    && &greeting == b"220"
                {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(std::io::Error::other(format!(
                    "posthorn exited with {status}; see {}",
                    self.log.display()
                )));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(std::io::Error::other("posthorn did not start within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its pid.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// SIGKILL, the crash the spool must survive.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after `kill9` or `stop`.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill9();
        self.launch()
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Posthorn {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
