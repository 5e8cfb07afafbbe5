//! The two IMAP servers under test, each started afresh in a folder of its own with the
//! same users, the same password hash and hard-linked copies of the same Maildirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::imap::dovecot::PrivateDovecot;
use crate::imap::mailbox::link_copy;
use crate::procs::Tree;
use crate::server::{Posthorn, free_port};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapServer {
    /// Us.
    Posthorn,
    /// Debian's Dovecot.
    Dovecot,
}

impl ImapServer {
    /// Both, Posthorn first.
    pub const BOTH: [ImapServer; 2] = [ImapServer::Posthorn, ImapServer::Dovecot];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            ImapServer::Posthorn => "Posthorn",
            ImapServer::Dovecot => "Dovecot",
        }
    }
}

/// The accounts both servers get.
pub struct Site {
    /// Everyone's password.
    pub password: String,
    /// Its argon2id PHC string (`$argon2id$...`), made by `doveadm pw`: both servers check
    /// the same parameters.
    pub hash: String,
    /// Users with mail: each gets a copy of the Maildir at the path.
    pub mailboxes: Vec<(String, PathBuf)>,
    /// Users without mail (the first-login measurement).
    pub bare_users: Vec<String>,
}

impl Site {
    fn users(&self) -> impl Iterator<Item = &str> {
        self.mailboxes
            .iter()
            .map(|(user, _)| user.as_str())
            .chain(self.bare_users.iter().map(String::as_str))
    }

    /// Copies every mailbox into `mail/<user>` under `root`.
    fn fill(&self, mail: &Path) -> anyhow::Result<()> {
        for (user, template) in &self.mailboxes {
            link_copy(template, &mail.join(user))?;
        }
        Ok(())
    }
}

/// A server running for one measurement; stopped when dropped.
pub struct Running {
    /// Its IMAP listener.
    pub addr: SocketAddr,
    /// Its processes.
    pub tree: Tree,
    _process: Box<dyn std::any::Any>,
    /// Removed after the server has stopped (fields drop in order).
    _dir: tempfile::TempDir,
}

/// Starts `server` with `site`'s users and mail, in a fresh folder under `parent`.
pub fn start(
    server: ImapServer,
    site: &Site,
    posthorn: &Path,
    parent: &Path,
) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir_in(parent)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (root, process): (i32, Box<dyn std::any::Any>) = match server {
        ImapServer::Posthorn => {
            let data = dir.path().join("data");
            site.fill(&data.join("mail"))?;
            let mx = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut config = format!(
                "[server]\nhostname = \"posthorn.bench.example\"\ndata_dir = \"{}\"\n\n\
                 [[listener]]\nrole = \"mx\"\naddress = \"{mx}\"\n\n\
                 [[listener]]\nrole = \"imap\"\naddress = \"{addr}\"\nallow_plaintext_auth = true\n\n\
                 [limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n\n\
                 [[domain]]\nname = \"bench.example\"\n",
                data.display()
            );
            for user in site.users() {
                config.push_str(&format!(
                    "\n[[account]]\nname = \"{user}\"\npassword = \"{}\"\n",
                    site.hash
                ));
            }
            let path = dir.path().join("posthorn.toml");
            std::fs::write(&path, config)?;
            let process = Posthorn::start(posthorn, &path, mx, &dir.path().join("posthorn.log"))?;
            wait_greeting(addr, || Ok(()))?;
            let pid = process.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
            (pid, Box::new(process))
        }
        ImapServer::Dovecot => {
            // Dovecot runs unprivileged: it must be able to reach its folder.
            set_mode(dir.path(), 0o755)?;
            site.fill(&dir.path().join("mail"))?;
            let users: String = site
                .users()
                .map(|user| format!("{user}:{{ARGON2ID}}{}\n", site.hash))
                .collect();
            let dovecot = PrivateDovecot::start(dir.path(), addr, &users)?;
            (dovecot.pid, Box::new(dovecot))
        }
    };
    Ok(Running {
        addr,
        tree: Tree { root },
        _process: process,
        _dir: dir,
    })
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Waits (up to 30 s) until `addr` greets with `* OK`; `exited` says whether the server
/// died meanwhile (an error ends the wait).
pub fn wait_greeting(
    addr: SocketAddr,
    mut exited: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(stream) = std::net::TcpStream::connect(addr) {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut greeting = [0u8; 4];
            if std::io::Read::read_exact(&mut &stream, &mut greeting).is_ok()
                && &greeting == b"* OK"
            {
                return Ok(());
            }
        }
        exited()?;
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{addr} did not greet within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
