//! Helpers shared by the POP3 and IMAP tests: listeners by role, and the messages of a
//! Maildir folder as they are on disk.

use std::net::SocketAddr;
use std::path::Path;

use super::TestServer;

/// Every listener with `role`, in the order the server logged them (its config order).
pub fn listeners(server: &TestServer, role: &str) -> Vec<SocketAddr> {
    let log = server.log();
    let last_start = log.rfind("--- start ---").unwrap_or(0);
    let found: Vec<SocketAddr> = log[last_start..]
        .lines()
        .filter(|l| l.contains("listening") && l.contains(&format!("role={role} ")))
        .filter_map(|l| l.split("address=").nth(1))
        .map(|a| a.trim().parse().expect("listening address"))
        .collect();
    assert!(!found.is_empty(), "no {role} listener in the log:\n{log}");
    found
}

/// The files of a Maildir folder (`cur/` and `new/`): (name, content), sorted by name.
pub fn maildir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(content) = std::fs::read(entry.path()) {
                files.push((name, content));
            }
        }
    }
    files.sort();
    files
}

pub fn subject_of(content: &[u8]) -> String {
    String::from_utf8_lossy(content)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("?")
        .trim()
        .to_string()
}
