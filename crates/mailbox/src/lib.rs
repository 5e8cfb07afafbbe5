//! Posthorn's mailboxes: the Maildir++ store local delivery writes into, and the POP3 and
//! IMAP servers through which their owners read it. The server crate supplies sockets,
//! TLS and password checks through the traits of `access`; everything about mail folders
//! and the two protocols lives here.

pub mod access;
pub mod budget;
pub mod imap;
mod lines;
pub mod maildir;
pub mod pop3;
pub mod store;

/// Runs file-system work from async code. On the server's multi-threaded runtime the
/// worker thread hands its other tasks to its peers while it blocks; elsewhere (a
/// single-threaded test runtime) the work simply runs in place.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
