//! The global scripts `include :global "NAME"` reads (RFC 6609 §3.2): `NAME.sieve` in
//! `[sieve] global_dir`, kept by the operator, as Pigeonhole's `sieve_global`. They are
//! read at each use, so an edited script counts from the next message on.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use posthorn_mailbox::managesieve::scripts::{MAX_SCRIPT, check_name};

use crate::config::{Config, Invalid};

/// The folder of global scripts.
#[derive(Debug, Clone)]
pub struct GlobalScripts {
    dir: PathBuf,
}

/// `[sieve] global_dir`, when set, names a folder that exists.
pub fn check_config(config: &Config) -> Result<(), Invalid> {
    let Some(dir) = &config.sieve.global_dir else {
        return Ok(());
    };
    match fs::metadata(dir.get_ref()) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Invalid::at("sieve.global_dir", dir, "not a folder")),
        Err(e) => Err(Invalid::at(
            "sieve.global_dir",
            dir,
            format!("cannot read the folder: {e}"),
        )),
    }
}

impl GlobalScripts {
    /// The global scripts of `config`, if it names their folder.
    pub fn of(config: &Config) -> Option<GlobalScripts> {
        let dir = config.sieve.global_dir.as_ref()?;
        Some(GlobalScripts {
            dir: dir.get_ref().clone(),
        })
    }

    /// The text of the global script `name`: `None` when there is none, or the name
    /// could reach outside the folder (a `/`, a leading dot: the rules ManageSieve gives
    /// personal names, RFC 5804 §1.6). Blocking.
    pub fn get(&self, name: &str) -> io::Result<Option<String>> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        read_bounded(&self.dir.join(format!("{name}.sieve")))
    }
}

/// A script file's text, at most one octet beyond [`MAX_SCRIPT`] (the compiler refuses
/// larger scripts; more need not be read).
fn read_bounded(path: &Path) -> io::Result<Option<String>> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SCRIPT as u64 + 1).read_to_end(&mut bytes)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("spam.sieve"), "discard;").unwrap();
        fs::write(dir.path().join(".hidden.sieve"), "discard;").unwrap();
        let outside = dir.path().join("outside.sieve");
        fs::write(&outside, "discard;").unwrap();
        let inner = dir.path().join("global");
        fs::create_dir(&inner).unwrap();
        let global = GlobalScripts { dir: inner.clone() };
        fs::write(inner.join("spam.sieve"), "discard;").unwrap();
        assert_eq!(global.get("spam").unwrap().as_deref(), Some("discard;"));
        for name in [
            "../outside",
            "../spam",
            ".hidden",
            "",
            "a/b",
            "a\\b",
            "a\nb",
        ] {
            assert_eq!(global.get(name).unwrap(), None, "{name:?}");
        }
        assert_eq!(global.get("absent").unwrap(), None);
    }
}
