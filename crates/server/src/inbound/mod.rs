//! Mail coming in: the SMTP session on every listener (MX, submission, implicit TLS) and
//! the local socket of `posthorn sendmail`, the limits that keep one client from taking
//! more than its share, and what submission may fix in a message. A message leaves this
//! folder durable in the spool and handed to the queue manager (`crate::queue`).

pub mod clamav;
pub(crate) mod envelope;
pub(crate) mod limits;
pub(crate) mod listeners;
pub(crate) mod policy;
pub mod sendmail;
pub(crate) mod session;
pub(crate) mod submission;
