//! The mailbox store: Maildir++ folders of one user, their flags and IMAP UIDs.

pub mod cache;
pub mod changes;
pub mod flags;
mod folder;
mod index;
pub mod mailbox;
pub mod modseq;
pub mod mutf7;
mod name;
mod seen;
mod shared;
mod shelf;

pub use flags::Flags;
pub(crate) use folder::lock_folder;
pub use folder::{
    Appended, FlagChange, Folder, Message, Placed, Snapshot, Stored, Transfer, base_of,
};
pub use mailbox::{FolderError, Mailbox};
pub use name::FileName;

/// Lets go of what departed sessions left for the next (large folders' listings and
/// header cache tables) once it has gone unused for a while; call now and then.
pub fn release_idle() {
    shared::release_idle();
    cache::release_idle();
}
