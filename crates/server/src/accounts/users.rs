//! The users file (`users.toml`): accounts with passwords, added and changed by
//! `posthorn user` while the server runs. Each `[[user]]` has the keys of an `[[account]]`.
//! The CLI edits the file under an exclusive lock (so two commands at once each keep the
//! other's edit) and replaces it atomically; the server notices the change within a second
//! (or at once on SIGHUP) and swaps in a new directory, keeping the old one if the file is
//! broken.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use toml::Spanned;
use tracing::{info, warn};

use crate::accounts::directory::Directory;
use crate::config::{Account, Config, ConfigError, Invalid, key_of, line_of};

/// How often a running server looks at the users file.
const POLL: Duration = Duration::from_secs(1);

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users, in file order.
    #[serde(default, rename = "user")]
    pub users: Vec<Account>,
}

impl UsersFile {
    /// Reads `path`; a missing file has no users.
    pub fn load(path: &Path) -> Result<UsersFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UsersFile::default()),
            Err(e) => {
                return Err(error(
                    path,
                    None,
                    String::new(),
                    format!("cannot read: {e}"),
                ));
            }
        };
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<UsersFile, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            error(path, line, String::new(), e.message().to_string())
        })?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = key_of(e.path());
            let inner = e.into_inner();
            let line = inner.span().map(|s| line_of(text, s.start));
            error(path, line, key, inner.message().to_string())
        })
    }

    /// Locks the users file at `path` for a read-modify-write until the returned file is
    /// dropped (see `atomic_file::lock_beside`); every `posthorn user` edit takes it.
    pub fn lock(path: &Path) -> std::io::Result<std::fs::File> {
        crate::atomic_file::lock_beside(path)
    }

    /// Writes the file atomically (a new file synced, then renamed over the old one) and
    /// readable by its owner only: it holds password hashes.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = String::from(
            "# Posthorn users: edit with `posthorn user add|passwd|del|list`.\n\
             # Each [[user]] takes the keys of an [[account]] in the configuration.\n\n",
        );
        text.push_str(&toml::to_string(self)?);
        crate::atomic_file::replace(path, text.as_bytes(), 0o600)?;
        Ok(())
    }

    /// The user called `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Account> {
        self.users.iter_mut().find(|u| u.name.get_ref() == name)
    }

    /// Adds a user with its password hash; refused if the name is taken or the result
    /// would not be a valid directory (an address of a foreign domain, one taken...).
    pub fn add(&mut self, config: &Config, user: NewUser) -> Result<(), String> {
        let taken = self.users.iter().any(|u| u.name.get_ref() == &user.name)
            || config
                .accounts
                .iter()
                .any(|a| a.name.get_ref() == &user.name);
        if taken {
            return Err(format!(
                "{} exists already; `posthorn user passwd {}` changes its password",
                user.name, user.name
            ));
        }
        let spanned = |list: Vec<String>| {
            (!list.is_empty()).then(|| list.into_iter().map(|a| Spanned::new(0..0, a)).collect())
        };
        self.users.push(Account {
            name: Spanned::new(0..0, user.name),
            addresses: spanned(user.addresses),
            quota: user.quota,
            password: Some(Spanned::new(0..0, user.password_hash)),
            send_as: spanned(user.send_as),
            sending: None,
            allow_senders: Vec::new(),
            block_senders: Vec::new(),
        });
        self.check(config)
    }

    /// Sets the password of a user, or of an account of the configuration (which then
    /// gets an entry here holding just the password).
    pub fn set_password(
        &mut self,
        config: &Config,
        name: &str,
        hash: String,
    ) -> Result<(), String> {
        let password = Some(Spanned::new(0..0, hash));
        if let Some(user) = self.get_mut(name) {
            user.password = password;
        } else if config.accounts.iter().any(|a| a.name.get_ref() == name) {
            self.users.push(Account {
                name: Spanned::new(0..0, name.to_string()),
                addresses: None,
                quota: None,
                password,
                send_as: None,
                sending: None,
                allow_senders: Vec::new(),
                block_senders: Vec::new(),
            });
        } else {
            return Err(format!("no user {name}"));
        }
        self.check(config)
    }

    /// Removes a user; its mailbox stays on disk. Refused while an alias of the
    /// configuration leads to it, as the server could then not start.
    pub fn remove(&mut self, config: &Config, name: &str) -> Result<(), String> {
        let before = self.users.len();
        self.users.retain(|u| u.name.get_ref() != name);
        if self.users.len() == before {
            return Err(format!("no user {name} in the users file"));
        }
        self.check(config)
    }

    fn check(&self, config: &Config) -> Result<(), String> {
        Directory::build_with_users(config, &self.users)
            .map(drop)
            .map_err(|invalid| invalid.to_string())
    }
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login and mailbox name.
    pub name: String,
    /// Its addresses; `name@` every local domain when empty.
    pub addresses: Vec<String>,
    /// Sender addresses it may use; its own addresses when empty.
    pub send_as: Vec<String>,
    /// Mailbox size limit.
    pub quota: Option<crate::config::Size>,
    /// The argon2 hash of its password.
    pub password_hash: String,
}

/// An account as `posthorn user list` shows it: what the server makes of it, defaults
/// filled in, so the operator sees the addresses that really reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The account name.
    pub name: String,
    /// Where it is defined: `config`, `users file`, or `config + users file` (a
    /// configured account whose password, or more, the users file sets).
    pub source: &'static str,
    /// Every address that delivers to it.
    pub addresses: Vec<String>,
    /// The senders it may use: addresses, `@domain` or `*`.
    pub send_as: Vec<String>,
    /// Mailbox size limit in octets.
    pub quota: Option<u64>,
    /// It has a password, so it can log in.
    pub password: bool,
}

/// Every account: those of the configuration in its order, then the users file's own.
pub fn list(config: &Config, path: &Path) -> Result<Vec<Listed>, ConfigError> {
    let file = UsersFile::load(path)?;
    let directory = Directory::build_with_users(config, &file.users)
        .map_err(|invalid| locate(path, invalid))?;
    let configured = |name: &str| config.accounts.iter().any(|a| a.name.get_ref() == name);
    let in_file = |name: &str| file.users.iter().any(|u| u.name.get_ref() == name);
    let names = config.accounts.iter().map(|a| a.name.get_ref()).chain(
        file.users
            .iter()
            .map(|u| u.name.get_ref())
            .filter(|name| !configured(name)),
    );
    Ok(names
        .filter_map(|name| {
            let account = directory.account(name)?;
            Some(Listed {
                name: name.clone(),
                source: match (configured(name), in_file(name)) {
                    (true, true) => "config + users file",
                    (true, false) => "config",
                    (false, _) => "users file",
                },
                addresses: directory.addresses_of(name),
                send_as: account.send_as.iter().map(ToString::to_string).collect(),
                quota: account.quota,
                password: account.password.is_some(),
            })
        })
        .collect())
}

fn error(path: &Path, line: Option<usize>, key: String, message: String) -> ConfigError {
    ConfigError {
        file: Some(path.to_path_buf()),
        line,
        key,
        value: None,
        message,
    }
}

/// The directory built from the configuration and the users file as they are now.
pub fn build(config: &Config, path: &Path) -> Result<Directory, ConfigError> {
    let users = UsersFile::load(path)?;
    Directory::build_with_users(config, &users.users).map_err(|invalid| locate(path, invalid))
}

/// True when a directory problem lies in an entry of the users file (a new account there).
pub(crate) fn is_about_a_user(invalid: &Invalid) -> bool {
    invalid.key.starts_with("user[")
}

/// A directory problem, placed at its line in the users file at `path` when it lies there.
pub(crate) fn locate(path: &Path, invalid: Invalid) -> ConfigError {
    let in_users = is_about_a_user(&invalid);
    let line = (in_users && !invalid.span.is_empty()).then(|| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        line_of(&text, invalid.span.start)
    });
    ConfigError {
        file: in_users.then(|| path.to_path_buf()),
        line,
        key: invalid.key,
        value: Some(invalid.value),
        message: invalid.message,
    }
}

/// What identifies a version of the users file.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

/// The directory in use, replaced whenever the users file changes.
#[derive(Debug)]
pub struct LiveDirectory {
    config: Config,
    path: PathBuf,
    current: RwLock<Arc<Directory>>,
    seen: Mutex<Stamp>,
}

impl LiveDirectory {
    /// Builds the first directory; a broken users file stops the start.
    pub fn load(config: &Config) -> Result<Arc<LiveDirectory>, ConfigError> {
        let path = config.users_file();
        let seen = stamp(&path);
        let directory = build(config, &path)?;
        Ok(Arc::new(LiveDirectory {
            config: config.clone(),
            path,
            current: RwLock::new(Arc::new(directory)),
            seen: Mutex::new(seen),
        }))
    }

    /// The directory to use now.
    pub fn current(&self) -> Arc<Directory> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Rebuilds the directory if the users file changed (or always, with `force`).
    pub fn refresh(&self, force: bool) {
        let now = stamp(&self.path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !force && *seen == now {
                return;
            }
            *seen = now;
        }
        match build(&self.config, &self.path) {
            Ok(directory) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(directory);
                info!(file = %self.path.display(), "users reloaded");
            }
            Err(e) => warn!(error = %e, "users file not reloaded, keeping the previous users"),
        }
    }

    /// Looks at the users file every second until `shutdown`.
    pub async fn watch(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let live = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || live.refresh(false)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        assert_eq!(UsersFile::load(&path).unwrap(), UsersFile::default());
        let file = UsersFile::parse(
            "[[user]]\nname = \"alice\"\npassword = \"$argon2id$x\"\nsend_as = [\"@example.com\"]\nquota = \"1MiB\"\n",
            &path,
        )
        .unwrap();
        file.save(&path).unwrap();
        let again = UsersFile::load(&path).unwrap();
        assert_eq!(again.users.len(), 1);
        assert_eq!(again.users[0].name.get_ref(), "alice");
        assert_eq!(again.users[0].quota, Some(crate::config::Size(1 << 20)));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn problems_name_the_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            "[[user]]\nname = \"alice\"\n\n[[user]]\nname = \"bob\"\npassword = \"secret\"\n",
        )
        .unwrap();
        let e = build(&Config::embedded(), &path).unwrap_err();
        assert_eq!(e.key, "user[1].password");
        assert_eq!(e.line, Some(6));
        std::fs::write(&path, "[[user]]\nname = \"alice\"\nquotum = 3\n").unwrap();
        let e = build(&Config::embedded(), &path).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
    }
}
