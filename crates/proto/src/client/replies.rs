//! Parsing the replies of a remote server (RFC 5321 §4.2), bounded so that a hostile
//! server cannot make us buffer without limit.

use std::borrow::Cow;

use crate::reply::{Reply, Status};

/// Longest reply line we accept (RFC 5321 §4.5.3.1.5 says 512; servers exceed it).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
pub const MAX_REPLY_LINES: usize = 256;

/// A reply the remote server sent that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReply(pub String);

/// Splits the server's byte stream into replies.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buffer: Vec<u8>,
    lines: Vec<String>,
    code: Option<u16>,
}

impl ReplyParser {
    /// Appends bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete reply, if one is buffered.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, MalformedReply> {
        loop {
            let Some(end) = memchr::memchr(b'\n', &self.buffer) else {
                if self.buffer.len() > MAX_REPLY_LINE {
                    return Err(MalformedReply("reply line too long".into()));
                }
                return Ok(None);
            };
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.len() > MAX_REPLY_LINE {
                return Err(MalformedReply("reply line too long".into()));
            }
            let (code, last, text) = split_line(line)?;
            if *self.code.get_or_insert(code) != code {
                return Err(MalformedReply(format!(
                    "reply code changed within a reply: {line:?}"
                )));
            }
            self.lines.push(text.to_string());
            if self.lines.len() > MAX_REPLY_LINES {
                return Err(MalformedReply("too many reply lines".into()));
            }
            if last {
                let lines = std::mem::take(&mut self.lines);
                self.code = None;
                return Ok(Some(assemble(code, lines)));
            }
        }
    }
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → (250, true, "text").
fn split_line(line: &str) -> Result<(u16, bool, &str), MalformedReply> {
    let bytes = line.as_bytes();
    let digits_ok = bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit);
    let code: u16 = if digits_ok {
        line[..3].parse().unwrap_or(0)
    } else {
        0
    };
    if !(200..600).contains(&code) {
        return Err(MalformedReply(format!("not a reply: {line:?}")));
    }
    match bytes.get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(MalformedReply(format!("not a reply: {line:?}"))),
    }
}

/// Builds a [`Reply`]: the enhanced status code is taken from the first line when present
/// and of the reply's class, and stripped from every line.
fn assemble(code: u16, lines: Vec<String>) -> Reply {
    let status = lines
        .first()
        .and_then(|l| l.split(' ').next())
        .and_then(Status::parse)
        .filter(|s| s.class as u16 == code / 100);
    let lines: Vec<String> = match status {
        Some(status) => {
            let prefix = status.to_string();
            lines
                .into_iter()
                .map(|l| match l.strip_prefix(&prefix) {
                    Some(rest) => rest.trim_start().to_string(),
                    None => l,
                })
                .collect()
        }
        None => lines,
    };
    Reply {
        code,
        status,
        text: Cow::Owned(lines.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Reply> {
        let mut parser = ReplyParser::default();
        parser.feed(input);
        let mut replies = Vec::new();
        while let Some(reply) = parser.next_reply().unwrap() {
            replies.push(reply);
        }
        replies
    }

    #[test]
    fn single_and_multi_line() {
        let replies = parse_all(
            b"220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
        );
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].code, 220);
        assert_eq!(replies[0].status, None);
        assert_eq!(replies[1].text, "mx.example\nPIPELINING\nSIZE 100");
    }

    #[test]
    fn enhanced_status_is_parsed_and_stripped() {
        let replies = parse_all(b"550-5.1.1 no such\r\n550 5.1.1 user\r\n");
        assert_eq!(replies[0].status, Some(Status::new(5, 1, 1)));
        assert_eq!(replies[0].text, "no such\nuser");
        let replies = parse_all(b"451 5.1.1 class mismatch\r\n");
        assert_eq!(replies[0].status, None);
    }

    #[test]
    fn split_reads_and_bare_code() {
        let mut parser = ReplyParser::default();
        parser.feed(b"25");
        assert_eq!(parser.next_reply(), Ok(None));
        parser.feed(b"0\r\n");
        assert_eq!(parser.next_reply().unwrap().unwrap().code, 250);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"hello\r\n"[..],
            b"25x ok\r\n",
            b"250-a\r\n251 b\r\n",
            b"999 no\r\n",
            b"250_x\r\n",
        ] {
            let mut parser = ReplyParser::default();
            parser.feed(bad);
            let mut result = parser.next_reply();
            while let Ok(Some(_)) = result {
                result = parser.next_reply();
            }
            assert!(result.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unbounded_input_is_refused() {
        let mut parser = ReplyParser::default();
        parser.feed(&vec![b'2'; MAX_REPLY_LINE + 1]);
        assert!(parser.next_reply().is_err());
        let mut parser = ReplyParser::default();
        parser.feed(&b"250-x\r\n".repeat(MAX_REPLY_LINES + 1));
        assert!(parser.next_reply().is_err());
    }
}
