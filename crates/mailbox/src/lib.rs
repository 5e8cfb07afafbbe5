//! Posthorn's mailboxes: the Maildir++ store local delivery writes into, and the POP3 and
//! IMAP servers through which their owners read it. The server crate supplies sockets,
//! TLS and password checks through the traits of `access`; everything about mail folders
//! and the two protocols lives here.

pub mod access;
pub mod imap;
mod lines;
pub mod maildir;
pub mod pop3;
pub mod store;
