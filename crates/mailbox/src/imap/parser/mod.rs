//! The IMAP command reader: turns the client's byte stream into [`Request`]s.
//!
//! It works in two layers. The framing layer ([`CommandReader`]) cuts the stream into
//! commands: it collects a command line up to its CRLF and, when the line ends in a literal
//! marker (`{n}` or LITERAL+'s `{n+}`), exactly n raw octets, then the rest of the command.
//! Every size is checked against [`Limits`] before anything is stored, so a hostile client
//! cannot make us allocate without bound. The grammar layer then parses one assembled
//! command (its lines, with the literals between them) into the typed tree of
//! [`super::command`]: keywords are case-insensitive, numbers are checked for overflow and
//! nesting is bounded, so no client input can make it panic or exhaust the stack.

mod dates;
mod framing;
mod grammar;
#[cfg(test)]
mod tests;

use super::command::Request;

pub use framing::CommandReader;

/// Limits that keep a hostile client from making us allocate without bound.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest command line text, literals excluded (e.g. 64 KiB).
    pub max_line: usize,
    /// Largest literal accepted in commands other than APPEND (e.g. 64 KiB). It bounds the
    /// sum of all literals of one command, so many small literals cannot add up either.
    pub max_literal: usize,
    /// Largest APPEND message literal (the server's message size limit); like
    /// `max_literal`, it bounds the sum of the literals of one APPEND command.
    pub max_append: usize,
}

/// What the reader has for the session after being fed bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A whole command.
    Request(Request),
    /// The client announced a synchronizing literal `{n}` we accept: the session must write
    /// a continuation (`+ ...`) and then keep feeding.
    Continue,
    /// Nothing complete yet: read more bytes.
    Incomplete,
    /// A malformed command: the session answers `<tag> BAD <message>` (or `* BAD` when the tag
    /// is None). The reader has already dropped that command's bytes.
    Bad {
        /// The command's tag, if one could be read.
        tag: Option<String>,
        /// What is wrong, fit for the BAD response text.
        message: String,
    },
    /// A synchronizing literal or a line over the limits: the session answers
    /// `<tag> NO [TOOBIG] <message>` (or BAD when no tag could be read). The client never got a
    /// continuation so it does not send the literal; the reader dropped the rest of the line.
    TooBig {
        /// The command's tag, if one could be read.
        tag: Option<String>,
        /// What is too big, fit for the NO response text.
        message: String,
    },
    /// A non-synchronizing literal `{n+}` over the limits: the bytes are already on their way, so
    /// the session must say `* BYE` and close the connection.
    Fatal {
        /// Why, fit for the BYE response text.
        message: String,
    },
}
