//! One listing of a folder shared by every session that syncs it while it stays as it
//! was. A SELECT of an unchanged 100 000-message folder spent most of its 15 ms building
//! 100 000 messages afresh (7 MB, page faults included) from an index that had not
//! changed; each session then held its own copy. Now a sync that finds the folder as
//! [`seen`](super::seen) last recorded it, with the index file of the same identity as the
//! one a shared listing was built from, hands out that listing instead of reading the
//! index again; a large listing outlives its sessions a while ([`super::shelf`]).
//!
//! The key is what `seen` already trusts: the folder's directory and the index file's
//! identity. Every change to a folder's messages saves its index (a new identity) or
//! changes the folders' times (which `seen` then no longer trusts), so a listing is never
//! handed out for a folder that changed since.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use super::folder::Message;
use super::index::Index;
use super::seen::IndexFile;
use super::shelf::Shelf;

/// What a listing was built from: the index file, and the index read from it without its
/// entries (which the listing holds).
#[derive(Clone)]
struct Listed {
    file: IndexFile,
    header: Index,
}

/// The shared listings by folder directory.
static LISTINGS: LazyLock<Shelf<Listed, Vec<Message>>> = LazyLock::new(Shelf::default);

/// The listing of the folder at `dir` built from the index file `index`, if some session
/// (or the shelf) still holds it.
pub(crate) fn find(dir: &Path, index: IndexFile) -> Option<(Index, Arc<Vec<Message>>)> {
    let (listed, messages) = LISTINGS.find(dir, |listed| listed.file == index)?;
    Some((listed.header, messages))
}

/// Offers `messages`, built from the index file `index` whose other fields are `header`,
/// to the next syncs of the folder at `dir`.
pub(crate) fn keep(dir: &Path, index: IndexFile, header: Index, messages: &Arc<Vec<Message>>) {
    LISTINGS.keep(
        dir,
        Listed {
            file: index,
            header,
        },
        messages,
        messages.len(),
    );
}

/// Lets go of large listings unused for a while.
pub(crate) fn release_idle() {
    LISTINGS.release_idle();
}
