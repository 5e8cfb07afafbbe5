//! What users teach the server about their mail: a classifier model per account and a
//! global one (`posthorn_classify`), and each account's sender reputation. Users teach by
//! filing mail into or out of Junk over IMAP (`teacher`), by writing to people (their
//! submissions), and the admin with `posthorn spam` (`commands`). The checking stage asks
//! (`checks::learned`).
//!
//! Files, in `data_dir/learning/`: `global.model`, and `accounts/NAME.model`,
//! `accounts/NAME.senders` and `accounts/NAME.lookalikes` per account; each is replaced
//! atomically (see `stored`).

mod classifier;
pub mod commands;
mod lookalikes;
mod senders;
mod stored;
pub mod teacher;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use posthorn_classify::{Class, Fingerprint, Learned, Limits, Model, Readiness, Verdict};
use tracing::warn;

use crate::config::Config;
use classifier::{Bayes, Training};
use lookalikes::{Filing, Lookalikes};
pub use senders::Standing;
use senders::{Deed, Senders};
use stored::{Folder, Stored};

/// Octets of a message read to learn it or score it: the classifier reads no further.
pub const READ_LIMIT: usize = 512 * 1024;

/// Filed messages whose near-copies each account remembers at most.
const MAX_LOOKALIKES: usize = 2000;

/// How often training is written to disk; `kill -9` loses at most this much of it.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// An account not asked about for this long is dropped from memory after its next save
/// (read again when needed): a server with many accounts holds only the busy ones'
/// models.
const IDLE: Duration = Duration::from_secs(10 * 60);

/// An account's learnt state.
struct Account {
    model: Stored<Bayes>,
    senders: Stored<Senders>,
    lookalikes: Stored<Lookalikes>,
    /// When it was last asked about or taught.
    used: Mutex<Instant>,
}

/// The classifier's models and the sender tables, shared by the server's sessions.
pub struct Learning {
    folder: Folder,
    readiness: Readiness,
    account_limits: Limits,
    max_senders: usize,
    global: Stored<Bayes>,
    accounts: Mutex<HashMap<String, Arc<Account>>>,
    /// [`IDLE`], shorter in tests.
    idle: Duration,
}

/// A model's numbers, for `posthorn spam status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// Spam messages learnt.
    pub spam: u32,
    /// Ham messages learnt.
    pub ham: u32,
    /// Tokens known.
    pub tokens: usize,
    /// True once it scores mail (enough of both kinds).
    pub ready: bool,
    /// Senders known (accounts only).
    pub senders: Option<usize>,
}

/// Days since the Unix epoch: the age unit of tokens and senders.
pub fn today() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| {
            u32::try_from(d.as_secs() / 86_400).unwrap_or(u32::MAX)
        })
}

/// The From address of a message, lower-case, when it has one that parses.
pub fn author_of(message: &[u8]) -> Option<String> {
    crate::inbound::checks::authors_of(message)
        .first()
        .map(|a| a.to_string().to_lowercase())
}

impl Learning {
    /// The learnt state under `config`'s data folder (empty when there is none yet).
    pub fn open(config: &Config) -> io::Result<Learning> {
        let classifier = &config.checks.classifier;
        let dir = config.server.data_dir.join("learning");
        std::fs::create_dir_all(dir.join("accounts"))?;
        let folder = Folder::new(dir);
        {
            let _lock = folder.lock()?;
            folder.remove_leftovers("accounts")?;
        }
        let global_limits = Limits {
            max_tokens: classifier.max_tokens,
            ..Limits::default()
        };
        Ok(Learning {
            global: Stored::open(folder.path("global.model"), global_limits)?,
            folder,
            readiness: Readiness {
                min_spam: classifier.min_spam,
                min_ham: classifier.min_ham,
            },
            account_limits: Limits {
                max_tokens: classifier.account_max_tokens,
                ..Limits::default()
            },
            max_senders: config.checks.reputation.max_senders,
            accounts: Mutex::new(HashMap::new()),
            idle: IDLE,
        })
    }

    /// An account's state, read from disk the first time it is needed.
    fn account(&self, name: &str) -> io::Result<Arc<Account>> {
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an account name"),
            ));
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(account) = accounts.get(name) {
            *account.used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            return Ok(Arc::clone(account));
        }
        let path = |suffix: &str| self.folder.path(&format!("accounts/{name}.{suffix}"));
        let account = Arc::new(Account {
            model: Stored::open(path("model"), self.account_limits)?,
            senders: Stored::open(path("senders"), self.max_senders)?,
            lookalikes: Stored::open(path("lookalikes"), MAX_LOOKALIKES)?,
            used: Mutex::new(Instant::now()),
        });
        accounts.insert(name.to_string(), Arc::clone(&account));
        Ok(account)
    }

    /// The spam probability of `message`, from the account's model when it is ready,
    /// else the global one; `None` while neither is (and then the message is not even
    /// tokenized). Blocking (may read a model from disk).
    pub fn score(&self, account: Option<&str>, message: &[u8]) -> Option<(Verdict, bool)> {
        let own = account.and_then(|name| match self.account(name) {
            Ok(account) => Some(account),
            Err(e) => {
                warn!(account = name, error = %e, "cannot read the account's classifier");
                None
            }
        });
        let own_model = own.as_ref().map(|account| account.model.read());
        let global = self.global.read();
        let mut layers: Vec<&Model> = own_model.iter().map(|model| &model.0).collect();
        layers.push(&global.0);
        if !layers.iter().any(|model| self.readiness.admits(model)) {
            return None;
        }
        let features = posthorn_classify::features(&message[..message.len().min(READ_LIMIT)]);
        let verdict = posthorn_classify::score(&layers, &features, &self.readiness)?;
        let from_own = own_model.is_some() && verdict.layer == 0;
        Some((verdict, from_own))
    }

    /// What `account`'s mail says about `sender`. Blocking.
    pub fn standing(&self, account: &str, sender: &str) -> Option<Standing> {
        let account = self.account(account).ok()?;
        account.senders.read().standing(sender)
    }

    /// How `account`'s user filed the latest near-copy of a message with `fingerprint`,
    /// and how alike the two are. Blocking.
    pub fn lookalike(&self, account: &str, fingerprint: &Fingerprint) -> Option<(Class, f64)> {
        let account = self.account(account).ok()?;
        account.lookalikes.read().closest(fingerprint)
    }

    /// True when `account`'s user has filed anything whose near-copies count. Blocking.
    pub fn has_lookalikes(&self, account: &str) -> bool {
        self.account(account)
            .is_ok_and(|account| !account.lookalikes.read().is_empty())
    }

    /// Records that `account`'s user sent a message to `recipients`. Blocking.
    pub fn wrote(&self, account: &str, recipients: Vec<String>) -> io::Result<()> {
        self.account(account)?
            .senders
            .change(Deed::Wrote(recipients), today());
        Ok(())
    }

    /// Learns `message` as `class`: in `account`'s model and the global one, and its
    /// sender's standing with the account; in the global model only without an account.
    /// A message learnt before as the same class changes nothing; as the other, it is
    /// learnt again the other way. Returns what the account's model (or the global one)
    /// did. Blocking.
    pub fn learn(
        &self,
        account: Option<&str>,
        message: &[u8],
        class: Class,
    ) -> io::Result<Learned> {
        let message = &message[..message.len().min(READ_LIMIT)];
        let digest = posthorn_classify::digest(message);
        let features = Arc::new(posthorn_classify::features(message));
        let day = today();
        let training = || Training::Learn {
            digest,
            features: Arc::clone(&features),
            class,
        };
        let global = train(&self.global, training(), day);
        let Some(name) = account else {
            return Ok(global);
        };
        let account = self.account(name)?;
        let learned = train(&account.model, training(), day);
        if matches!(learned, Learned::Unchanged) {
            return Ok(learned);
        }
        if let Some(fingerprint) = posthorn_classify::fingerprint(message) {
            let filing = Filing::Filed {
                digest,
                fingerprint,
                class,
            };
            account.lookalikes.change(filing, day);
        }
        if let Some(sender) = author_of(message) {
            let deed = Deed::Filed {
                sender,
                class,
                instead: matches!(learned, Learned::Retrained),
                undo: false,
            };
            account.senders.change(deed, day);
        }
        Ok(learned)
    }

    /// Takes `message` back out of the models it was learnt in (`account`'s and the
    /// global one, or the global one only). True when the account's (or global) model had
    /// it. Blocking.
    pub fn forget(&self, account: Option<&str>, message: &[u8]) -> io::Result<bool> {
        let message = &message[..message.len().min(READ_LIMIT)];
        let digest = posthorn_classify::digest(message);
        let features = Arc::new(posthorn_classify::features(message));
        let day = today();
        let training = || Training::Forget {
            digest,
            features: Arc::clone(&features),
        };
        let global = train(&self.global, training(), day);
        let Some(name) = account else {
            return Ok(!matches!(global, Learned::Unchanged));
        };
        let account = self.account(name)?;
        account.lookalikes.change(Filing::Forgotten { digest }, day);
        Ok(!matches!(
            train(&account.model, training(), day),
            Learned::Unchanged
        ))
    }

    /// A model's numbers: `account`'s, or the global one.
    pub fn status(&self, account: Option<&str>) -> io::Result<Status> {
        let describe = |model: &Bayes, senders: Option<usize>| {
            let (spam, ham) = model.0.messages();
            Status {
                spam,
                ham,
                tokens: model.0.tokens(),
                ready: self.readiness.admits(&model.0),
                senders,
            }
        };
        Ok(match account {
            Some(name) => {
                let account = self.account(name)?;
                let senders = account.senders.read().len();
                describe(&account.model.read(), Some(senders))
            }
            None => describe(&self.global.read(), None),
        })
    }

    /// Forgets everything `account` (or the global model) learnt: its files go.
    pub fn reset(&self, account: Option<&str>) -> io::Result<()> {
        let _lock = self.folder.lock()?;
        let files = match account {
            Some(name) => {
                self.account(name)?;
                self.accounts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                ["model", "senders", "lookalikes"]
                    .map(|suffix| format!("accounts/{name}.{suffix}"))
                    .to_vec()
            }
            None => vec!["global.model".to_string()],
        };
        for file in files {
            match std::fs::remove_file(self.folder.path(&file)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        crate::atomic_file::sync_folder(&self.folder.path("accounts"))
    }

    /// Writes every change not yet on disk, and reads what others wrote (a `posthorn
    /// spam train` beside the server); then lets go of accounts idle for [`IDLE`].
    /// Blocking.
    pub fn save(&self) -> io::Result<()> {
        let _lock = self.folder.lock()?;
        let day = today();
        let mut result = self.global.save(day);
        let accounts: Vec<Arc<Account>> = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for account in accounts {
            let saved = [
                account.model.save(day),
                account.senders.save(day),
                account.lookalikes.save(day),
            ];
            for saved in saved {
                if saved.is_err() && result.is_ok() {
                    result = saved;
                }
            }
        }
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, account| {
                let idle = account
                    .used
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    >= self.idle;
                // Kept while someone holds it or its changes are not all on disk.
                !idle
                    || Arc::strong_count(account) > 1
                    || account.model.dirty()
                    || account.senders.dirty()
                    || account.lookalikes.dirty()
            });
        result
    }

    /// Saves every [`SAVE_EVERY`] until the server stops (then once more: the caller
    /// calls [`Learning::save`] at shutdown).
    pub fn keep_saved(self: &Arc<Self>) {
        let learning = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAVE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let learning = Arc::clone(&learning);
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || learning.save()).await {
                    warn!(error = %e, "cannot save what users taught the classifier");
                }
            }
        });
    }
}

/// Applies `training` to a stored model; kept for the save only when it changed it.
fn train(model: &Stored<Bayes>, training: Training, day: u32) -> Learned {
    model.change_with(training, |bayes, training| {
        let learned = bayes.train(training, day);
        (!matches!(learned, Learned::Unchanged), learned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str, body: &str) -> Vec<u8> {
        format!("From: {from}\r\nSubject: {body}\r\n\r\n{body}\r\n").into_bytes()
    }

    fn learning(dir: &std::path::Path) -> Learning {
        let mut config = Config::embedded();
        config.server.data_dir = dir.to_path_buf();
        Learning::open(&config).unwrap()
    }

    #[test]
    fn a_lesson_teaches_the_account_the_global_model_and_the_senders_once() {
        let dir = tempfile::tempdir().unwrap();
        let learning = learning(dir.path());
        let pills = message("Sales@Pills.test", "cheap pills now");
        assert_eq!(
            learning.learn(Some("alice"), &pills, Class::Spam).unwrap(),
            Learned::Trained
        );
        assert_eq!(
            learning.learn(Some("alice"), &pills, Class::Spam).unwrap(),
            Learned::Unchanged
        );
        let alice = learning.status(Some("alice")).unwrap();
        assert_eq!((alice.spam, alice.ham, alice.senders), (1, 0, Some(1)));
        assert_eq!(learning.status(None).unwrap().spam, 1);
        assert_eq!(
            learning
                .standing("alice", "sales@pills.test")
                .unwrap()
                .junked,
            1
        );
        // Filed back: a retrain, and the sender's standing moves with it.
        assert_eq!(
            learning.learn(Some("alice"), &pills, Class::Ham).unwrap(),
            Learned::Retrained
        );
        let standing = learning.standing("alice", "sales@pills.test").unwrap();
        assert_eq!((standing.junked, standing.kept), (0, 1));
        assert!(learning.forget(Some("alice"), &pills).unwrap());
        assert_eq!(learning.status(Some("alice")).unwrap().ham, 0);
        assert!(learning.learn(Some("../bob"), &pills, Class::Spam).is_err());
    }

    #[test]
    fn saved_state_survives_and_idle_accounts_leave_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = learning(dir.path());
        first.idle = Duration::ZERO;
        first
            .learn(Some("alice"), &message("a@x.test", "one"), Class::Spam)
            .unwrap();
        first
            .wrote("alice", vec!["Friend@Far.test".into()])
            .unwrap();
        first.save().unwrap();
        assert!(first.accounts.lock().unwrap().is_empty());
        let second = learning(dir.path());
        assert_eq!(second.status(Some("alice")).unwrap().spam, 1);
        assert_eq!(second.standing("alice", "friend@far.test").unwrap().sent, 1);
        // Read again when asked: nothing was lost by letting go.
        assert_eq!(first.status(Some("alice")).unwrap().spam, 1);
        second.reset(Some("alice")).unwrap();
        assert_eq!(learning(dir.path()).status(Some("alice")).unwrap().spam, 0);
    }
}
