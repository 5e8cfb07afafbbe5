//! The packet stream to one filter: commands are gathered in a buffer and written when
//! an answer is due (so unanswered commands, like headers under SMFIP_NR_HDR, share
//! writes); every write and read runs under a deadline, and a reply's length is checked
//! before its data is read.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{Command, DecodeError, LENGTH_PREFIX, Packet, Reply, packet_len};
use crate::error::MilterError;

/// Buffered commands are written once they reach this many octets, answer due or not.
const FLUSH_AT: usize = 64 * 1024;

pub(crate) struct Channel<S> {
    stream: S,
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Channel<S> {
    pub(crate) fn new(stream: S) -> Self {
        Channel {
            stream,
            out: Vec::new(),
        }
    }

    /// Adds a command to the buffer.
    pub(crate) fn push(&mut self, command: &Command<'_>) {
        command.encode(&mut self.out);
    }

    /// Writes the buffer if it has grown large.
    pub(crate) async fn flush_if_full(
        &mut self,
        stage: &'static str,
        limit: Duration,
    ) -> Result<(), MilterError> {
        if self.out.len() >= FLUSH_AT {
            self.flush(stage, limit).await?;
        }
        Ok(())
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(
        &mut self,
        stage: &'static str,
        limit: Duration,
    ) -> Result<(), MilterError> {
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Err(_) => Err(MilterError::Timeout(stage)),
            Ok(Err(e)) => Err(io_error(e, stage)),
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
        }
    }

    /// Reads one reply.
    pub(crate) async fn read(
        &mut self,
        stage: &'static str,
        limit: Duration,
    ) -> Result<Reply, MilterError> {
        let read = async {
            let mut prefix = [0; LENGTH_PREFIX];
            self.stream
                .read_exact(&mut prefix)
                .await
                .map_err(|e| io_error(e, stage))?;
            let mut packet = vec![0; packet_len(prefix)?];
            self.stream
                .read_exact(&mut packet)
                .await
                .map_err(|e| io_error(e, stage))?;
            let (&code, data) = packet.split_first().ok_or(DecodeError::Empty)?;
            Ok(Reply::decode(Packet { code, data })?)
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| MilterError::Timeout(stage))?
    }

    /// Writes what is buffered and closes the write side.
    pub(crate) async fn close(
        mut self,
        stage: &'static str,
        limit: Duration,
    ) -> Result<(), MilterError> {
        self.flush(stage, limit).await?;
        tokio::time::timeout(limit, self.stream.shutdown())
            .await
            .map_err(|_| MilterError::Timeout(stage))?
            .map_err(|e| io_error(e, stage))
    }
}

/// A peer that closes mid-packet is named as such; other I/O errors stay what they are.
fn io_error(e: io::Error, stage: &'static str) -> MilterError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => MilterError::Closed(stage),
        _ => MilterError::Io(e),
    }
}
