//! Email authentication (mail-auth does the cryptography and record parsing): SPF, DKIM,
//! DMARC and ARC checks of incoming mail, DKIM signing and ARC sealing of outgoing mail, DKIM
//! keys, and the DNS records an admin publishes.

pub(crate) mod blank_tail;
pub mod dmarc;
pub mod keys;
pub mod records;
pub mod sign;
pub mod spf;
pub mod verify;
