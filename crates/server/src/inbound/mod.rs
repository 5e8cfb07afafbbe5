//! Mail coming in: the SMTP session on every listener (MX, submission, implicit TLS) and
//! the local socket of `posthorn sendmail`, the limits that keep one client from taking
//! more than its share, what submission may fix in a message, and the checks mail from
//! other servers passes before it is accepted. A message leaves this folder durable in
//! the spool and handed to the queue manager (`crate::queue`).

pub mod checks;
pub(crate) mod envelope;
pub(crate) mod limits;
pub(crate) mod listeners;
pub(crate) mod policy;
pub mod sendmail;
pub(crate) mod session;
pub(crate) mod sieve_reject;
pub(crate) mod submission;
