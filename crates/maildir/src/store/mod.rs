//! The mailbox store: Maildir++ folders of one user, their flags and IMAP UIDs.

pub mod flags;
mod folder;
mod index;
pub mod mailbox;
mod mutf7;

pub use flags::Flags;
pub use folder::{Folder, Message, Snapshot, Transfer};
pub use mailbox::{FolderError, Mailbox};
