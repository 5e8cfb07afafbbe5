//! IMAP4rev1 (RFC 3501) with the IMAP4rev2 essentials (RFC 9051) as extensions: IDLE,
//! MOVE, UNSELECT, UIDPLUS, NAMESPACE, ID, ENABLE, LITERAL+, SASL-IR, SPECIAL-USE,
//! LIST-EXTENDED and LIST-STATUS, STATUS=SIZE.

pub mod command;
mod fetch;
mod folders;
pub mod message;
pub mod parser;
pub mod response;
pub mod search;
mod selected;
mod session;
mod view;

pub use session::serve;

/// Runs file-system work from async code. On the server's multi-threaded runtime the
/// worker thread hands its other tasks to its peers while it blocks; elsewhere (a
/// single-threaded test runtime) the work simply runs in place.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
