//! Dot-stuffing for DATA (RFC 5321 §4.5.2), streamed: content goes out chunk by chunk and
//! a line that starts with a dot gets a second one, wherever the chunk boundaries fall.
//!
//! The encoder also writes every line ending as CRLF. Content from our own receiving side
//! never holds a bare CR or LF, but the encoder does not rely on that: whatever path a
//! message took, the next hop cannot be handed an ending it might take for the end of DATA.

use memchr::memchr2;

/// Encodes message content for DATA.
#[derive(Debug)]
pub struct DotStuffer {
    /// The next octet starts a line.
    at_line_start: bool,
    /// A CR was seen and its LF (if any) has not arrived yet.
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }
}

impl DotStuffer {
    /// Appends `chunk`, stuffed and with CRLF line endings, to `out`.
    pub fn stuff(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + 8);
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if self.pending_cr {
                self.pending_cr = false;
                self.end_line(out);
                if b == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.pending_cr = true;
                    i += 1;
                }
                b'\n' => {
                    self.end_line(out);
                    i += 1;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    self.at_line_start = false;
                    let end = memchr2(b'\r', b'\n', &chunk[i..]).map_or(chunk.len(), |p| i + p);
                    out.extend_from_slice(&chunk[i..end]);
                    i = end;
                }
            }
        }
    }

    /// Ends the content: a CRLF if the content did not end with one, then `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = DotStuffer::default();
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.at_line_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffer.stuff(chunk, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn leading_dots_are_doubled_across_boundaries() {
        assert_eq!(encode(&[b".a\r\n.", b".b\r\n"]), b"..a\r\n...b\r\n.\r\n");
        assert_eq!(encode(&[b"x\r", b"\n.y\r\n"]), b"x\r\n..y\r\n.\r\n");
        assert_eq!(encode(&[b"x\r\n", b".\r\n"]), b"x\r\n..\r\n.\r\n");
    }

    #[test]
    fn missing_final_crlf_is_added() {
        assert_eq!(encode(&[b"no newline"]), b"no newline\r\n.\r\n");
        assert_eq!(encode(&[]), b".\r\n");
        assert_eq!(encode(&[b"line\r\n"]), b"line\r\n.\r\n");
        assert_eq!(encode(&[b"line\r"]), b"line\r\n.\r\n");
    }

    #[test]
    fn bare_endings_become_crlf_so_no_terminator_can_be_smuggled() {
        assert_eq!(encode(&[b"a\n.\nb\r\n"]), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(encode(&[b"a\r.\rb"]), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(encode(&[b"a\r", b".\r\n"]), b"a\r\n..\r\n.\r\n");
    }
}
