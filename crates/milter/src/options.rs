//! How long a filter may take and how much it may change.

use std::time::Duration;

/// How long each step may take. Postfix's defaults: `milter_connect_timeout`,
/// `milter_command_timeout`, `milter_content_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to the filter.
    pub connect: Duration,
    /// Negotiation and each envelope command (CONNECT to DATA, UNKNOWN, QUIT).
    pub command: Duration,
    /// Each content command (header fields, body chunks, end of message). A filter's
    /// SMFIR_PROGRESS starts the wait again.
    pub content: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(30),
            content: Duration::from_secs(300),
        }
    }
}

/// Bounds on what a filter may ask to change in one message, so a misbehaving filter
/// cannot make the MTA hold unbounded memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Octets of a replacement body (the MTA's message size limit is a good choice).
    pub replacement_body: usize,
    /// Octets of all other changes together (header fields, addresses, parameters).
    pub changes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            replacement_body: 64 * 1024 * 1024,
            changes: 1024 * 1024,
        }
    }
}

/// Timeouts and limits for one filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// How long each step may take.
    pub timeouts: Timeouts,
    /// How much a filter may change.
    pub limits: Limits,
}
