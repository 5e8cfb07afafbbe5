//! Folder changes pushed to the sessions idling on them: the store tells us of every
//! change it commits (`posthorn_maildir::store::changes`), a delivery or another
//! session's STORE, EXPUNGE, COPY or APPEND, and the sessions waiting on that folder wake
//! at once. The registry holds only folders someone waits on (weakly), so it is as large
//! as the number of idling sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::Notify;

static WAITING: LazyLock<Mutex<HashMap<PathBuf, Weak<Notify>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The store's hook: wakes whoever waits on `dir`.
fn changed(dir: &Path) {
    let waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(notify) = waiting.get(dir).and_then(Weak::upgrade) {
        notify.notify_waiters();
    }
}

/// What wakes a session waiting on the folder at `dir`; held while it waits.
pub(super) fn watch(dir: &Path) -> Arc<Notify> {
    posthorn_maildir::store::changes::on_change(changed);
    let mut waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    waiting.retain(|_, notify| notify.strong_count() > 0);
    if let Some(notify) = waiting.get(dir).and_then(Weak::upgrade) {
        return notify;
    }
    let notify = Arc::new(Notify::new());
    waiting.insert(dir.to_path_buf(), Arc::downgrade(&notify));
    notify
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_the_waiters_of_its_folder_only() {
        let (a, b) = (Path::new("/mail/a"), Path::new("/mail/b"));
        let (on_a, on_b) = (watch(a), watch(b));
        {
            let woken = on_a.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let not_woken = on_b.notified();
            tokio::pin!(not_woken);
            not_woken.as_mut().enable();
            changed(a);
            tokio::time::timeout(std::time::Duration::from_secs(5), woken)
                .await
                .expect("the waiter on a wakes");
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(50), not_woken)
                    .await
                    .is_err()
            );
        }
        drop((on_a, on_b));
        let _on_c = watch(Path::new("/mail/c"));
        // Folders nobody waits on any more are forgotten.
        let waiting = WAITING.lock().unwrap();
        assert!(!waiting.contains_key(a) && !waiting.contains_key(b));
    }
}
