//! A small IMAP client for the load generator: tagged commands, the untagged lines before
//! the tagged status, and literals (`{n}`, RFC 9051 §4.3) read by count so that a message
//! body never desynchronises the reader. Only what the workloads send: no TLS, no parsing
//! of responses beyond what a figure needs (SEARCH hits).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// One connection, greeted.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_tag: u64,
    timeout: Duration,
}

/// What the server answered a command: its untagged lines, literals left out.
#[derive(Debug, Default)]
pub struct Reply {
    /// Untagged and continuation lines, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// The message numbers (or UIDs) of `* SEARCH` lines.
    pub fn search_hits(&self) -> usize {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .map(|hits| hits.split_whitespace().count())
            .sum()
    }

    /// The number in `* n EXISTS`.
    pub fn exists(&self) -> Option<u32> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
    }
}

/// The octet count of a line ending in a literal's announcement `{n}` or `{n+}`.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Client {
    /// Connects and reads the greeting (`* OK`).
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Client> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
            next_tag: 1,
            timeout,
        };
        let greeting = client.line().await?;
        if !greeting.starts_with("* OK") {
            bail!("greeted with {greeting:?}");
        }
        Ok(client)
    }

    /// Connects and logs in.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> anyhow::Result<Client> {
        let mut client = Client::connect(addr, timeout).await?;
        client
            .command(&format!("LOGIN {user} {}", quoted(password)))
            .await?;
        Ok(client)
    }

    /// Sends `command` under a fresh tag and reads up to its tagged OK; NO and BAD are errors.
    pub async fn command(&mut self, command: &str) -> anyhow::Result<Reply> {
        let tag = self.send(command).await?;
        self.finish(&tag, command).await
    }

    /// IDLE (RFC 2177) for `wait`, then DONE.
    pub async fn idle(&mut self, wait: Duration) -> anyhow::Result<Reply> {
        let tag = self.send("IDLE").await?;
        let go_ahead = self.line().await?;
        if !go_ahead.starts_with('+') {
            bail!("IDLE answered {go_ahead:?}");
        }
        tokio::time::sleep(wait).await;
        self.writer.write_all(b"DONE\r\n").await?;
        self.finish(&tag, "IDLE").await
    }

    /// LOGOUT, reading the BYE and the tagged OK.
    pub async fn logout(mut self) -> anyhow::Result<()> {
        self.command("LOGOUT").await.map(drop)
    }

    async fn send(&mut self, command: &str) -> anyhow::Result<String> {
        let tag = format!("b{}", self.next_tag);
        self.next_tag += 1;
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        Ok(tag)
    }

    /// Reads until the line tagged `tag`.
    async fn finish(&mut self, tag: &str, command: &str) -> anyhow::Result<Reply> {
        let mut reply = Reply::default();
        loop {
            let line = self.response_line().await?;
            if let Some(status) = line.strip_prefix(tag).and_then(|s| s.strip_prefix(' ')) {
                if status.starts_with("OK") {
                    return Ok(reply);
                }
                let verb = command.split(' ').next().unwrap_or(command);
                bail!("{verb} answered {status:?}");
            }
            reply.lines.push(line);
        }
    }

    /// One response line with any literals inside it skipped.
    async fn response_line(&mut self) -> anyhow::Result<String> {
        let mut text = Vec::new();
        loop {
            let mut part = Vec::new();
            self.read_until_lf(&mut part).await?;
            match literal_length(&part) {
                Some(length) => {
                    let mut rest = (&mut self.reader).take(length as u64);
                    let copied = tokio::time::timeout(
                        self.timeout,
                        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
                    )
                    .await
                    .context("literal timed out")??;
                    if copied < length as u64 {
                        bail!("connection closed inside a literal");
                    }
                    text.extend_from_slice(&part[..part.len().saturating_sub(2)]);
                }
                None => {
                    text.extend_from_slice(part.strip_suffix(b"\r\n").unwrap_or(&part));
                    return Ok(String::from_utf8_lossy(&text).into_owned());
                }
            }
        }
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = Vec::new();
        self.read_until_lf(&mut line).await?;
        let line = line.strip_suffix(b"\r\n").unwrap_or(&line);
        Ok(String::from_utf8_lossy(line).into_owned())
    }

    async fn read_until_lf(&mut self, into: &mut Vec<u8>) -> anyhow::Result<()> {
        let read = tokio::time::timeout(self.timeout, self.reader.read_until(b'\n', into))
            .await
            .context("response timed out")??;
        if read == 0 {
            bail!("connection closed");
        }
        Ok(())
    }
}

/// `text` as an IMAP quoted string (RFC 9051 §4.3): backslash and quote escaped.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {4096}\r\n"), Some(4096));
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12+}\r\n"), Some(12));
        assert_eq!(literal_length(b"* 1 FETCH (FLAGS (\\Seen))\r\n"), None);
        assert_eq!(literal_length(b"* OK {x}\r\n"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
