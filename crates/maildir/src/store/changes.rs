//! Telling whoever waits on a folder that it changed: the IMAP sessions idling on it
//! (`posthorn-mailbox`) hear of a delivery or another session's change at once instead of
//! polling for it. This crate has no async runtime, so the waiting side installs a hook
//! here once; every change the store commits (a delivery into `new/`, a saved UID list)
//! calls it with the folder's path. Changes made by other programs are still found by
//! the waiting side's own, slower, look at the folder.

use std::path::Path;
use std::sync::OnceLock;

static HOOK: OnceLock<fn(&Path)> = OnceLock::new();

/// Installs the function told of every change, by folder path; the first one stays.
pub fn on_change(hook: fn(&Path)) {
    let _ = HOOK.set(hook);
}

/// Tells the hook, if any, that the folder at `dir` changed.
pub(crate) fn changed(dir: &Path) {
    if let Some(hook) = HOOK.get() {
        hook(dir);
    }
}
