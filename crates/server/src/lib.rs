//! Posthorn, the mail server: configuration, the SMTP session driver, the recipient
//! directory, the queue manager, local and remote delivery, and delivery status notices. The protocol itself lives in
//! `posthorn-proto`, the queue storage in `posthorn-spool`.

pub mod admin;
pub mod allocator;
pub mod atomic_file;
pub mod certs;
pub mod check_gate;
pub mod client_key;
pub mod config;
pub mod directory;
pub mod dsn;
pub mod headers;
pub mod limiter;
pub mod local;
pub mod login;
pub mod mailauth;
pub mod message;
pub mod outbound;
pub mod passwords;
pub mod queue;
pub mod received;
pub mod sending;
pub mod sendmail;
pub mod server;
pub mod smtp;
pub mod stream;
pub mod submission;
pub mod throttle;
pub mod users;
