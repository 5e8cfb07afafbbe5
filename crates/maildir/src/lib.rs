//! Posthorn's mailbox store: each account's Maildir++ on disk, as everything that puts mail
//! in or takes it out sees it. Local delivery writes into it, IMAP and POP3 (in
//! `posthorn-mailbox`) read and change it, and Sieve will file into it; so the store is a
//! crate of its own, and the access protocols keep only what is theirs.
//!
//! What lives here, and why here rather than with the protocols:
//!
//! - the crate root ([`deliver`], [`JUNK`], [`create_dir_durable`]): the Maildir layout
//!   and its durable writes, all that local delivery needs besides [`Quota`]; the rest of
//!   the store builds on it.
//! - [`store`]: one user's folders ([`store::Mailbox`]), one folder's messages with their
//!   flags and UIDs ([`store::Folder`]), the per-folder UID list, and folder names in
//!   modified UTF-7. IMAP and POP3 both list, read and delete through it (POP3's UIDL and
//!   deletions are the same files and locks as IMAP's), and Sieve's `fileinto` and
//!   `imap4flags` (RFC 5228, RFC 5232) need folders and flags, not IMAP. The flag type and
//!   the three ways of changing flags live in [`store::flags`] for the same reason; the
//!   IMAP parser produces them and re-exports them.
//! - [`quota`]: the Maildir++ `maildirsize` file, the one quota figure that SMTP's RCPT
//!   check, local delivery and IMAP's APPEND and COPY all read, and that every change the
//!   store makes keeps current. It lives with the code that adds and removes messages, as
//!   a change that forgot to record itself would make the figure drift.
//!
//! What stays in `posthorn-mailbox`: the IMAP and POP3 sessions, their parser and
//! responses, the `access` traits the server implements for them, their line reader, and
//! the memory budget for whole messages (IMAP's parses and SMTP's DKIM checks share it;
//! it has nothing to do with Maildir).

mod maildir;
pub mod quota;
pub mod store;

pub use maildir::{JUNK, create_dir_durable, deliver, deliver_flagged};
pub use quota::Quota;
