//! The mailbox store: Maildir++ folders of one user, their flags and IMAP UIDs.

pub mod flags;
pub mod folder;
pub mod index;
pub mod mailbox;

pub use flags::Flags;
pub use folder::{Folder, Message, Snapshot, Transfer};
pub use mailbox::{FolderError, Mailbox};
