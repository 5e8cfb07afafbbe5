//! A message as RETR and TOP send it (RFC 1939 §3): every line ending in CRLF, lines
//! starting with `.` doubled, and for TOP only the header and so many body lines. It works
//! on the message piece by piece as it is read from its file, so a session never holds a
//! whole message, however large and however slowly its client reads.

/// The state carried from one piece of the message to the next.
#[derive(Debug)]
pub struct Stuffer {
    /// The next octet starts a line.
    line_start: bool,
    /// Nothing of the current line has been written yet (an empty line ends the header).
    line_empty: bool,
    /// A CR was seen and not yet written: it is dropped if LF follows (the line's own end).
    cr: bool,
    /// Past the empty line that ends the header.
    in_body: bool,
    /// For TOP: body lines still to send.
    body_left: Option<usize>,
    /// TOP has sent all it should.
    done: bool,
}

impl Stuffer {
    /// A stuffer for the whole message, or for its header and `body_lines` lines (TOP).
    pub fn new(body_lines: Option<usize>) -> Stuffer {
        Stuffer {
            line_start: true,
            line_empty: true,
            cr: false,
            in_body: false,
            body_left: body_lines,
            done: false,
        }
    }

    /// Appends the stuffed form of the next `piece` of the message to `out`; false once
    /// nothing more of the message is wanted.
    pub fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) -> bool {
        for &octet in piece {
            if self.line_start {
                if self.in_body {
                    match &mut self.body_left {
                        Some(0) => self.done = true,
                        Some(left) => *left -= 1,
                        None => {}
                    }
                }
                if self.done {
                    return false;
                }
                self.line_start = false;
                self.line_empty = true;
                if octet == b'.' {
                    out.push(b'.');
                }
            }
            match octet {
                b'\n' => {
                    self.cr = false;
                    out.extend_from_slice(b"\r\n");
                    if self.line_empty {
                        self.in_body = true;
                    }
                    self.line_start = true;
                }
                b'\r' => {
                    self.write_held_cr(out);
                    self.cr = true;
                }
                _ => {
                    self.write_held_cr(out);
                    out.push(octet);
                    self.line_empty = false;
                }
            }
        }
        !self.done
    }

    /// Ends the message: a last line without a line break gets one (a CR ending it is the
    /// start of that break).
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start && !self.done {
            out.extend_from_slice(b"\r\n");
        }
    }

    /// A CR followed by something other than LF is part of the line.
    fn write_held_cr(&mut self, out: &mut Vec<u8>) {
        if self.cr {
            out.push(b'\r');
            self.cr = false;
            self.line_empty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The message stuffed in one piece.
    fn stuffed(message: &[u8], body_lines: Option<usize>) -> Vec<u8> {
        stuffed_in_pieces(message, body_lines, &[])
    }

    /// The message stuffed in pieces cut at `cuts`.
    fn stuffed_in_pieces(message: &[u8], body_lines: Option<usize>, cuts: &[usize]) -> Vec<u8> {
        let mut stuffer = Stuffer::new(body_lines);
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([message.len()].iter()) {
            let cut = cut.clamp(start, message.len());
            if !stuffer.feed(&message[start..cut], &mut out) {
                return out;
            }
            start = cut;
        }
        stuffer.finish(&mut out);
        out
    }

    /// Line by line, as the rule is written.
    fn reference(message: &[u8], body_lines: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut in_body = false;
        let mut body_left = body_lines;
        for line in message.split_inclusive(|b| *b == b'\n') {
            if in_body {
                match &mut body_left {
                    Some(0) => break,
                    Some(left) => *left -= 1,
                    None => {}
                }
            }
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.is_empty() {
                in_body = true;
            }
            if text.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn stuffing_and_top() {
        let message = b"Subject: x\r\n\r\n.line\nsecond\r\nthird\r\n";
        assert_eq!(
            stuffed(message, None),
            b"Subject: x\r\n\r\n..line\r\nsecond\r\nthird\r\n"
        );
        assert_eq!(stuffed(message, Some(1)), b"Subject: x\r\n\r\n..line\r\n");
        assert_eq!(stuffed(message, Some(0)), b"Subject: x\r\n\r\n");
        assert_eq!(stuffed(b"a\r\r\nb\rc\r", None), b"a\r\r\nb\rc\r\n");
        assert_eq!(stuffed(b"", None), b"");
    }

    proptest! {
        #[test]
        fn pieces_make_no_difference(
            message in prop::collection::vec(
                prop::sample::select(vec![b'a', b'.', b'\r', b'\n', b' ']), 0..200),
            body_lines in prop::option::of(0..5usize),
            mut cuts in prop::collection::vec(0..200usize, 0..8),
        ) {
            cuts.sort_unstable();
            let expected = reference(&message, body_lines);
            prop_assert_eq!(stuffed_in_pieces(&message, body_lines, &cuts), expected);
        }
    }
}
