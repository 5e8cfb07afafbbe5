//! Posthorn, the mail server: configuration, the SMTP session driver, the recipient
//! directory, the queue manager and delivery. The protocol itself lives in
//! `posthorn-proto`, the queue storage in `posthorn-spool`.

pub mod config;
pub mod delivery;
pub mod directory;
pub mod limiter;
pub mod maildir;
pub mod queue;
pub mod received;
pub mod server;
pub mod smtp;
