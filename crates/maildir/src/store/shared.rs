//! One listing of a folder shared by every session that syncs it while it stays as it
//! was. A SELECT of an unchanged 100 000-message folder spent most of its 15 ms building
//! 100 000 messages afresh (7 MB, page faults included) from an index that had not
//! changed; each session then held its own copy. Now a sync that finds the folder as
//! [`seen`](super::seen) last recorded it, with the index file of the same identity as the
//! one a shared listing was built from, hands out that listing instead of reading the
//! index again.
//!
//! The key is what `seen` already trusts: the folder's directory and the index file's
//! identity. Every change to a folder's messages saves its index (a new identity) or
//! changes the folders' times (which `seen` then no longer trusts), so a listing is never
//! handed out for a folder that changed since. Only weak references are kept here: a
//! listing lives while some session holds it, and entries whose listing is gone are
//! dropped at the next store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use super::folder::Message;
use super::modseq::Expunged;
use super::seen::IndexFile;

/// The index's fields besides its entries, as a listing was built from them.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub first_recent: u32,
    pub highest_modseq: u64,
    pub keywords: Vec<String>,
    pub expunged: Expunged,
}

/// A listing kept for sharing.
struct Kept {
    index: IndexFile,
    header: Header,
    messages: Weak<Vec<Message>>,
}

/// The shared listings by folder directory.
static LISTINGS: LazyLock<Mutex<HashMap<PathBuf, Kept>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The listing of the folder at `dir` built from the index file `index`, if some session
/// still holds it.
pub(crate) fn find(dir: &Path, index: IndexFile) -> Option<(Header, Arc<Vec<Message>>)> {
    let listings = LISTINGS.lock().unwrap_or_else(PoisonError::into_inner);
    let kept = listings.get(dir).filter(|kept| kept.index == index)?;
    Some((kept.header.clone(), kept.messages.upgrade()?))
}

/// Offers `messages`, built from the index file `index` with `header`, to the next syncs
/// of the folder at `dir`; forgets the listings no session holds any more.
pub(crate) fn keep(dir: &Path, index: IndexFile, header: Header, messages: &Arc<Vec<Message>>) {
    let mut listings = LISTINGS.lock().unwrap_or_else(PoisonError::into_inner);
    listings.retain(|_, kept| kept.messages.strong_count() > 0);
    listings.insert(
        dir.to_path_buf(),
        Kept {
            index,
            header,
            messages: Arc::downgrade(messages),
        },
    );
}
