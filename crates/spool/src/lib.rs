//! Durable queue storage for Posthorn.
//!
//! The promise of the whole server rests here: a message is accepted only once
//! [`MessageWriter::commit`]'s ticket has resolved, and by then content and envelope are on disk,
//! made durable by a sync of its data into a file whose name was durable before the mail
//! arrived (`pool`), or, when none is ready, by a sync that covers the file and its new
//! folder entry (a group commit shared with every other message committed at that moment). The [`QueueStore`] trait keeps the queue manager
//! independent of how that is done; [`FsQueueStore`] is the embedded default.

mod durable;
mod envelope;
mod format;
mod fs;
mod id;
mod pool;
mod unnamed;

use std::io;

pub use durable::{GroupCommit, Ticket};
pub use envelope::{
    ClientInfo, DeliveryState, Diagnostic, DsnAction, Envelope, Recipient, RecipientStatus, Route,
};
pub use fs::FsQueueStore;
pub use id::{IdGenerator, QueueId};

/// Durable storage of queued messages. Every method blocks on disk I/O: call it from a
/// blocking thread, not from an async task.
pub trait QueueStore: Send + Sync + 'static {
    /// A fresh queue id, unique across restarts once `recover` has run.
    fn new_id(&self) -> QueueId;

    /// Starts receiving the content of message `id`. Dropping the writer before `commit`
    /// discards everything written.
    fn writer(&self, id: QueueId) -> io::Result<Box<dyn MessageWriter>>;

    /// Start-up: removes half-written files and returns every committed message, oldest
    /// first.
    fn recover(&self) -> io::Result<Vec<QueueId>>;

    /// Every committed message, oldest first, without touching anything.
    fn ids(&self) -> io::Result<Vec<QueueId>>;

    /// The envelope of a message with its latest delivery state.
    fn load(&self, id: &QueueId) -> io::Result<Envelope>;

    /// The content of a message, exactly as it was received. Read it only while the
    /// message is queued: once removed, its file may hold another message (see `pool`),
    /// so a reader that may race the removal checks the message is still there after.
    fn content(&self, id: &QueueId) -> io::Result<Content>;

    /// Stores the delivery state of `envelope`'s recipients (and its hold and
    /// delay-notified flags) atomically and durably.
    fn save_state(&self, envelope: &Envelope) -> io::Result<()>;

    /// Removes a message whose recipients are all final; its file may be reused for the
    /// next message.
    fn remove(&self, id: &QueueId) -> io::Result<()>;

    /// Moves a message that cannot be read out of the queue, keeping it for the operator.
    fn quarantine(&self, id: &QueueId) -> io::Result<()>;
}

/// The content of one message being received.
pub trait MessageWriter: io::Write + Send {
    /// The id the message will have.
    fn id(&self) -> &QueueId;

    /// Octets written so far.
    fn written(&self) -> u64;

    /// The first `len` octets written so far (all of them when fewer), read back: a check
    /// that needs the whole message, or its header, reads it from here instead of the
    /// server holding it while it arrives.
    fn read_back(&mut self, len: u64) -> io::Result<Vec<u8>>;

    /// Cuts what was written down to its first `len` octets; later writes follow them.
    fn truncate(&mut self, len: u64) -> io::Result<()>;

    /// Appends `tail` (content not yet written) and the envelope, and makes the message
    /// durable; only once the ticket resolves Ok may the server answer 250. The work is
    /// done off the caller's thread, so an async caller simply awaits the ticket.
    fn commit(self: Box<Self>, tail: Vec<u8>, envelope: &Envelope) -> Ticket;
}

/// A reader over a queued message's content.
pub struct Content {
    /// The content, from its first octet.
    pub reader: Box<dyn io::Read + Send>,
    /// Its length in octets.
    pub len: u64,
}

/// An error for data that is not what it must be, mostly a queue file: the queue manager
/// sets a message whose load fails this way aside rather than retry it.
fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
