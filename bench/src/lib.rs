//! Posthorn's instruments: a load generator that measures what `smtp-source` cannot (the
//! time to a durable 250, idle connections), process-tree CPU and memory sampling, the
//! side-by-side comparisons with Postfix and Exim (SMTP) and
//! Dovecot (IMAP), and the crash soak.

pub mod checks;
pub mod compare;
pub mod exim;
pub mod fast_sink;
pub mod filesystem;
pub mod fresh_fs;
pub mod imap;
pub mod load;
pub mod procs;
pub mod report;
pub mod rounds;
pub mod scale;
pub mod server;
pub mod sink;
pub mod soak;
