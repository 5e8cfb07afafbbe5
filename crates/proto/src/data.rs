//! The message content decoder for DATA and BDAT.
//!
//! DATA ends only at `<CRLF>.<CRLF>` (RFC 5321 §4.1.1.4); any other "end" a peer might hope
//! for (`<LF>.<LF>`, `<LF>.<CRLF>`, `<CR>.<CR>`…) is either refused with the whole message or
//! kept as ordinary content, never taken as the end: this is the defence against SMTP
//! smuggling. Dot-stuffing is undone (§4.5.2). BDAT content (RFC 3030) is length-delimited
//! but goes through the same line checks, so a message never enters the spool with a bare
//! CR or LF that a later hop could misread.

use memchr::memchr2;

/// What to do with a line ending that is a bare LF or a bare CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// Refuse the message (550 5.6.0), like Postfix's `smtpd_forbid_bare_newline = yes`.
    #[default]
    Reject,
    /// Accept the message and store the bare ending as CRLF.
    Normalize,
}

/// Why decoded content is refused; the first problem found wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentError {
    /// A bare CR or LF while those are refused.
    BareNewline,
    /// A line longer than the text line limit.
    LineTooLong,
    /// More octets than the message size limit.
    TooBig,
}

/// Limits and policy the decoder enforces.
#[derive(Debug, Clone, Copy)]
pub struct ContentLimits {
    /// Longest line in octets, without its CRLF.
    pub max_line: usize,
    /// Largest message in octets, after dot-unstuffing.
    pub max_size: u64,
    /// Bare CR/LF policy.
    pub bare_newline: BareNewline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line. `hard` when the previous line ended with a real CRLF: only
    /// then can a lone dot end DATA.
    LineStart { hard: bool },
    /// Saw `.` at the start of a line (DATA only).
    Dot { hard: bool },
    /// Saw `.` CR at the start of a line (DATA only).
    DotCr { hard: bool },
    /// Inside a line.
    Text,
    /// Saw CR inside a line.
    Cr,
}

/// Decodes message content incrementally; state survives across input slices and chunks.
#[derive(Debug)]
pub struct ContentDecoder {
    state: State,
    dot_transparency: bool,
    limits: ContentLimits,
    line_len: usize,
    size: u64,
    error: Option<ContentError>,
}

impl ContentDecoder {
    /// A decoder for DATA: dot-unstuffing, and the end at `<CRLF>.<CRLF>`.
    pub fn for_data(limits: ContentLimits) -> Self {
        Self::new(limits, true)
    }

    /// A decoder for BDAT chunks: content is taken as is, only the line rules apply.
    pub fn for_chunks(limits: ContentLimits) -> Self {
        Self::new(limits, false)
    }

    fn new(limits: ContentLimits, dot_transparency: bool) -> Self {
        ContentDecoder {
            state: State::LineStart { hard: true },
            dot_transparency,
            limits,
            line_len: 0,
            size: 0,
            error: None,
        }
    }

    /// Octets of decoded content kept so far; counting stops at the first error.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first problem found, if any.
    pub fn error(&self) -> Option<ContentError> {
        self.error
    }

    /// Decodes `input`, appending content to `out` (nothing more once an error is known).
    /// Returns the octets consumed and whether the end of DATA was reached; when it was,
    /// the rest of `input` is not consumed (it is the next command).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                let end = memchr2(b'\r', b'\n', &input[i..]).map_or(input.len(), |p| i + p);
                if end > i {
                    self.text(&input[i..end], out);
                    i = end;
                    continue;
                }
            }
            let b = input[i];
            i += 1;
            if self.step(b, out) {
                return (i, true);
            }
        }
        (i, false)
    }

    /// Called after the last BDAT chunk: a CR left pending at the very end is a bare CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Cr {
            self.bare_newline(out);
            self.state = State::LineStart { hard: false };
        }
    }

    /// One octet outside a text run. Returns true at the end of DATA.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::LineStart { hard } => {
                if b == b'.' && self.dot_transparency {
                    self.state = State::Dot { hard };
                } else {
                    self.state = State::Text;
                    self.after_text_byte(b, out);
                }
            }
            State::Dot { hard } => match b {
                b'\r' => self.state = State::DotCr { hard },
                b'\n' => {
                    // ".<LF>": never an end. Keep the dot, the line is not stuffed.
                    self.emit_text(b".", out);
                    self.bare_newline(out);
                }
                _ => {
                    // RFC 5321 §4.5.2: drop the first dot of a stuffed line.
                    self.state = State::Text;
                    self.after_text_byte(b, out);
                }
            },
            State::DotCr { hard } => {
                if b == b'\n' && hard {
                    return true;
                }
                self.emit_text(b".", out);
                if b == b'\n' {
                    // A real CRLF after a dot that followed a bare ending: content, not an end.
                    self.end_line(out);
                } else {
                    self.bare_newline(out);
                    self.reprocess(b, out);
                }
            }
            State::Text => self.after_text_byte(b, out),
            State::Cr => {
                if b == b'\n' {
                    self.end_line(out);
                } else {
                    self.bare_newline(out);
                    self.reprocess(b, out);
                }
            }
        }
        false
    }

    /// Handles `b` again after a bare CR was dealt with, from whatever state that left.
    fn reprocess(&mut self, b: u8, out: &mut Vec<u8>) {
        if matches!(self.state, State::LineStart { .. }) {
            self.step(b, out);
        } else {
            self.after_text_byte(b, out);
        }
    }

    /// A text octet that may be CR or LF.
    fn after_text_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => self.bare_newline(out),
            _ => self.text(&[b], out),
        }
    }

    /// A run of octets that holds no CR or LF.
    fn text(&mut self, run: &[u8], out: &mut Vec<u8>) {
        self.state = State::Text;
        self.emit_text(run, out);
    }

    fn emit_text(&mut self, run: &[u8], out: &mut Vec<u8>) {
        self.line_len += run.len();
        if self.line_len > self.limits.max_line {
            self.fail(ContentError::LineTooLong);
        }
        self.emit(run, out);
    }

    /// A real CRLF.
    fn end_line(&mut self, out: &mut Vec<u8>) {
        self.emit(b"\r\n", out);
        self.line_len = 0;
        self.state = State::LineStart { hard: true };
    }

    /// A bare CR or LF: refused, or stored as CRLF. Either way it never starts a line at
    /// which a lone dot could end DATA.
    fn bare_newline(&mut self, out: &mut Vec<u8>) {
        match self.limits.bare_newline {
            BareNewline::Reject => {
                self.fail(ContentError::BareNewline);
                self.state = State::Text;
            }
            BareNewline::Normalize => {
                self.emit(b"\r\n", out);
                self.line_len = 0;
                self.state = State::LineStart { hard: false };
            }
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        self.size += bytes.len() as u64;
        if self.size > self.limits.max_size {
            self.fail(ContentError::TooBig);
            return;
        }
        out.extend_from_slice(bytes);
    }

    fn fail(&mut self, error: ContentError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ContentLimits = ContentLimits {
        max_line: 998,
        max_size: 1 << 20,
        bare_newline: BareNewline::Reject,
    };

    fn normalize() -> ContentLimits {
        ContentLimits {
            bare_newline: BareNewline::Normalize,
            ..LIMITS
        }
    }

    /// Feeds the input one slice at a time; returns (content, consumed, done, error).
    fn run(
        limits: ContentLimits,
        slices: &[&[u8]],
    ) -> (Vec<u8>, usize, bool, Option<ContentError>) {
        let mut decoder = ContentDecoder::for_data(limits);
        let mut out = Vec::new();
        let mut consumed = 0;
        for slice in slices {
            let (n, done) = decoder.decode(slice, &mut out);
            consumed += n;
            if done {
                return (out, consumed, true, decoder.error());
            }
        }
        (out, consumed, false, decoder.error())
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_keeps_final_crlf() {
        let (out, consumed, done, err) = run(LIMITS, &[b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"]);
        assert!(done);
        assert_eq!(err, None);
        assert_eq!(out, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(consumed, b"Subject: x\r\n\r\nbody\r\n.\r\n".len());
    }

    #[test]
    fn empty_message() {
        let (out, _, done, _) = run(LIMITS, &[b".\r\n"]);
        assert!(done);
        assert!(out.is_empty());
    }

    #[test]
    fn dot_stuffing_is_undone() {
        let (out, _, done, _) = run(LIMITS, &[b"..hidden\r\n...\r\n.x\r\n.\r\n"]);
        assert!(done);
        assert_eq!(out, b".hidden\r\n..\r\nx\r\n");
    }

    #[test]
    fn end_split_across_every_boundary() {
        let input = b"line\r\n.\r\n";
        for cut in 0..input.len() {
            let (out, consumed, done, _) = run(LIMITS, &[&input[..cut], &input[cut..]]);
            assert!(done, "cut at {cut}");
            assert_eq!(out, b"line\r\n");
            assert_eq!(consumed, input.len());
        }
    }

    #[test]
    fn smuggling_bare_lf_dot_is_not_an_end_and_is_rejected() {
        for attempt in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n",
        ] {
            let (_, consumed, done, err) = run(LIMITS, &[attempt]);
            assert!(done);
            assert_eq!(consumed, attempt.len(), "{attempt:?} ended early");
            assert_eq!(err, Some(ContentError::BareNewline));
        }
    }

    #[test]
    fn smuggling_under_normalize_keeps_the_dot_as_content() {
        let (out, consumed, done, err) = run(normalize(), &[b"a\n.\nb\r\n.\r\n"]);
        assert!(done);
        assert_eq!(err, None);
        assert_eq!(consumed, 10);
        assert_eq!(out, b"a\r\n.\r\nb\r\n");
        let (out, _, done, _) = run(normalize(), &[b"a\n.\r\nb\r\n.\r\n"]);
        assert!(done);
        assert_eq!(out, b"a\r\n.\r\nb\r\n");
    }

    #[test]
    fn normalize_turns_bare_endings_into_crlf() {
        let (out, _, done, err) = run(normalize(), &[b"a\nb\rc\r\n..d\n..e\r\n.\r\n"]);
        assert!(done);
        assert_eq!(err, None);
        assert_eq!(out, b"a\r\nb\r\nc\r\n.d\r\n.e\r\n");
    }

    #[test]
    fn long_line_is_refused_but_end_is_still_found() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\r\n.\r\n");
        let (_, consumed, done, err) = run(LIMITS, &[&input]);
        assert!(done);
        assert_eq!(consumed, input.len());
        assert_eq!(err, Some(ContentError::LineTooLong));
    }

    #[test]
    fn size_limit() {
        let limits = ContentLimits {
            max_size: 10,
            ..LIMITS
        };
        let (out, _, done, err) = run(limits, &[b"0123456789\r\n.\r\n"]);
        assert!(done);
        assert_eq!(err, Some(ContentError::TooBig));
        assert!(out.len() <= 10);
        let (_, _, _, err) = run(limits, &[b"01234567\r\n.\r\n"]);
        assert_eq!(err, None);
    }

    #[test]
    fn chunks_keep_dots_and_flag_trailing_cr() {
        let mut decoder = ContentDecoder::for_chunks(LIMITS);
        let mut out = Vec::new();
        assert_eq!(decoder.decode(b".\r\n.x\r", &mut out), (6, false));
        decoder.decode(b"\n", &mut out);
        assert_eq!(out, b".\r\n.x\r\n");
        assert_eq!(decoder.error(), None);
        decoder.decode(b"tail\r", &mut out);
        decoder.finish(&mut out);
        assert_eq!(decoder.error(), Some(ContentError::BareNewline));
    }

    #[test]
    fn eight_bit_content_passes_untouched() {
        let (out, _, done, err) = run(LIMITS, &[b"\xc3\xa9t\xc3\xa9 \x00\xff\r\n.\r\n"]);
        assert!(done);
        assert_eq!(err, None);
        assert_eq!(out, b"\xc3\xa9t\xc3\xa9 \x00\xff\r\n");
    }
}
