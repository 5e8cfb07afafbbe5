//! Mail going out of the queue: the transports the queue manager lends jobs to (`local`
//! into Maildirs, `remote` to other servers) and the delivery status notifications a
//! message owes its sender (`dsn`).

pub mod dsn;
pub mod local;
pub(crate) mod message;
pub mod remote;
pub mod sieve;
