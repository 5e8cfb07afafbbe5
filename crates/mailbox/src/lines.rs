//! Reading CRLF-terminated command lines with a length limit, for POP3 (whose commands
//! are single lines) and for IMAP's raw continuation lines.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Buffers what the client sent past the current line (pipelined commands).
#[derive(Debug, Default)]
pub struct LineReader {
    buffer: Vec<u8>,
    skipping: bool,
}

/// One read's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line without its CRLF (lossily decoded: commands are ASCII).
    Text(String),
    /// A line over the limit, dropped.
    TooLong,
    /// The client closed the connection.
    Closed,
}

impl LineReader {
    /// Reads the next line of at most `max` octets.
    pub async fn read<C: AsyncRead + Unpin>(
        &mut self,
        conn: &mut C,
        max: usize,
    ) -> io::Result<Line> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if std::mem::take(&mut self.skipping) || line.len() > max + 2 {
                    return Ok(Line::TooLong);
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                return Ok(Line::Text(String::from_utf8_lossy(text).into_owned()));
            }
            if self.buffer.len() > max + 2 {
                // Keep memory bounded: forget the over-long line and answer once it ends.
                self.buffer.clear();
                self.skipping = true;
            }
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Line::Closed);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Forgets buffered input: after STARTTLS, nothing sent in the clear may be taken as
    /// sent inside TLS (the command-injection attack of CVE-2011-0411).
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_pipelined_and_too_long() {
        let mut input: &[u8] = b"USER a\r\nPASS b\nxxxxxxxxxxxxxxxxxxxxxxxx\r\nQUIT\r\n";
        let mut reader = LineReader::default();
        assert_eq!(
            reader.read(&mut input, 10).await.unwrap(),
            Line::Text("USER a".into())
        );
        assert_eq!(
            reader.read(&mut input, 10).await.unwrap(),
            Line::Text("PASS b".into())
        );
        assert_eq!(reader.read(&mut input, 10).await.unwrap(), Line::TooLong);
        assert_eq!(
            reader.read(&mut input, 10).await.unwrap(),
            Line::Text("QUIT".into())
        );
        assert_eq!(reader.read(&mut input, 10).await.unwrap(), Line::Closed);
    }
}
