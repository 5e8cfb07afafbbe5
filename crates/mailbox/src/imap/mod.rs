//! IMAP4rev1 (RFC 3501) and, for a client that enables it, IMAP4rev2 (RFC 9051; the
//! session's choice is `enabled`), with the extensions: IDLE, MOVE, UNSELECT, UIDPLUS,
//! NAMESPACE, ID, ENABLE, LITERAL+, SASL-IR, SPECIAL-USE, LIST-EXTENDED and LIST-STATUS,
//! STATUS=SIZE, BINARY (RFC 3516), UTF8=ACCEPT (RFC 6855), SEARCHRES (RFC 5182); and what
//! modern clients ask for: ESEARCH, SORT (with SORT=DISPLAY), THREAD, MULTIAPPEND, QUOTA,
//! CONDSTORE and QRESYNC (RFC 7162).

mod binary;
pub mod command;
mod condstore;
mod enabled;
mod esearch;
mod fetch;
mod folded;
mod folders;
mod headers;
mod keys;
pub mod message;
mod names;
pub mod parser;
mod quota;
pub mod response;
pub mod search;
mod searchres;
mod selected;
mod session;
mod sort;
mod subject;
mod thread;
mod training;
mod utf8;
mod view;
mod watch;

pub use headers::fill as fill_header_cache;
pub use session::serve;
