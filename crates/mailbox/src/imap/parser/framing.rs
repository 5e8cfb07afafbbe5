//! The framing layer: cuts the client's byte stream into commands, each line up to its
//! CRLF and each literal's exact octets, every size checked before anything is stored.

use super::grammar::{ascii, is_tag_char, parse_request, parse_u64};
use super::*;

/// Bytes kept from the end of a line being skipped: enough to spot a literal marker there.
const SKIP_TAIL: usize = 64;
/// The largest non-synchronizing literal over the limits that is read and dropped so the
/// command can be answered; a larger one ends the connection.
const DISCARD_MAX: u64 = 64 * 1024;
/// Most a literal's buffer reserves before its octets arrive, so announcing a large
/// literal and sending nothing costs us little.
const LITERAL_PREALLOC: usize = 64 * 1024;

/// Incremental reader of IMAP commands: the session feeds it what it reads from the socket
/// and takes out whole commands, so partial reads, pipelining and literals are handled in
/// one place and memory stays bounded by [`Limits`].
pub struct CommandReader {
    /// The limits checked before anything is stored.
    limits: Limits,
    /// Bytes fed and not yet consumed start at `start`.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// Up to here `buf` holds no LF: a line arriving byte by byte is scanned once.
    scanned: usize,
    /// Where we are in the stream.
    state: State,
    /// The command assembled so far.
    pending: Pending,
}

/// Where the reader is within the client's stream.
enum State {
    /// Between commands or inside a command line: collecting text up to LF.
    Line,
    /// Inside an accepted literal: this many octets still to collect.
    Literal(usize),
    /// Dropping a rejected line up to its LF without storing it.
    Skipping(Skip),
    /// Dropping the octets of a rejected command's non-synchronizing literal, then the rest
    /// of its line.
    SkippingLiteral {
        /// Octets still to drop.
        remaining: u64,
        /// The rejected command's literal budget, for literals later in its line.
        budget: usize,
    },
    /// A Fatal was reported: the session closes the connection and input is ignored.
    Closed,
}

/// A line being skipped.
struct Skip {
    /// The last bytes seen, to spot a trailing `{n+}` whose octets must be skipped too.
    tail: Vec<u8>,
    /// True when `tail` lost bytes from its front.
    truncated: bool,
    /// The rejected command's literal budget; None for a raw line of `next_line`, which
    /// never announces literals.
    budget: Option<usize>,
}

impl Skip {
    /// Starts skipping a line.
    fn new(budget: Option<usize>) -> Self {
        Self {
            tail: Vec::new(),
            truncated: false,
            budget,
        }
    }

    /// Keeps the last [`SKIP_TAIL`] bytes of what was skipped.
    fn remember(&mut self, bytes: &[u8]) {
        let keep = bytes.len().min(SKIP_TAIL);
        self.truncated |= keep < bytes.len();
        self.tail
            .extend_from_slice(bytes.get(bytes.len() - keep..).unwrap_or_default());
        let excess = self.tail.len().saturating_sub(SKIP_TAIL);
        if excess > 0 {
            self.tail.drain(..excess);
            self.truncated = true;
        }
    }
}

/// A command being assembled: its lines (literal markers removed), each but the last
/// followed by the literal it announced.
#[derive(Default)]
struct Pending {
    /// The text lines.
    texts: Vec<Vec<u8>>,
    /// The literals, `literals[i]` following `texts[i]`.
    literals: Vec<Vec<u8>>,
    /// Which literals are literal8 (`~{n}`, RFC 3516 §4.4): the grammar takes them only
    /// where binary data may go.
    binary: Vec<bool>,
    /// Total length of `texts`, checked against `max_line`.
    text_len: usize,
    /// Total size of the literals announced, checked against the literal budget.
    announced: usize,
}

impl Pending {
    /// True before the first line of a command.
    fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Adds a line of the command.
    fn push_text(&mut self, text: Vec<u8>) {
        self.text_len += text.len();
        self.texts.push(text);
    }
}

/// A literal marker found at the end of a line.
struct Marker {
    /// The announced size; None when it does not fit in 64 bits.
    size: Option<u64>,
    /// `{n}`, which needs a continuation, rather than LITERAL+'s `{n+}`.
    sync: bool,
    /// Literal8 (`~{n}`, RFC 3516).
    binary: bool,
    /// Where the marker starts in the line.
    text_end: usize,
}

impl CommandReader {
    /// A reader with nothing buffered.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            state: State::Line,
            pending: Pending::default(),
        }
    }

    /// Changes the limits, as login lifts the small pre-authentication ones. Meant for
    /// use between commands: the next command read is held to the new limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Appends bytes read from the client. Nothing is parsed until [`Self::next`].
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next event. Call repeatedly until it returns Incomplete (several pipelined
    /// commands may be buffered).
    #[expect(
        clippy::should_implement_trait,
        reason = "never ends, unlike an iterator: Incomplete means \"feed more\""
    )]
    pub fn next(&mut self) -> Input {
        loop {
            let step = match std::mem::replace(&mut self.state, State::Line) {
                State::Line => self.read_line(),
                State::Literal(remaining) => self.read_literal(remaining),
                State::Skipping(skip) => self.skip_line(skip),
                State::SkippingLiteral { remaining, budget } => {
                    self.skip_literal(remaining, budget)
                }
                State::Closed => {
                    self.state = State::Closed;
                    Some(Input::Incomplete)
                }
            };
            if let Some(input) = step {
                return input;
            }
        }
    }

    /// For IDLE's `DONE` and AUTHENTICATE's continuation responses: the next raw line without
    /// its CRLF (LF alone also accepted), or None if no whole line is buffered yet. A line
    /// longer than max_line yields Some(Err(())) and is dropped. Meant for use between
    /// commands; bytes that are not UTF-8 are replaced, as no valid answer contains them.
    pub fn next_line(&mut self) -> Option<Result<String, ()>> {
        match std::mem::replace(&mut self.state, State::Line) {
            State::Line => {}
            State::Skipping(skip) if skip.budget.is_none() => {
                if self.skip_line(skip).is_some() {
                    return None;
                }
            }
            other => {
                self.state = other;
                return None;
            }
        }
        let Some(lf) = self.find_lf() else {
            let len = self.raw().len();
            if len > self.limits.max_line {
                self.consume(len);
                self.state = State::Skipping(Skip::new(None));
                return Some(Err(()));
            }
            return None;
        };
        let line = strip_cr(self.raw().get(..lf).unwrap_or_default());
        let result = if line.len() > self.limits.max_line {
            Err(())
        } else {
            Ok(String::from_utf8_lossy(line).into_owned())
        };
        self.consume(lf + 1);
        Some(result)
    }

    /// Bytes buffered and not yet consumed, including a partly assembled command (for tests
    /// and for STARTTLS, where buffered plaintext must be discarded: RFC 3501 §11.1 /
    /// command injection).
    pub fn buffered(&self) -> usize {
        self.raw().len()
            + self.pending.text_len
            + self.pending.literals.iter().map(Vec::len).sum::<usize>()
    }

    /// Octets of literal the command being read has announced and we accepted: what
    /// holding it will cost, known before its octets are read.
    pub fn literals_announced(&self) -> usize {
        self.pending.announced
    }

    /// Drops everything buffered (used right after STARTTLS).
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        self.pending = Pending::default();
        if !matches!(self.state, State::Closed) {
            self.state = State::Line;
        }
    }

    /// The bytes fed and not yet consumed.
    fn raw(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Marks `n` raw bytes consumed.
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        self.scanned = self.start;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
    }

    /// Offset of the next LF in the raw bytes, scanning each byte only once.
    fn find_lf(&mut self) -> Option<usize> {
        let from = self.scanned.max(self.start);
        let found = self
            .buf
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'));
        match found {
            Some(i) => Some(from + i - self.start),
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// The literal budget of the command whose first line is `first`.
    fn budget(&self, first: &[u8]) -> usize {
        if is_append(first) {
            self.limits.max_append
        } else {
            self.limits.max_literal
        }
    }

    /// State Line: takes the next line of the command, or rejects one that is too long.
    fn read_line(&mut self) -> Option<Input> {
        let Some(lf) = self.find_lf() else {
            if self.pending.text_len + strip_cr(self.raw()).len() > self.limits.max_line {
                return Some(self.reject_long_line());
            }
            return Some(Input::Incomplete);
        };
        let len = strip_cr(self.raw().get(..lf).unwrap_or_default()).len();
        if self.pending.text_len + len > self.limits.max_line {
            return Some(self.reject_long_line());
        }
        let line = self.raw().get(..len).unwrap_or_default().to_vec();
        self.consume(lf + 1);
        if line.is_empty() && self.pending.is_empty() {
            return None;
        }
        match literal_marker(&line) {
            Some(marker) => self.start_literal(line, marker),
            None => {
                self.pending.push_text(line);
                Some(self.finish_command())
            }
        }
    }

    /// Answers a line over `max_line`, drops what we have of it and skips the rest.
    fn reject_long_line(&mut self) -> Input {
        let first = self.pending.texts.first().map_or(self.raw(), Vec::as_slice);
        let tag = tag_of(first);
        let mut skip = Skip::new(Some(self.budget(first)));
        self.pending = Pending::default();
        let upto = self.find_lf().unwrap_or(self.raw().len());
        skip.remember(self.raw().get(..upto).unwrap_or_default());
        self.consume(upto);
        self.state = State::Skipping(skip);
        too_big(
            tag,
            format!("command line longer than {} bytes", self.limits.max_line),
        )
    }

    /// A line ended in a literal marker: accept the literal (checking its size first) or
    /// reject the command.
    fn start_literal(&mut self, mut line: Vec<u8>, marker: Marker) -> Option<Input> {
        let first = self.pending.texts.first().unwrap_or(&line);
        let tag = tag_of(first);
        let budget = self.budget(first);
        let room = budget.saturating_sub(self.pending.announced);
        let accepted = marker
            .size
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= room);
        let Some(size) = accepted else {
            return Some(self.reject_literal(tag, &marker, room, budget));
        };
        self.pending.announced += size;
        line.truncate(marker.text_end);
        self.pending.push_text(line);
        self.pending
            .literals
            .push(Vec::with_capacity(size.min(LITERAL_PREALLOC)));
        self.pending.binary.push(marker.binary);
        self.state = State::Literal(size);
        marker.sync.then_some(Input::Continue)
    }

    /// Answers a literal over the budget: NO [TOOBIG] for a synchronizing one (the client
    /// waits for our go-ahead, so it will not send it). A non-synchronizing one is on its
    /// way: up to [`DISCARD_MAX`] octets it is read and dropped and the command answered
    /// BAD [TOOBIG] (RFC 7888 §4, and §5's BAD for LITERAL- clients); a larger one is
    /// answered BYE, as reading it would only feed a client that ignores our limits.
    fn reject_literal(
        &mut self,
        tag: Option<String>,
        marker: &Marker,
        room: usize,
        budget: usize,
    ) -> Input {
        self.pending = Pending::default();
        let message = match marker.size {
            Some(size) => format!("literal of {size} bytes is over the limit of {room}"),
            None => "literal size is out of range".to_owned(),
        };
        if marker.sync {
            return too_big(tag, message);
        }
        match marker.size.filter(|&n| n <= DISCARD_MAX) {
            Some(remaining) => {
                self.state = State::SkippingLiteral { remaining, budget };
                Input::Bad {
                    tag,
                    message: format!("[TOOBIG] {message}"),
                }
            }
            None => self.close(message),
        }
    }

    /// State Literal: moves buffered octets into the literal being collected.
    fn read_literal(&mut self, remaining: usize) -> Option<Input> {
        let take = remaining.min(self.raw().len());
        let chunk = self
            .buf
            .get(self.start..self.start + take)
            .unwrap_or_default();
        if let Some(literal) = self.pending.literals.last_mut() {
            let total = literal.len() + remaining;
            extend_bounded(literal, chunk, total);
        }
        self.consume(take);
        let left = remaining - take;
        if left == 0 {
            return None;
        }
        self.state = State::Literal(left);
        Some(Input::Incomplete)
    }

    /// State Skipping: drops bytes up to LF; a rejected command's line ending in `{n+}` also
    /// has its literal dropped so that we stay in step with the client.
    fn skip_line(&mut self, mut skip: Skip) -> Option<Input> {
        let Some(lf) = self.find_lf() else {
            skip.remember(self.raw());
            self.consume(self.raw().len());
            self.state = State::Skipping(skip);
            return Some(Input::Incomplete);
        };
        skip.remember(self.raw().get(..lf).unwrap_or_default());
        self.consume(lf + 1);
        let budget = skip.budget?;
        let tail = strip_cr(&skip.tail);
        match literal_marker(tail) {
            Some(marker) if !marker.sync => match marker.size.filter(|&n| n <= budget as u64) {
                Some(remaining) => {
                    self.state = State::SkippingLiteral { remaining, budget };
                    None
                }
                None => Some(self.close("literal of a rejected command is too big".to_owned())),
            },
            None if skip.truncated && is_cut_marker(tail) => {
                Some(self.close("literal of a rejected command is too big".to_owned()))
            }
            _ => None,
        }
    }

    /// State SkippingLiteral: drops a rejected literal's octets, then the rest of its line.
    fn skip_literal(&mut self, remaining: u64, budget: usize) -> Option<Input> {
        let available = self.raw().len();
        let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
        self.consume(take);
        let left = remaining - take as u64;
        if left == 0 {
            self.state = State::Skipping(Skip::new(Some(budget)));
            return None;
        }
        self.state = State::SkippingLiteral {
            remaining: left,
            budget,
        };
        Some(Input::Incomplete)
    }

    /// Gives up on the connection: frees everything and ignores further input.
    fn close(&mut self, message: String) -> Input {
        self.clear();
        self.state = State::Closed;
        Input::Fatal { message }
    }

    /// Parses the assembled command.
    fn finish_command(&mut self) -> Input {
        let pending = std::mem::take(&mut self.pending);
        parse_request(pending.texts, pending.literals, pending.binary)
    }
}

/// Appends to a literal, growing its buffer by doubling but never past its announced size.
fn extend_bounded(literal: &mut Vec<u8>, bytes: &[u8], total: usize) {
    let needed = literal.len() + bytes.len();
    if needed > literal.capacity() {
        let target = literal
            .capacity()
            .saturating_mul(2)
            .clamp(needed, total.max(needed));
        literal.reserve_exact(target - literal.len());
    }
    literal.extend_from_slice(bytes);
}

/// The line without the CR of its CRLF.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The literal marker (`{n}`, `{n+}`, `~{n}`) ending a line, if any.
fn literal_marker(line: &[u8]) -> Option<Marker> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let inner = body.get(open + 1..)?;
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let binary = open > 0 && line.get(open - 1) == Some(&b'~');
    Some(Marker {
        size: parse_u64(digits),
        sync,
        binary,
        text_end: if binary { open - 1 } else { open },
    })
}

/// True when a skipped line's kept tail is the end of a `{n+}` marker whose digits run past
/// it: the literal's size is unknown, so we cannot stay in step with the client.
fn is_cut_marker(tail: &[u8]) -> bool {
    tail.strip_suffix(b"+}")
        .is_some_and(|digits| digits.iter().all(u8::is_ascii_digit))
}

/// True when the line starts `tag APPEND`: APPEND's literal budget is the message size limit.
fn is_append(line: &[u8]) -> bool {
    let mut words = line.split(|&b| b == b' ');
    words.next();
    words
        .next()
        .is_some_and(|word| word.eq_ignore_ascii_case(b"APPEND"))
}

/// The tag at the start of a line, if there is a valid one followed by SP.
fn tag_of(line: &[u8]) -> Option<String> {
    let len = line.iter().take_while(|&&b| is_tag_char(b)).count();
    (len > 0 && line.get(len) == Some(&b' ')).then(|| ascii(line.get(..len).unwrap_or_default()))
}

/// TooBig when we have a tag to answer NO with, else an untagged BAD.
fn too_big(tag: Option<String>, message: String) -> Input {
    match tag {
        Some(tag) => Input::TooBig {
            tag: Some(tag),
            message,
        },
        None => Input::Bad { tag: None, message },
    }
}
