//! The filesystem that holds every server's queue in a run: what decides the cost of a sync
//! (its type, mount options and whether it keeps a journal) goes into the report, and a
//! filesystem in memory, where a sync costs nothing, is refused.

use std::path::{Path, PathBuf};

/// Types whose sync writes nothing durable.
const IN_MEMORY: [&str; 2] = ["tmpfs", "ramfs"];

/// A mounted filesystem, from `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub struct Filesystem {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The device (or source) mounted there.
    pub source: String,
    /// `ext4`, `xfs`, `tmpfs`...
    pub kind: String,
    /// Mount options and the filesystem's own options.
    pub options: String,
    /// Whether metadata goes through a journal: known for ext4 (a jbd2 journal shows in
    /// `/proc/fs/jbd2`), `None` elsewhere.
    pub journal: Option<bool>,
}

impl Filesystem {
    /// The filesystem holding `path` (the mount point that is its longest prefix).
    pub fn of(path: &Path) -> anyhow::Result<Filesystem> {
        let path = std::fs::canonicalize(path)?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut best: Option<Filesystem> = None;
        for line in mountinfo.lines() {
            let Some(found) = parse(line) else { continue };
            let longer = best.as_ref().is_none_or(|b| {
                found.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len()
            });
            if path.starts_with(&found.mount_point) && longer {
                best = Some(found);
            }
        }
        let mut filesystem =
            best.ok_or_else(|| anyhow::anyhow!("no mount holds {}", path.display()))?;
        if filesystem.kind.starts_with("ext") {
            let device = filesystem.source.rsplit('/').next().unwrap_or_default();
            filesystem.journal = Some(
                std::fs::read_dir("/proc/fs/jbd2")
                    .map(|entries| {
                        entries.flatten().any(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with(&format!("{device}-"))
                        })
                    })
                    .unwrap_or(false),
            );
        }
        Ok(filesystem)
    }

    /// Refuses a filesystem in memory: the figures would not include a single disk flush.
    pub fn ensure_on_disk(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !IN_MEMORY.contains(&self.kind.as_str()),
            "{} is {}: syncs cost nothing there, so the comparison would mean nothing; point \
             TMPDIR at a disk-backed filesystem",
            self.mount_point.display(),
            self.kind
        );
        Ok(())
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let journal = match self.journal {
            Some(true) => ", with a journal",
            Some(false) => ", without a journal",
            None => "",
        };
        format!(
            "{} on {}{journal}, mounted at {} ({})",
            self.kind,
            self.source,
            self.mount_point.display(),
            self.options
        )
    }
}

/// One mountinfo line: `id parent major:minor root mount-point options [optional...] - type
/// source super-options`.
fn parse(line: &str) -> Option<Filesystem> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let mount_point = unescape(fields.nth(4)?);
    let options = fields.next()?.to_string();
    let mut rest = after.split(' ');
    let kind = rest.next()?.to_string();
    let source = rest.next()?.to_string();
    let super_options = rest.next().unwrap_or_default();
    Some(Filesystem {
        mount_point: PathBuf::from(mount_point),
        source,
        kind,
        options: format!("{options}; {super_options}"),
        journal: None,
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.by_ref().take(3).collect();
            if let Ok(code) = u8::from_str_radix(&digits, 8) {
                out.push(code as char);
                continue;
            }
            out.push(c);
            out.push_str(&digits);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mountinfo_line() {
        let fs = parse(
            "27 1 254:0 / /srv/mail\\040queue rw,relatime shared:1 - ext4 /dev/vda rw,discard",
        )
        .unwrap();
        assert_eq!(fs.mount_point, PathBuf::from("/srv/mail queue"));
        assert_eq!(fs.kind, "ext4");
        assert_eq!(fs.source, "/dev/vda");
        assert_eq!(fs.options, "rw,relatime; rw,discard");
    }

    #[test]
    fn refuses_memory() {
        let fs = parse("30 1 0:30 / /tmp rw - tmpfs tmpfs rw,size=1g").unwrap();
        assert!(fs.ensure_on_disk().is_err());
    }
}
