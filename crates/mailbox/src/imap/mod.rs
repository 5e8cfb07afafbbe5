//! IMAP4rev1 (RFC 3501) with the IMAP4rev2 essentials (RFC 9051) as extensions: IDLE,
//! MOVE, UNSELECT, UIDPLUS, NAMESPACE, ID, ENABLE, LITERAL+, SASL-IR, SPECIAL-USE,
//! LIST-EXTENDED and LIST-STATUS, STATUS=SIZE, CONDSTORE and QRESYNC (RFC 7162).

pub mod command;
mod condstore;
mod fetch;
mod folders;
pub mod message;
pub mod parser;
pub mod response;
pub mod search;
mod selected;
mod session;
mod training;
mod view;

pub use session::serve;
