//! A new, empty filesystem for every server start: ext4 on a loop device (direct I/O to
//! its image), made like the
//! filesystem the run is on (without a journal when that has none). Without a journal,
//! ext4 skips inodes freed in the last 60-300 s when it creates a file
//! (`recently_deleted` in fs/ext4/ialloc.c), so on one shared filesystem each case paid
//! for the tens of thousands of queue files the cases before it deleted, and the order
//! of the cases decided the comparison between them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::filesystem::Filesystem;

/// Room for every queue of a case; the image is sparse and takes only what is written.
const IMAGE_SIZE: u64 = 16 << 30;

/// A mounted fresh filesystem, unmounted and deleted when dropped.
#[derive(Debug)]
pub struct FreshFs {
    mount: tempfile::TempDir,
    image: PathBuf,
    device: PathBuf,
}

impl FreshFs {
    /// Makes and mounts one beside the temporary folder, like `host` (the filesystem the
    /// run is on).
    pub fn create(host: &Filesystem) -> anyhow::Result<FreshFs> {
        let mount = tempfile::Builder::new()
            .prefix("posthorn-bench-fs-")
            .tempdir()?;
        let image = mount.path().with_extension("img");
        std::fs::File::create(&image)?.set_len(IMAGE_SIZE)?;
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F"]);
        if host.journal == Some(false) {
            mkfs.args(["-O", "^has_journal"]);
        }
        run(mkfs.arg(&image))?;
        // Direct I/O to the image: without it, the image's own page cache sits under the
        // filesystem's, and a flush of the device syncs every dirty page of the image,
        // other programs' writes included, which no real disk does.
        let device = output(
            Command::new("losetup")
                .args(["--find", "--show", "--direct-io=on"])
                .arg(&image),
        )?;
        let fresh = FreshFs {
            mount,
            image,
            device: PathBuf::from(device.trim()),
        };
        run(Command::new("mount")
            .args(["-o", "relatime"])
            .arg(&fresh.device)
            .arg(fresh.mount.path()))?;
        Ok(fresh)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.mount.path()
    }
}

impl Drop for FreshFs {
    fn drop(&mut self) {
        // Lazily: a server's last processes may still be closing their files; the
        // filesystem goes when they have, and the device (detached now, which marks a
        // busy one to go then) with it.
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.mount.path())
            .status();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    output(command).map(drop)
}

/// What `command` printed, once it succeeded.
fn output(command: &mut Command) -> anyhow::Result<String> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
