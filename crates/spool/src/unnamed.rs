//! Files without a name until they are complete (`O_TMPFILE`, open(2)).
//!
//! A message is written into an unnamed file in the spool folder and given its name by one
//! `linkat` once its content is durable. Compared with a named file in `tmp/` renamed into
//! place, this changes the folders once per message instead of twice, and the file's inode
//! is allocated without the folder's lock: with a file created in a shared `tmp/`, the
//! committer's threads queued on that lock while ext4 searched for a free inode, and the
//! benchmark lost half its throughput at 50 clients to that wait. A crash leaves nothing
//! behind either: an unnamed file vanishes with its last descriptor.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Mode, OFlags};

/// A new, empty, unnamed file on the filesystem of `folder` (an open folder), mode 0600.
pub(crate) fn create_in(folder: &File) -> io::Result<File> {
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(folder, ".", flags, Mode::from_raw_mode(0o600))?;
    Ok(File::from(fd))
}

/// Gives an unnamed file the name `to`, which must not exist. The `/proc/self/fd` path
/// with `AT_SYMLINK_FOLLOW` is open(2)'s documented way for an unprivileged process
/// (`AT_EMPTY_PATH` needs `CAP_DAC_READ_SEARCH`).
pub(crate) fn give_name(file: &File, to: &Path) -> io::Result<()> {
    let descriptor = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(CWD, descriptor.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)?;
    Ok(())
}

/// Start-up check that `folder` supports both steps (not every filesystem has `O_TMPFILE`,
/// and a chroot may lack `/proc`): better a clear error now than a 451 for every message.
pub(crate) fn check(folder: &File, probe: &Path) -> io::Result<()> {
    let explain = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot make and name an unnamed file (O_TMPFILE, /proc/self/fd) at {}: {e}",
                probe.display()
            ),
        )
    };
    let file = create_in(folder).map_err(explain)?;
    let _ = std::fs::remove_file(probe);
    give_name(&file, probe).map_err(explain)?;
    std::fs::remove_file(probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn an_unnamed_file_appears_only_when_named() {
        let dir = tempfile::tempdir().unwrap();
        let folder = File::open(dir.path()).unwrap();
        let mut file = create_in(&folder).unwrap();
        file.write_all(b"content").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let to = dir.path().join("named");
        give_name(&file, &to).unwrap();
        let mut read = String::new();
        File::open(&to).unwrap().read_to_string(&mut read).unwrap();
        assert_eq!(read, "content");
        assert_eq!(
            give_name(&file, &to).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }

    #[test]
    fn the_check_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        check(&File::open(dir.path()).unwrap(), &dir.path().join("probe")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
