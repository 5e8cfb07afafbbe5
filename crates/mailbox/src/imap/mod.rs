//! IMAP4rev1 (RFC 3501) with the IMAP4rev2 essentials (RFC 9051) as extensions: IDLE,
//! MOVE, UNSELECT, UIDPLUS, NAMESPACE, ID, ENABLE, LITERAL+, SASL-IR, SPECIAL-USE,
//! LIST-EXTENDED and LIST-STATUS, STATUS=SIZE; and what modern clients ask for: ESEARCH,
//! SORT (with SORT=DISPLAY), THREAD, MULTIAPPEND, QUOTA, CONDSTORE and QRESYNC
//! (RFC 7162), BINARY (RFC 3516).

mod binary;
pub mod command;
mod condstore;
mod esearch;
mod fetch;
mod folders;
mod keys;
pub mod message;
pub mod parser;
mod quota;
pub mod response;
pub mod search;
mod selected;
mod session;
mod sort;
mod subject;
mod thread;
mod training;
mod view;
mod watch;

pub use session::serve;
