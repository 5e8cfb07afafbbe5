//! Posthorn, the mail server. A message's path through the folders: `inbound` (sessions,
//! limits) puts it in the spool (`posthorn-spool`); `queue` owns its state from then on and
//! lends jobs to `delivery` (local Maildirs, remote servers, notices). `accounts` says who
//! is who, `mailauth` signs and checks, `config` reads the settings, `server` puts it all
//! together. The protocol itself lives in `posthorn-proto`.

pub mod accounts;
pub mod admin;
pub mod allocator;
pub(crate) mod atomic_file;
pub(crate) mod certs;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dns;
pub mod inbound;
pub mod learning;
pub mod log_writer;
pub mod mailauth;
pub mod queue;
pub(crate) mod received;
pub mod server;
pub mod settings;
pub(crate) mod stream;
