//! How talking to a filter can fail. Every error leaves the client unusable for the rest
//! of the connection; the MTA then applies its default action for this filter (Postfix's
//! `milter_default_action`), as the protocol offers no way to resynchronise.

use std::io;

use thiserror::Error;

use crate::codec::DecodeError;

/// A filter that could not be reached or misbehaved.
#[derive(Debug, Error)]
pub enum MilterError {
    /// The filter's address is not `unix:PATH`, `inet:HOST:PORT` or `HOST:PORT`.
    #[error("bad milter address {0:?}")]
    Address(String),
    /// Connecting, reading or writing failed.
    #[error("milter i/o: {0}")]
    Io(#[from] io::Error),
    /// The filter closed the connection while an answer was due.
    #[error("the filter closed the connection during {0}")]
    Closed(&'static str),
    /// No connection, or no answer, within the timeout.
    #[error("the filter did not answer {0} in time")]
    Timeout(&'static str),
    /// The filter sent a malformed packet.
    #[error("malformed packet from the filter: {0}")]
    Malformed(#[from] DecodeError),
    /// The filter sent a well-formed reply that has no place at this stage, or asks
    /// for an action it did not negotiate.
    #[error("the filter answered {stage} with {reply}, which it may not")]
    Unexpected {
        /// The stage.
        stage: &'static str,
        /// What it sent.
        reply: &'static str,
    },
    /// The filter wants a version or actions this client did not offer.
    #[error("milter negotiation failed: {0}")]
    Negotiation(String),
    /// The filter's changes to one message exceed the limit set in `Limits`.
    #[error("the filter's {what} exceed {limit} octets")]
    TooLarge {
        /// Which changes.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A change the filter asked for is malformed (a header value that would break the
    /// header section, an address with control characters).
    #[error("malformed change from the filter: {0}")]
    BadChange(&'static str),
    /// The client failed before; the connection to the filter is no longer usable.
    #[error("the filter failed earlier on this connection")]
    Failed,
}
