//! The Sieve scripts of one account, kept in its Maildir root's `sieve/` folder as
//! `NAME.sieve`, with `.active` naming the one that runs at delivery (Pigeonhole keeps
//! them in `~/sieve` with a `.dovecot.sieve` link). Every change is atomic: a temporary
//! file synced and renamed, then the folder synced, so a crash leaves the old script or
//! the new one.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest script taken (Pigeonhole's default `sieve_max_script_size`).
pub const MAX_SCRIPT: usize = 1024 * 1024;

/// Scripts one account may keep.
pub const MAX_SCRIPTS: usize = 100;

/// Longest script name, in characters.
const MAX_NAME: usize = 128;

/// The file naming the active script.
const ACTIVE: &str = ".active";

/// Why a script operation was refused; the ManageSieve response code it maps to.
#[derive(Debug)]
pub enum ScriptError {
    /// No script of that name (`NONEXISTENT`).
    NonExistent,
    /// A script of the new name exists (`ALREADYEXISTS`).
    AlreadyExists,
    /// The active script cannot be deleted (`ACTIVE`).
    Active,
    /// Over a limit (`QUOTA/MAXSIZE`, `QUOTA/MAXSCRIPTS`).
    Quota(&'static str),
    /// Not a name a script may have (RFC 5804 §1.6).
    BadName(String),
    /// The disk failed.
    Io(io::Error),
}

impl From<io::Error> for ScriptError {
    fn from(e: io::Error) -> Self {
        ScriptError::Io(e)
    }
}

/// One account's scripts.
#[derive(Debug, Clone)]
pub struct Scripts {
    dir: PathBuf,
}

/// Checks a script name: UTF-8 without control characters (RFC 5804 §1.6), and usable
/// as a file name (no `/`, not starting with `.`), at most [`MAX_NAME`] characters.
pub fn check_name(name: &str) -> Result<(), ScriptError> {
    let bad = |why: &str| Err(ScriptError::BadName(format!("{why}: {name:?}")));
    if name.is_empty() {
        return bad("empty script name");
    }
    if name.chars().count() > MAX_NAME {
        return bad("script name too long");
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '/' | '\\'))
    {
        return bad("forbidden character in script name");
    }
    if name.starts_with('.') {
        return bad("script name starts with a dot");
    }
    Ok(())
}

impl Scripts {
    /// The scripts of the Maildir whose root is `root`.
    pub fn of(root: &Path) -> Scripts {
        Scripts {
            dir: root.join("sieve"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sieve"))
    }

    /// Every script, by name, and whether it is the active one.
    pub fn list(&self) -> io::Result<Vec<(String, bool)>> {
        let active = self.active_name()?;
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(name) = name.strip_suffix(".sieve")
                && check_name(name).is_ok()
            {
                let is_active = active.as_deref() == Some(name);
                names.push((name.to_string(), is_active));
            }
        }
        names.sort();
        Ok(names)
    }

    /// A script's text.
    pub fn get(&self, name: &str) -> Result<String, ScriptError> {
        check_name(name)?;
        match fs::read(self.path(name)) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ScriptError::NonExistent),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a script `name` of `size` octets would fit (HAVESPACE, and PUTSCRIPT's
    /// check before it writes).
    pub fn has_space(&self, name: &str, size: usize) -> Result<(), ScriptError> {
        check_name(name)?;
        if size > MAX_SCRIPT {
            return Err(ScriptError::Quota("QUOTA/MAXSIZE"));
        }
        let scripts = self.list()?;
        if scripts.len() >= MAX_SCRIPTS && !scripts.iter().any(|(n, _)| n == name) {
            return Err(ScriptError::Quota("QUOTA/MAXSCRIPTS"));
        }
        Ok(())
    }

    /// Stores `text` as `name`, replacing a script of that name.
    pub fn put(&self, name: &str, text: &str) -> Result<(), ScriptError> {
        self.has_space(name, text.len())?;
        self.write(&format!("{name}.sieve"), text.as_bytes())?;
        Ok(())
    }

    /// Deletes a script; never the active one (RFC 5804 §2.10).
    pub fn delete(&self, name: &str) -> Result<(), ScriptError> {
        check_name(name)?;
        if self.active_name()?.as_deref() == Some(name) {
            return Err(ScriptError::Active);
        }
        match fs::remove_file(self.path(name)) {
            Ok(()) => Ok(sync_dir(&self.dir)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ScriptError::NonExistent),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames a script; the active one stays active under its new name (§2.11.1).
    pub fn rename(&self, old: &str, new: &str) -> Result<(), ScriptError> {
        check_name(old)?;
        check_name(new)?;
        if !self.path(old).exists() {
            return Err(ScriptError::NonExistent);
        }
        if self.path(new).exists() {
            return Err(ScriptError::AlreadyExists);
        }
        let was_active = self.active_name()?.as_deref() == Some(old);
        fs::rename(self.path(old), self.path(new))?;
        sync_dir(&self.dir)?;
        if was_active {
            self.set_active(Some(new))?;
        }
        Ok(())
    }

    /// Makes `name` the active script, or none (SETACTIVE "").
    pub fn set_active(&self, name: Option<&str>) -> Result<(), ScriptError> {
        match name {
            Some(name) => {
                check_name(name)?;
                if !self.path(name).exists() {
                    return Err(ScriptError::NonExistent);
                }
                self.write(ACTIVE, name.as_bytes())?;
            }
            None => match fs::remove_file(self.dir.join(ACTIVE)) {
                Ok(()) => sync_dir(&self.dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }

    /// The active script's name, if one is active and exists.
    pub fn active_name(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(self.dir.join(ACTIVE)) {
            Ok(name) => {
                let name = name.trim_end().to_string();
                Ok((check_name(&name).is_ok() && self.path(&name).exists()).then_some(name))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The active script: its name and text.
    pub fn active(&self) -> io::Result<Option<(String, String)>> {
        let Some(name) = self.active_name()? else {
            return Ok(None);
        };
        match self.get(&name) {
            Ok(text) => Ok(Some((name, text))),
            Err(ScriptError::Io(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Replaces `file` in the folder atomically.
    fn write(&self, file: &str, bytes: &[u8]) -> io::Result<()> {
        static UNIQUE: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(&self.dir)?;
        let temporary = self.dir.join(format!(
            ".tmp.{}.{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let written = File::create(&temporary)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&temporary, self.dir.join(file)));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written?;
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_list_activate_rename_and_delete() {
        let root = tempfile::tempdir().unwrap();
        let scripts = Scripts::of(root.path());
        assert!(scripts.list().unwrap().is_empty());
        scripts.put("vacation", "keep;").unwrap();
        scripts.put("junk", "discard;").unwrap();
        assert!(matches!(
            scripts.set_active(Some("nope")),
            Err(ScriptError::NonExistent)
        ));
        scripts.set_active(Some("vacation")).unwrap();
        assert_eq!(
            scripts.list().unwrap(),
            [("junk".to_string(), false), ("vacation".to_string(), true)]
        );
        assert!(matches!(
            scripts.delete("vacation"),
            Err(ScriptError::Active)
        ));
        assert!(matches!(
            scripts.rename("junk", "vacation"),
            Err(ScriptError::AlreadyExists)
        ));
        scripts.rename("vacation", "away").unwrap();
        assert_eq!(
            scripts.active().unwrap(),
            Some(("away".into(), "keep;".into()))
        );
        scripts.set_active(None).unwrap();
        assert_eq!(scripts.active().unwrap(), None);
        scripts.delete("away").unwrap();
        assert!(matches!(scripts.get("away"), Err(ScriptError::NonExistent)));
        let leftovers: Vec<_> = fs::read_dir(root.path().join("sieve"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["junk.sieve"]);
    }

    #[test]
    fn names_and_sizes_are_bounded() {
        let root = tempfile::tempdir().unwrap();
        let scripts = Scripts::of(root.path());
        for bad in [
            "",
            "../x",
            ".hidden",
            "a\u{0}b",
            "tab\tname",
            &"x".repeat(200),
        ] {
            assert!(
                matches!(scripts.put(bad, "keep;"), Err(ScriptError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            scripts.has_space("big", MAX_SCRIPT + 1),
            Err(ScriptError::Quota("QUOTA/MAXSIZE"))
        ));
        scripts.put("Vacances été", "keep;").unwrap();
        assert_eq!(scripts.get("Vacances été").unwrap(), "keep;");
    }
}
