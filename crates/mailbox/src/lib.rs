//! Posthorn's mailbox access protocols: the POP3 and IMAP servers through which account
//! owners read the Maildir++ store of `posthorn-maildir`. The server crate supplies
//! sockets, TLS and password checks through the traits of `access`, and takes the spam
//! classifier's training signals from IMAP through its `Learner`; the store supplies
//! folders, messages, flags and the quota; everything about the two protocols lives here.

pub mod access;
pub mod budget;
pub mod imap;
mod lines;
pub mod managesieve;
pub mod pop3;

/// Runs file-system work from async code. On the server's multi-threaded runtime the
/// worker thread hands its other tasks to its peers while it blocks; elsewhere (a
/// single-threaded test runtime) the work simply runs in place.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
