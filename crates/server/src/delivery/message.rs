//! A queued message as the delivery agents read it: our prepended headers and the start of
//! the content in memory (enough for the header section, where the hop count is), the rest
//! still on disk to be streamed.

use std::io::{self, Read};

use posthorn_spool::{Envelope, QueueStore};

use posthorn_proto::headers::is_field;

/// Octets read ahead to find the header section.
pub const HEAD_LIMIT: u64 = 64 * 1024;

/// An open queued message.
pub struct QueuedMessage {
    /// Our prepended headers and the first part of the content.
    pub head: Vec<u8>,
    /// The rest of the content.
    pub rest: Box<dyn Read + Send>,
    /// Octets in `rest`.
    pub rest_len: u64,
}

impl QueuedMessage {
    /// Opens the content of `envelope` and reads its start. Blocking.
    pub fn open(store: &dyn QueueStore, envelope: &Envelope) -> io::Result<QueuedMessage> {
        let content = store.content(&envelope.id)?;
        let mut head = envelope.prepend.clone().into_bytes();
        let mut reader = content.reader;
        let read = (&mut reader).take(HEAD_LIMIT).read_to_end(&mut head)? as u64;
        if read < content.len.min(HEAD_LIMIT) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "queued message is shorter than its recorded length",
            ));
        }
        Ok(QueuedMessage {
            head,
            rest: reader,
            rest_len: content.len - read,
        })
    }

    /// The message from content already in memory.
    pub fn in_memory(envelope: &Envelope, content: &[u8]) -> QueuedMessage {
        let mut head = Vec::with_capacity(envelope.prepend.len() + content.len());
        head.extend_from_slice(envelope.prepend.as_bytes());
        head.extend_from_slice(content);
        QueuedMessage {
            head,
            rest: Box::new(io::empty()),
            rest_len: 0,
        }
    }

    /// A job's message: from memory when the job carries its content, else from the spool
    /// (blocking).
    pub fn for_job(store: &dyn QueueStore, job: &crate::queue::Job) -> io::Result<QueuedMessage> {
        match &job.content {
            Some(content) => Ok(QueuedMessage::in_memory(&job.envelope, content)),
            None => QueuedMessage::open(store, &job.envelope),
        }
    }

    /// Reads more of the content into `head`, until it holds `len` octets or the whole
    /// message: for Sieve's `body` test, which sees `head`. Blocking.
    pub fn read_ahead(&mut self, len: u64) -> io::Result<()> {
        let want = len
            .saturating_sub(self.head.len() as u64)
            .min(self.rest_len);
        let read = (&mut self.rest).take(want).read_to_end(&mut self.head)? as u64;
        self.rest_len -= read;
        if read < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "queued message is shorter than its recorded length",
            ));
        }
        Ok(())
    }

    /// The whole message length in octets.
    pub fn size(&self) -> u64 {
        self.head.len() as u64 + self.rest_len
    }

    /// The number of `Received` headers: a message that has passed more hosts than a mail
    /// path could reasonably have is in a loop (RFC 5321 §6.3).
    pub fn hops(&self) -> usize {
        let section = posthorn_proto::headers::header_section(&self.head);
        section
            .split(|&b| b == b'\n')
            .filter(|line| is_field(line, b"received"))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(head: &[u8]) -> QueuedMessage {
        QueuedMessage {
            head: head.to_vec(),
            rest: Box::new(io::empty()),
            rest_len: 0,
        }
    }

    #[test]
    fn hops_count_received_headers_in_the_header_section_only() {
        let m = message(
            b"Received: a\r\n\tcontinued\r\nRECEIVED: b\r\nSubject: x\r\n\r\nReceived: in body\r\n",
        );
        assert_eq!(m.hops(), 2);
        assert_eq!(message(b"Subject: none\r\n\r\n").hops(), 0);
    }
}
