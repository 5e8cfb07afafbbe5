//! What the POP3 and IMAP sessions need from the server around them, as traits: a
//! connection that can turn into TLS, a password check with its brute-force throttle,
//! and a learner taking the spam classifier's training signals. The server crate
//! implements them; tests can too.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use posthorn_maildir::store::{Folder, Mailbox};
use tokio::io::{AsyncRead, AsyncWrite};

pub use posthorn_proto::sasl::Credentials;

use crate::budget::MemoryBudget;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client connection that STARTTLS/STLS can upgrade in place.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send {
    /// Does the server side of a TLS handshake on this (plain) connection.
    fn start_tls(&mut self) -> BoxFuture<'_, io::Result<()>>;
    /// True once the connection is encrypted.
    fn is_tls(&self) -> bool;
}

/// Someone who proved who they are.
#[derive(Debug, Clone)]
pub struct User {
    /// The account name, for logs.
    pub name: String,
    /// Their mail.
    pub mailbox: Mailbox,
    /// Their mailbox size limit in octets, if any.
    pub quota: Option<u64>,
}

/// The answer to a login attempt.
#[derive(Debug)]
pub enum Login {
    /// Right password.
    Accepted(User),
    /// Wrong user or password (already delayed and counted by the checker).
    Rejected,
    /// Too many failures from this address: no more attempts for a while.
    Blocked,
}

/// Checks logins against the server's accounts.
pub trait Accounts: Send + Sync {
    /// Checks `credentials` sent from `client`. Failures are delayed and counted against
    /// the address by the implementation, as for SMTP AUTH.
    fn login(&self, client: IpAddr, credentials: Credentials) -> BoxFuture<'_, Login>;
}

/// What a filing action taught about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Unwanted: the user filed it as junk.
    Spam,
    /// Wanted: the user took it out of junk.
    Ham,
}

/// One message to learn from: where it is now and what it is.
#[derive(Debug, Clone)]
pub struct Lesson {
    /// The account whose classifier learns (the logged-in user's name).
    pub account: String,
    /// The folder the message is in after the action.
    pub folder: Folder,
    /// Its file name in `folder` right after the action; [`Folder::open`] finds it again
    /// after a later flag change renames it.
    pub file: String,
    /// What it is.
    pub class: Class,
}

/// Takes training signals from IMAP sessions: moving mail into or out of Junk, and the
/// `$Junk`/`$NotJunk` keywords. Called once per command that taught anything, after the
/// change is on disk.
pub trait Learner: Send + Sync {
    /// Takes the lessons of one command. Must not block: the server queues them.
    fn learn(&self, lessons: Vec<Lesson>);
}

/// So that [`Settings`] can still be printed.
impl std::fmt::Debug for dyn Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Learner")
    }
}

/// How a POP3 or IMAP listener runs its sessions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our host name, for greetings.
    pub hostname: String,
    /// STARTTLS/STLS offered (false on implicit-TLS listeners, already encrypted).
    pub starttls: bool,
    /// Logins allowed without TLS (passwords in the clear).
    pub plaintext_auth: bool,
    /// How long a client may stay silent (IMAP: at least 30 minutes, RFC 9051 §5.4;
    /// POP3: at least 10, RFC 1939 §3).
    pub idle_timeout: Duration,
    /// The largest message APPEND takes.
    pub max_message_size: usize,
    /// Memory for messages held whole, shared with every other session (IMAP parses and
    /// text searches and large APPEND literals take their turns in it).
    pub whole_messages: MemoryBudget,
    /// Where IMAP sessions send what filing mail teaches the spam classifier (`None`: no
    /// training).
    pub learner: Option<Arc<dyn Learner>>,
}
