//! Reading CRLF-terminated command lines with a length limit, for POP3 (whose commands
//! are single lines), IMAP's raw continuation lines and ManageSieve, and the octets of a
//! literal.

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

    /// Reads the `length` octets of a literal (IMAP, ManageSieve): `Some(None)` when
    /// there are more than `keep` (they are read and dropped, to stay in step with the
    /// client), `None` when the client left.
    pub async fn read_octets<C: AsyncRead + Unpin>(
        &mut self,
        conn: &mut C,
        length: usize,
        keep: usize,
    ) -> io::Result<Option<Option<Vec<u8>>>> {
        let keeping = length <= keep;
        let buffered = self.buffer.len().min(length);
        let mut kept: Vec<u8> = self.buffer.drain(..buffered).collect();
        if !keeping {
            kept.clear();
        }
        let mut left = length - buffered;
        let mut chunk = [0u8; 8192];
        while left > 0 {
            let want = left.min(chunk.len());
            let n = conn.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Ok(None);
            }
            if keeping {
                kept.extend_from_slice(&chunk[..n]);
            }
            left -= n;
        }
        Ok(Some(keeping.then_some(kept)))
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
    async fn literal_octets_kept_or_dropped_in_step() {
        let mut input: &[u8] = b"A {5+}\r\nhello\r\nB {9+}\r\nworldwide\r\nC\r\n";
        let mut reader = LineReader::default();
        assert_eq!(
            reader.read(&mut input, 100).await.unwrap(),
            Line::Text("A {5+}".into())
        );
        assert_eq!(
            reader.read_octets(&mut input, 5, 8).await.unwrap(),
            Some(Some(b"hello".to_vec()))
        );
        assert_eq!(
            reader.read(&mut input, 100).await.unwrap(),
            Line::Text("".into())
        );
        assert_eq!(
            reader.read(&mut input, 100).await.unwrap(),
            Line::Text("B {9+}".into())
        );
        assert_eq!(
            reader.read_octets(&mut input, 9, 8).await.unwrap(),
            Some(None)
        );
        assert_eq!(
            reader.read(&mut input, 100).await.unwrap(),
            Line::Text("".into())
        );
        assert_eq!(
            reader.read(&mut input, 100).await.unwrap(),
            Line::Text("C".into())
        );
        assert_eq!(reader.read_octets(&mut input, 3, 8).await.unwrap(), None);
    }

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
