//! Replacing a small file (users, sending counters, our certificate) so that a crash
//! leaves the old version or the new one, never half of one: write a temporary file
//! beside it, sync it, rename it over the old one, sync the folder. The temporary name is
//! new for every write, so two writers at once never write into one file.

use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Replaces `path` with `bytes`; a new file gets permissions `mode`.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut unique = [0u8; 8];
    getrandom::fill(&mut unique).map_err(|e| io::Error::other(e.to_string()))?;
    let temporary = folder.join(format!(".{name}.{:016x}.tmp", u64::from_ne_bytes(unique)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        // A unique name is never reused: a failed write must not leave it behind.
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    sync_folder(folder)
}

/// Makes the names in `folder` durable (after a file in it was removed or renamed).
pub fn sync_folder(folder: &Path) -> io::Result<()> {
    std::fs::File::open(folder)?.sync_all()
}

/// Locks `path` for a read-modify-write until the returned file is dropped: an exclusive
/// `flock` on `<path>.lock` beside it (the file itself is replaced by each write, so it
/// cannot hold the lock).
pub fn lock_beside(path: &Path) -> io::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(std::path::PathBuf::from(name))?;
    file.lock()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_the_mode_and_leaves_no_temporary() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f.txt");
        replace(&path, b"one", 0o600).unwrap();
        replace(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }
}
