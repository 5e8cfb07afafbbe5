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

pub use flags::Flags;
pub(crate) use folder::lock_folder;
pub use folder::{
    Appended, FlagChange, Folder, Message, Placed, Snapshot, Stored, Transfer, base_of,
};
pub use mailbox::{FolderError, Mailbox};
pub use name::FileName;
