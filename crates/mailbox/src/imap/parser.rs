//! The IMAP command reader: turns the client's byte stream into [`Request`]s.
//!
//! It works in two layers. The framing layer ([`CommandReader`]) cuts the stream into
//! commands: it collects a command line up to its CRLF and, when the line ends in a literal
//! marker (`{n}` or LITERAL+'s `{n+}`), exactly n raw octets, then the rest of the command.
//! Every size is checked against [`Limits`] before anything is stored, so a hostile client
//! cannot make us allocate without bound. The grammar layer then parses one assembled
//! command (its lines, with the literals between them) into the typed tree of
//! [`super::command`]: keywords are case-insensitive, numbers are checked for overflow and
//! nesting is bounded, so no client input can make it panic or exhaust the stack.

use super::command::{
    Command, Date, FetchAttribute, Flag, ListCommand, Request, SearchKey, Section, SectionText,
    SeqNumber, SeqRange, SequenceSet, StatusItem, StoreOperation,
};

/// Deepest nesting of parenthesised lists and of SEARCH's NOT/OR we accept.
const MAX_DEPTH: usize = 32;
/// Bytes kept from the end of a line being skipped: enough to spot a literal marker there.
const SKIP_TAIL: usize = 64;
/// Most a literal's buffer reserves before its octets arrive, so announcing a large
/// literal and sending nothing costs us little.
const LITERAL_PREALLOC: usize = 64 * 1024;
/// Longest piece of client text quoted back in an error message.
const ECHO_MAX: usize = 40;
/// Month names as IMAP dates spell them.
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Limits that keep a hostile client from making us allocate without bound.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest command line text, literals excluded (e.g. 64 KiB).
    pub max_line: usize,
    /// Largest literal accepted in commands other than APPEND (e.g. 64 KiB). It bounds the
    /// sum of all literals of one command, so many small literals cannot add up either.
    pub max_literal: usize,
    /// Largest APPEND message literal (the server's message size limit); like
    /// `max_literal`, it bounds the sum of the literals of one APPEND command.
    pub max_append: usize,
}

/// What the reader has for the session after being fed bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A whole command.
    Request(Request),
    /// The client announced a synchronizing literal `{n}` we accept: the session must write
    /// a continuation (`+ ...`) and then keep feeding.
    Continue,
    /// Nothing complete yet: read more bytes.
    Incomplete,
    /// A malformed command: the session answers `<tag> BAD <message>` (or `* BAD` when the tag
    /// is None). The reader has already dropped that command's bytes.
    Bad {
        /// The command's tag, if one could be read.
        tag: Option<String>,
        /// What is wrong, fit for the BAD response text.
        message: String,
    },
    /// A synchronizing literal or a line over the limits: the session answers
    /// `<tag> NO [TOOBIG] <message>` (or BAD when no tag could be read). The client never got a
    /// continuation so it does not send the literal; the reader dropped the rest of the line.
    TooBig {
        /// The command's tag, if one could be read.
        tag: Option<String>,
        /// What is too big, fit for the NO response text.
        message: String,
    },
    /// A non-synchronizing literal `{n+}` over the limits: the bytes are already on their way, so
    /// the session must say `* BYE` and close the connection.
    Fatal {
        /// Why, fit for the BYE response text.
        message: String,
    },
}

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
    /// Literal8 (`~{n}`, RFC 3516), which we do not support.
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
        if marker.binary {
            return Some(self.reject_literal8(tag, &marker, budget));
        }
        let room = budget.saturating_sub(self.pending.announced);
        let accepted = marker
            .size
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= room);
        let Some(size) = accepted else {
            return Some(self.reject_literal(tag, &marker, room));
        };
        self.pending.announced += size;
        line.truncate(marker.text_end);
        self.pending.push_text(line);
        self.pending
            .literals
            .push(Vec::with_capacity(size.min(LITERAL_PREALLOC)));
        self.state = State::Literal(size);
        marker.sync.then_some(Input::Continue)
    }

    /// Answers a literal over the budget: NO for a synchronizing one (the client waits for
    /// our go-ahead, so it will not send it), BYE for a non-synchronizing one.
    fn reject_literal(&mut self, tag: Option<String>, marker: &Marker, room: usize) -> Input {
        self.pending = Pending::default();
        let message = match marker.size {
            Some(size) => format!("literal of {size} bytes is over the limit of {room}"),
            None => "literal size is out of range".to_owned(),
        };
        if marker.sync {
            too_big(tag, message)
        } else {
            self.close(message)
        }
    }

    /// Answers a literal8: BAD, dropping its octets if they are on their way.
    fn reject_literal8(&mut self, tag: Option<String>, marker: &Marker, budget: usize) -> Input {
        self.pending = Pending::default();
        let message = "literal8 (~{n}) is not supported".to_owned();
        if marker.sync {
            return Input::Bad { tag, message };
        }
        match marker.size.filter(|&n| n <= budget as u64) {
            Some(remaining) => {
                self.state = State::SkippingLiteral { remaining, budget };
                Input::Bad { tag, message }
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
        parse_request(pending.texts, pending.literals)
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

/// The value of a run of ASCII digits, None if it overflows.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

/// ATOM-CHAR of RFC 3501: printable ASCII except the atom-specials.
fn is_atom_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR: an atom char or `]`.
fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// A tag is made of ASTRING-CHARs other than `+`.
fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// list-char: an astring char or one of the wildcards.
fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// Bytes known to be ASCII as a String.
fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Client text cut short enough to quote in a response.
fn shorten(text: &str) -> String {
    if text.chars().count() <= ECHO_MAX {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(ECHO_MAX).collect();
    short.push_str("...");
    short
}

/// The result of parsing part of a command: the message explains what is wrong.
type Parsed<T> = Result<T, String>;

/// Parses one assembled command into a request, or the BAD it deserves.
fn parse_request(texts: Vec<Vec<u8>>, literals: Vec<Vec<u8>>) -> Input {
    let mut cursor = Cursor {
        texts,
        literals,
        seg: 0,
        pos: 0,
    };
    let tag = match cursor.tag() {
        Ok(tag) => tag,
        Err(message) => return Input::Bad { tag: None, message },
    };
    match cursor.command() {
        Ok(command) => Input::Request(Request { tag, command }),
        Err(message) => Input::Bad {
            tag: Some(tag),
            message,
        },
    }
}

/// A position in an assembled command: a byte of one of its lines, or the literal that
/// follows a line once that line is used up.
struct Cursor {
    /// The command's lines.
    texts: Vec<Vec<u8>>,
    /// The literals, `literals[i]` following `texts[i]`.
    literals: Vec<Vec<u8>>,
    /// The current line.
    seg: usize,
    /// The position in the current line.
    pos: usize,
}

/// Lexical steps.
impl Cursor {
    /// What is left of the current line.
    fn rest(&self) -> &[u8] {
        self.texts
            .get(self.seg)
            .and_then(|text| text.get(self.pos..))
            .unwrap_or_default()
    }

    /// The next byte of the current line.
    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes `byte` or fails saying what was expected.
    fn expect_byte(&mut self, byte: u8, what: &str) -> Parsed<()> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    /// Consumes the single space between arguments.
    fn sp(&mut self) -> Parsed<()> {
        self.expect_byte(b' ', "SP")
    }

    /// True when a literal comes next.
    fn at_literal(&self) -> bool {
        self.rest().is_empty() && self.seg < self.literals.len()
    }

    /// True when the whole command is used up.
    fn at_end(&self) -> bool {
        self.rest().is_empty() && self.seg >= self.literals.len()
    }

    /// Checks that nothing follows the command.
    fn end(&self) -> Parsed<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err("unexpected text after the command".to_owned())
        }
    }

    /// Takes the literal that comes next, moving on to the line after it.
    fn take_literal(&mut self) -> Option<Vec<u8>> {
        if !self.at_literal() {
            return None;
        }
        let literal = std::mem::take(self.literals.get_mut(self.seg)?);
        self.seg += 1;
        self.pos = 0;
        Some(literal)
    }

    /// Consumes the run of bytes `accept` allows, within the current line.
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &[u8] {
        let rest = self
            .texts
            .get(self.seg)
            .and_then(|text| text.get(self.pos..))
            .unwrap_or_default();
        let len = rest.iter().take_while(|&&b| accept(b)).count();
        self.pos += len;
        rest.get(..len).unwrap_or_default()
    }

    /// Consumes `keyword` (any case) if it comes next as a whole word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let rest = self.rest();
        let found = rest
            .get(..keyword.len())
            .is_some_and(|word| word.eq_ignore_ascii_case(keyword.as_bytes()))
            && !rest.get(keyword.len()).is_some_and(|&b| is_atom_char(b));
        if found {
            self.pos += keyword.len();
        }
        found
    }

    /// A non-empty run of the bytes `accept` allows.
    fn word(&mut self, accept: impl Fn(u8) -> bool, what: &str) -> Parsed<String> {
        let word = self.take_while(accept);
        if word.is_empty() {
            return Err(format!("expected {what}"));
        }
        Ok(ascii(word))
    }

    /// An atom.
    fn atom(&mut self, what: &str) -> Parsed<String> {
        self.word(is_atom_char, what)
    }

    /// An atom, upper-cased for matching keywords.
    fn keyword(&mut self, what: &str) -> Parsed<String> {
        Ok(self.atom(what)?.to_ascii_uppercase())
    }

    /// The command tag and the SP after it.
    fn tag(&mut self) -> Parsed<String> {
        let tag = self.word(is_tag_char, "a tag")?;
        self.expect_byte(b' ', "SP after the tag")?;
        Ok(tag)
    }

    /// A quoted string with `\"` and `\\` escapes.
    fn quoted(&mut self) -> Parsed<String> {
        self.expect_byte(b'"', "a quoted string")?;
        let mut bytes = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated quoted string".to_owned());
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(escaped @ (b'"' | b'\\')) => {
                        self.pos += 1;
                        bytes.push(escaped);
                    }
                    _ => return Err("invalid escape in quoted string".to_owned()),
                },
                0 | b'\r' | b'\n' => return Err("invalid character in quoted string".to_owned()),
                _ => bytes.push(b),
            }
        }
        String::from_utf8(bytes).map_err(|_| "quoted string is not UTF-8".to_owned())
    }

    /// A literal used as a string.
    fn literal_string(&mut self) -> Parsed<String> {
        let bytes = self
            .take_literal()
            .ok_or_else(|| "expected a literal".to_owned())?;
        if bytes.contains(&0) {
            return Err("NUL in a literal string".to_owned());
        }
        String::from_utf8(bytes).map_err(|_| "literal string is not UTF-8".to_owned())
    }

    /// A quoted string, a literal, or a run of the bytes `accept` allows.
    fn string_or(&mut self, accept: fn(u8) -> bool, what: &str) -> Parsed<String> {
        if self.peek() == Some(b'"') {
            self.quoted()
        } else if self.at_literal() {
            self.literal_string()
        } else {
            self.word(accept, what)
        }
    }

    /// An astring: atom (with `]`), quoted string or literal.
    fn astring(&mut self, what: &str) -> Parsed<String> {
        self.string_or(is_astring_char, what)
    }

    /// SP and then an astring.
    fn sp_astring(&mut self, what: &str) -> Parsed<String> {
        self.sp()?;
        self.astring(what)
    }

    /// NIL or an astring.
    fn nstring(&mut self, what: &str) -> Parsed<Option<String>> {
        if self.eat_keyword("NIL") {
            Ok(None)
        } else {
            self.astring(what).map(Some)
        }
    }

    /// A list-mailbox: like an astring, but `%` and `*` may appear unquoted.
    fn list_mailbox(&mut self) -> Parsed<String> {
        self.string_or(is_list_char, "a mailbox pattern")
    }

    /// A number up to u64.
    fn number(&mut self, what: &str) -> Parsed<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(format!("expected {what}"));
        }
        parse_u64(digits).ok_or_else(|| format!("number {} is too large", shorten(&ascii(digits))))
    }

    /// A number up to u32.
    fn number_u32(&mut self, what: &str) -> Parsed<u32> {
        let n = self.number(what)?;
        u32::try_from(n).map_err(|_| format!("number {n} is too large"))
    }

    /// A non-zero number up to u32.
    fn nz_number(&mut self, what: &str) -> Parsed<u32> {
        match self.number_u32(what)? {
            0 => Err(format!("expected {what}, not 0")),
            n => Ok(n),
        }
    }

    /// `(item SP item ...)`, possibly empty when `allow_empty`.
    fn paren_list<T>(
        &mut self,
        allow_empty: bool,
        mut item: impl FnMut(&mut Self) -> Parsed<T>,
    ) -> Parsed<Vec<T>> {
        self.expect_byte(b'(', "'('")?;
        let mut items = Vec::new();
        if allow_empty && self.eat(b')') {
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            if self.eat(b')') {
                return Ok(items);
            }
            self.expect_byte(b' ', "SP or ')'")?;
        }
    }

    /// Skips a parenthesised list we accept but ignore (SELECT parameters).
    fn skip_parenthesized(&mut self) -> Parsed<()> {
        self.expect_byte(b'(', "'('")?;
        let mut depth = 1;
        while depth > 0 {
            match self.peek() {
                Some(b'(') if depth >= MAX_DEPTH => {
                    return Err(format!("lists nested deeper than {MAX_DEPTH}"));
                }
                Some(b'(') => {
                    depth += 1;
                    self.pos += 1;
                }
                Some(b')') => {
                    depth -= 1;
                    self.pos += 1;
                }
                Some(b'"') => {
                    self.quoted()?;
                }
                Some(_) => self.pos += 1,
                None => {
                    if self.take_literal().is_none() {
                        return Err("unterminated parameter list".to_owned());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Shared arguments: sequence sets, flags, dates.
impl Cursor {
    /// A sequence set: `1`, `2:4`, `*`, `1,3:*`.
    fn sequence_set(&mut self) -> Parsed<SequenceSet> {
        let mut ranges = Vec::new();
        loop {
            let start = self.seq_number()?;
            let end = if self.eat(b':') {
                self.seq_number()?
            } else {
                start
            };
            ranges.push(SeqRange { start, end });
            if !self.eat(b',') {
                return Ok(SequenceSet(ranges));
            }
        }
    }

    /// A non-zero number or `*`.
    fn seq_number(&mut self) -> Parsed<SeqNumber> {
        if self.eat(b'*') {
            return Ok(SeqNumber::Last);
        }
        self.nz_number("a sequence number").map(SeqNumber::Value)
    }

    /// A flag: a system flag `\Seen` or a keyword atom.
    fn flag(&mut self) -> Parsed<Flag> {
        if !self.eat(b'\\') {
            return self.atom("a flag").map(Flag::Keyword);
        }
        let name = self.atom("a flag name after '\\'")?;
        match name.to_ascii_uppercase().as_str() {
            "SEEN" => Ok(Flag::Seen),
            "ANSWERED" => Ok(Flag::Answered),
            "FLAGGED" => Ok(Flag::Flagged),
            "DELETED" => Ok(Flag::Deleted),
            "DRAFT" => Ok(Flag::Draft),
            "RECENT" => Ok(Flag::Recent),
            _ => Err(format!("unknown system flag \\{}", shorten(&name))),
        }
    }

    /// `(flag flag ...)`, possibly empty.
    fn flag_list(&mut self) -> Parsed<Vec<Flag>> {
        self.paren_list(true, Self::flag)
    }

    /// A mailbox name after SP.
    fn mailbox_arg(&mut self) -> Parsed<String> {
        self.sp_astring("a mailbox name")
    }

    /// SP and a SEARCH date, bare or quoted.
    fn search_date(&mut self) -> Parsed<Date> {
        self.sp()?;
        let text = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.atom("a date")?
        };
        parse_search_date(&text)
    }

    /// A STATUS item name.
    fn status_item(&mut self) -> Parsed<StatusItem> {
        match self.keyword("a status item")?.as_str() {
            "MESSAGES" => Ok(StatusItem::Messages),
            "RECENT" => Ok(StatusItem::Recent),
            "UIDNEXT" => Ok(StatusItem::UidNext),
            "UIDVALIDITY" => Ok(StatusItem::UidValidity),
            "UNSEEN" => Ok(StatusItem::Unseen),
            "SIZE" => Ok(StatusItem::Size),
            "DELETED" => Ok(StatusItem::Deleted),
            other => Err(format!("unknown status item {}", shorten(other))),
        }
    }

    /// `(item item ...)` of STATUS.
    fn status_items(&mut self) -> Parsed<Vec<StatusItem>> {
        self.paren_list(false, Self::status_item)
    }
}

/// Commands.
impl Cursor {
    /// The command after the tag, checked to end where the input ends.
    fn command(&mut self) -> Parsed<Command> {
        let name = self.keyword("a command name")?;
        let command = match name.as_str() {
            "CAPABILITY" => Command::Capability,
            "NOOP" => Command::Noop,
            "LOGOUT" => Command::Logout,
            "STARTTLS" => Command::StartTls,
            "CHECK" => Command::Check,
            "CLOSE" => Command::Close,
            "UNSELECT" => Command::Unselect,
            "EXPUNGE" => Command::Expunge { uids: None },
            "IDLE" => Command::Idle,
            "NAMESPACE" => Command::Namespace,
            "ID" => self.id()?,
            "ENABLE" => self.enable()?,
            "LOGIN" => self.login()?,
            "AUTHENTICATE" => self.authenticate()?,
            "SELECT" => self.select(false)?,
            "EXAMINE" => self.select(true)?,
            "CREATE" => Command::Create(self.mailbox_arg()?),
            "DELETE" => Command::Delete(self.mailbox_arg()?),
            "SUBSCRIBE" => Command::Subscribe(self.mailbox_arg()?),
            "UNSUBSCRIBE" => Command::Unsubscribe(self.mailbox_arg()?),
            "RENAME" => self.rename()?,
            "LIST" => self.list()?,
            "LSUB" => self.lsub()?,
            "STATUS" => self.status()?,
            "APPEND" => self.append()?,
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" => self.copy(false)?,
            "MOVE" => self.move_(false)?,
            "SEARCH" => self.search(false)?,
            "UID" => self.uid()?,
            other => return Err(format!("unknown command {}", shorten(other))),
        };
        self.end()?;
        Ok(command)
    }

    /// UID FETCH, STORE, COPY, MOVE, SEARCH or EXPUNGE.
    fn uid(&mut self) -> Parsed<Command> {
        self.sp()?;
        match self.keyword("a command after UID")?.as_str() {
            "FETCH" => self.fetch(true),
            "STORE" => self.store(true),
            "COPY" => self.copy(true),
            "MOVE" => self.move_(true),
            "SEARCH" => self.search(true),
            "EXPUNGE" => {
                self.sp()?;
                let uids = self.sequence_set()?;
                Ok(Command::Expunge { uids: Some(uids) })
            }
            other => Err(format!("unknown UID command {}", shorten(other))),
        }
    }

    /// `ID NIL` or `ID (field value ...)`.
    fn id(&mut self) -> Parsed<Command> {
        self.sp()?;
        if self.eat_keyword("NIL") {
            return Ok(Command::Id(Vec::new()));
        }
        let pairs = self.paren_list(true, |c| {
            let field = c.astring("an ID field name")?;
            c.sp()?;
            Ok((field, c.nstring("an ID value")?))
        })?;
        Ok(Command::Id(pairs))
    }

    /// `ENABLE cap1 cap2 ...`
    fn enable(&mut self) -> Parsed<Command> {
        let mut capabilities = Vec::new();
        while self.eat(b' ') {
            capabilities.push(self.atom("a capability name")?);
        }
        if capabilities.is_empty() {
            return Err("expected SP and a capability name".to_owned());
        }
        Ok(Command::Enable(capabilities))
    }

    /// `LOGIN user password`
    fn login(&mut self) -> Parsed<Command> {
        let user = self.sp_astring("a user name")?;
        let password = self.sp_astring("a password")?;
        Ok(Command::Login { user, password })
    }

    /// `AUTHENTICATE mechanism [initial-response]`
    fn authenticate(&mut self) -> Parsed<Command> {
        self.sp()?;
        let mechanism = self.keyword("a SASL mechanism")?;
        let initial = if self.eat(b' ') {
            Some(self.atom("an initial response")?)
        } else {
            None
        };
        Ok(Command::Authenticate { mechanism, initial })
    }

    /// `SELECT mailbox [(params)]` or EXAMINE; the parameters are ignored.
    fn select(&mut self, read_only: bool) -> Parsed<Command> {
        let mailbox = self.mailbox_arg()?;
        if self.eat(b' ') {
            self.skip_parenthesized()?;
        }
        Ok(Command::Select { mailbox, read_only })
    }

    /// `RENAME from to`
    fn rename(&mut self) -> Parsed<Command> {
        let from = self.mailbox_arg()?;
        let to = self.mailbox_arg()?;
        Ok(Command::Rename { from, to })
    }

    /// `LIST [(selection)] reference pattern|(patterns) [RETURN (options)]`
    fn list(&mut self) -> Parsed<Command> {
        let mut list = ListCommand::default();
        self.sp()?;
        if self.peek() == Some(b'(') {
            self.paren_list(true, |c| c.selection_option(&mut list))?;
            self.sp()?;
        }
        list.reference = self.astring("a reference name")?;
        self.sp()?;
        list.patterns = if self.peek() == Some(b'(') {
            self.paren_list(false, Self::list_mailbox)?
        } else {
            vec![self.list_mailbox()?]
        };
        if self.eat(b' ') {
            if !self.eat_keyword("RETURN") {
                return Err("expected RETURN".to_owned());
            }
            self.sp()?;
            self.paren_list(true, |c| c.return_option(&mut list))?;
        }
        Ok(Command::List(list))
    }

    /// One LIST selection option (RFC 5258).
    fn selection_option(&mut self, list: &mut ListCommand) -> Parsed<()> {
        match self.keyword("a LIST selection option")?.as_str() {
            "SUBSCRIBED" => list.subscribed = true,
            "SPECIAL-USE" => list.special_use = true,
            "RECURSIVEMATCH" | "REMOTE" => {}
            other => return Err(format!("unknown LIST selection option {}", shorten(other))),
        }
        Ok(())
    }

    /// One LIST return option (RFC 5258, 5819, 6154).
    fn return_option(&mut self, list: &mut ListCommand) -> Parsed<()> {
        match self.keyword("a LIST return option")?.as_str() {
            "SUBSCRIBED" => list.return_subscribed = true,
            "CHILDREN" => list.return_children = true,
            "SPECIAL-USE" => list.return_special_use = true,
            "STATUS" => {
                self.sp()?;
                list.return_status = Some(self.status_items()?);
            }
            other => return Err(format!("unknown LIST return option {}", shorten(other))),
        }
        Ok(())
    }

    /// `LSUB reference pattern`
    fn lsub(&mut self) -> Parsed<Command> {
        let reference = self.sp_astring("a reference name")?;
        self.sp()?;
        let pattern = self.list_mailbox()?;
        Ok(Command::Lsub { reference, pattern })
    }

    /// `STATUS mailbox (items)`
    fn status(&mut self) -> Parsed<Command> {
        let mailbox = self.mailbox_arg()?;
        self.sp()?;
        let items = self.status_items()?;
        Ok(Command::Status { mailbox, items })
    }

    /// `APPEND mailbox [(flags)] ["date-time"] literal`, one message only.
    fn append(&mut self) -> Parsed<Command> {
        let mailbox = self.mailbox_arg()?;
        self.sp()?;
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(parse_date_time(&self.quoted()?)?);
            self.sp()?;
        }
        let message = self
            .take_literal()
            .ok_or_else(|| "expected the message as a literal".to_owned())?;
        if self.peek() == Some(b' ') {
            return Err("only one message per APPEND (no MULTIAPPEND)".to_owned());
        }
        Ok(Command::Append {
            mailbox,
            flags,
            date,
            message,
        })
    }

    /// `FETCH set ALL|FAST|FULL|item|(items)`
    fn fetch(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            self.paren_list(false, Self::fetch_att)?
        } else {
            self.fetch_macro_or_att()?
        };
        Ok(Command::Fetch { uid, set, items })
    }

    /// A single fetch item, or a macro expanded to its items.
    fn fetch_macro_or_att(&mut self) -> Parsed<Vec<FetchAttribute>> {
        use FetchAttribute as A;
        let name = self.fetch_name();
        Ok(match name.as_str() {
            "FAST" => vec![A::Flags, A::InternalDate, A::Rfc822Size],
            "ALL" => vec![A::Flags, A::InternalDate, A::Rfc822Size, A::Envelope],
            "FULL" => vec![
                A::Flags,
                A::InternalDate,
                A::Rfc822Size,
                A::Envelope,
                A::Body,
            ],
            _ => vec![self.fetch_named(&name)?],
        })
    }

    /// One fetch item.
    fn fetch_att(&mut self) -> Parsed<FetchAttribute> {
        let name = self.fetch_name();
        self.fetch_named(&name)
    }

    /// The name of a fetch item, upper-cased, up to its section if any.
    fn fetch_name(&mut self) -> String {
        ascii(self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.')).to_ascii_uppercase()
    }

    /// The fetch item called `name`, with its section and partial range.
    fn fetch_named(&mut self, name: &str) -> Parsed<FetchAttribute> {
        use FetchAttribute as A;
        Ok(match name {
            "FLAGS" => A::Flags,
            "UID" => A::Uid,
            "INTERNALDATE" => A::InternalDate,
            "RFC822.SIZE" => A::Rfc822Size,
            "ENVELOPE" => A::Envelope,
            "BODYSTRUCTURE" => A::BodyStructure,
            "RFC822" => A::Rfc822,
            "RFC822.HEADER" => A::Rfc822Header,
            "RFC822.TEXT" => A::Rfc822Text,
            "BODY" if self.peek() == Some(b'[') => self.body_section(false)?,
            "BODY" => A::Body,
            "BODY.PEEK" => self.body_section(true)?,
            "" => return Err("expected a fetch item".to_owned()),
            other => return Err(format!("unknown fetch item {}", shorten(other))),
        })
    }

    /// `[section]<origin.length>` after BODY or BODY.PEEK.
    fn body_section(&mut self, peek: bool) -> Parsed<FetchAttribute> {
        self.expect_byte(b'[', "'[' after BODY.PEEK")?;
        let section = self.section()?;
        self.expect_byte(b']', "']' after the section")?;
        let partial = if self.eat(b'<') {
            Some(self.partial()?)
        } else {
            None
        };
        Ok(FetchAttribute::BodySection {
            peek,
            section,
            partial,
        })
    }

    /// A section spec: part numbers, then HEADER, HEADER.FIELDS[.NOT] (...), TEXT or MIME.
    fn section(&mut self) -> Parsed<Section> {
        let mut section = Section::default();
        if self.peek() == Some(b']') {
            return Ok(section);
        }
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            loop {
                section.part.push(self.nz_number("a part number")?);
                if !self.eat(b'.') {
                    return Ok(section);
                }
                if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    break;
                }
            }
        }
        section.text = Some(self.section_text(!section.part.is_empty())?);
        Ok(section)
    }

    /// The text part of a section; MIME only `after_part`.
    fn section_text(&mut self, after_part: bool) -> Parsed<SectionText> {
        let name =
            ascii(self.take_while(|b| b.is_ascii_alphabetic() || b == b'.')).to_ascii_uppercase();
        match name.as_str() {
            "HEADER" => Ok(SectionText::Header),
            "TEXT" => Ok(SectionText::Text),
            "MIME" if after_part => Ok(SectionText::Mime),
            "MIME" => Err("MIME needs a part number".to_owned()),
            "HEADER.FIELDS" => self.header_fields(false),
            "HEADER.FIELDS.NOT" => self.header_fields(true),
            "" => Err("expected a section".to_owned()),
            other => Err(format!("unknown section {}", shorten(other))),
        }
    }

    /// ` (name name ...)` after HEADER.FIELDS, names upper-cased.
    fn header_fields(&mut self, not: bool) -> Parsed<SectionText> {
        self.sp()?;
        let fields = self.paren_list(false, |c| {
            Ok(c.astring("a header field name")?.to_ascii_uppercase())
        })?;
        Ok(SectionText::HeaderFields { not, fields })
    }

    /// `origin.length>` after `<`.
    fn partial(&mut self) -> Parsed<(u32, u32)> {
        let origin = self.number_u32("a partial origin")?;
        self.expect_byte(b'.', "'.' in the partial range")?;
        let length = self.nz_number("a partial length")?;
        self.expect_byte(b'>', "'>' after the partial range")?;
        Ok((origin, length))
    }

    /// `STORE set [+|-]FLAGS[.SILENT] (flags)|flags`
    fn store(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let item = self.word(
            |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'),
            "a STORE item",
        )?;
        let item = item.to_ascii_uppercase();
        let (operation, base) = if let Some(base) = item.strip_prefix('+') {
            (StoreOperation::Add, base)
        } else if let Some(base) = item.strip_prefix('-') {
            (StoreOperation::Remove, base)
        } else {
            (StoreOperation::Replace, item.as_str())
        };
        let silent = match base {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(format!("unknown STORE item {}", shorten(&item))),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            self.bare_flags()?
        };
        Ok(Command::Store {
            uid,
            set,
            operation,
            silent,
            flags,
        })
    }

    /// One or more flags separated by SP, without parentheses.
    fn bare_flags(&mut self) -> Parsed<Vec<Flag>> {
        let mut flags = vec![self.flag()?];
        while self.eat(b' ') {
            flags.push(self.flag()?);
        }
        Ok(flags)
    }

    /// `COPY set mailbox`
    fn copy(&mut self, uid: bool) -> Parsed<Command> {
        let (set, mailbox) = self.set_and_mailbox()?;
        Ok(Command::Copy { uid, set, mailbox })
    }

    /// `MOVE set mailbox`
    fn move_(&mut self, uid: bool) -> Parsed<Command> {
        let (set, mailbox) = self.set_and_mailbox()?;
        Ok(Command::Move { uid, set, mailbox })
    }

    /// The ` set mailbox` arguments of COPY and MOVE.
    fn set_and_mailbox(&mut self) -> Parsed<(SequenceSet, String)> {
        self.sp()?;
        let set = self.sequence_set()?;
        Ok((set, self.mailbox_arg()?))
    }

    /// `SEARCH [CHARSET name] key key ...`; the top level is always an `And` of its keys,
    /// even when there is only one, so the session has a single shape to evaluate.
    fn search(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        if self.eat_keyword("RETURN") {
            return Err("SEARCH RETURN (ESEARCH) is not supported".to_owned());
        }
        let mut charset = None;
        if self.eat_keyword("CHARSET") {
            charset = Some(self.sp_astring("a charset")?.to_ascii_uppercase());
            self.sp()?;
        }
        let mut keys = vec![self.search_key(1)?];
        while self.eat(b' ') {
            keys.push(self.search_key(1)?);
        }
        Ok(Command::Search {
            uid,
            charset,
            criteria: SearchKey::And(keys),
        })
    }

    /// One search key at nesting `depth`.
    fn search_key(&mut self, depth: usize) -> Parsed<SearchKey> {
        if depth > MAX_DEPTH {
            return Err(format!("search keys nested deeper than {MAX_DEPTH}"));
        }
        match self.peek() {
            Some(b'(') => Ok(SearchKey::And(
                self.paren_list(false, |c| c.search_key(depth + 1))?,
            )),
            Some(b'0'..=b'9' | b'*') => Ok(SearchKey::Sequence(self.sequence_set()?)),
            _ => {
                let name = self.keyword("a search key")?;
                self.search_named(&name, depth)
            }
        }
    }

    /// The search key called `name`, with its arguments.
    fn search_named(&mut self, name: &str, depth: usize) -> Parsed<SearchKey> {
        use SearchKey as K;
        Ok(match name {
            "ALL" => K::All,
            "NEW" => K::New,
            "OLD" => K::Old,
            "ANSWERED" => K::Flag(Flag::Answered),
            "DELETED" => K::Flag(Flag::Deleted),
            "DRAFT" => K::Flag(Flag::Draft),
            "FLAGGED" => K::Flag(Flag::Flagged),
            "SEEN" => K::Flag(Flag::Seen),
            "RECENT" => K::Flag(Flag::Recent),
            "UNANSWERED" => K::NotFlag(Flag::Answered),
            "UNDELETED" => K::NotFlag(Flag::Deleted),
            "UNDRAFT" => K::NotFlag(Flag::Draft),
            "UNFLAGGED" => K::NotFlag(Flag::Flagged),
            "UNSEEN" => K::NotFlag(Flag::Seen),
            "KEYWORD" => K::Flag(self.search_keyword()?),
            "UNKEYWORD" => K::NotFlag(self.search_keyword()?),
            "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => {
                K::Header(name.to_owned(), self.sp_astring("a search string")?)
            }
            "HEADER" => {
                let field = self.sp_astring("a header field name")?;
                K::Header(
                    field.to_ascii_uppercase(),
                    self.sp_astring("a search string")?,
                )
            }
            "BODY" => K::Body(self.sp_astring("a search string")?),
            "TEXT" => K::Text(self.sp_astring("a search string")?),
            "BEFORE" => K::Before(self.search_date()?),
            "ON" => K::On(self.search_date()?),
            "SINCE" => K::Since(self.search_date()?),
            "SENTBEFORE" => K::SentBefore(self.search_date()?),
            "SENTON" => K::SentOn(self.search_date()?),
            "SENTSINCE" => K::SentSince(self.search_date()?),
            "LARGER" => K::Larger(self.sp_number()?),
            "SMALLER" => K::Smaller(self.sp_number()?),
            "UID" => {
                self.sp()?;
                K::Uid(self.sequence_set()?)
            }
            "NOT" => {
                self.sp()?;
                K::Not(Box::new(self.search_key(depth + 1)?))
            }
            "OR" => {
                self.sp()?;
                let first = self.search_key(depth + 1)?;
                self.sp()?;
                let second = self.search_key(depth + 1)?;
                K::Or(Box::new(first), Box::new(second))
            }
            other => return Err(format!("unknown search key {}", shorten(other))),
        })
    }

    /// SP and the keyword of KEYWORD / UNKEYWORD.
    fn search_keyword(&mut self) -> Parsed<Flag> {
        self.sp()?;
        self.atom("a keyword").map(Flag::Keyword)
    }

    /// SP and the size of LARGER / SMALLER.
    fn sp_number(&mut self) -> Parsed<u64> {
        self.sp()?;
        self.number("a size")
    }
}

/// The number of a month name (`Jan` is 1), any case.
fn parse_month(name: &str) -> Option<u8> {
    let index = MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(name))?;
    u8::try_from(index + 1).ok()
}

/// A run of `min..=max` (at most 4) ASCII digits.
fn parse_digits(text: &str, min: usize, max: usize) -> Option<u16> {
    let valid = (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| text.parse().ok()).flatten()
}

/// Exactly two ASCII digits.
fn two_digits(text: &str) -> Option<u8> {
    u8::try_from(parse_digits(text, 2, 2)?).ok()
}

/// Days in a month of the Gregorian calendar.
fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A SEARCH date: `1-Feb-1994` or `01-Feb-1994`.
fn parse_search_date(text: &str) -> Parsed<Date> {
    let mut fields = text.split('-');
    let date = match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(day), Some(month), Some(year), None) => (
            parse_digits(day, 1, 2).and_then(|d| u8::try_from(d).ok()),
            parse_month(month),
            parse_digits(year, 4, 4),
        ),
        _ => (None, None, None),
    };
    match date {
        (Some(day @ 1..=31), Some(month), Some(year)) => Ok(Date { year, month, day }),
        _ => Err(format!("invalid date {}", shorten(text))),
    }
}

/// APPEND's date-time (`dd-Mon-yyyy hh:mm:ss +zzzz`, day possibly space-padded or a
/// single digit) as Unix seconds.
fn parse_date_time(text: &str) -> Parsed<i64> {
    date_time(text)
        .map(|date| date.to_timestamp())
        .ok_or_else(|| format!("invalid date-time \"{}\"", shorten(text)))
}

/// The fields of APPEND's date-time, validated so the timestamp arithmetic is sound.
fn date_time(text: &str) -> Option<mail_parser::DateTime> {
    let text = text.strip_prefix(' ').unwrap_or(text);
    let (day, rest) = text.split_once('-')?;
    let (month, rest) = rest.split_once('-')?;
    let (year, rest) = rest.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let day = u8::try_from(parse_digits(day, 1, 2)?).ok()?;
    let month = parse_month(month)?;
    let year = parse_digits(year, 4, 4)?;
    let mut clock = time.split(':');
    let hour = two_digits(clock.next()?)?;
    let minute = two_digits(clock.next()?)?;
    let second = two_digits(clock.next()?)?;
    let (sign, zone) = zone.split_at_checked(1)?;
    let tz_before_gmt = match sign {
        "+" => false,
        "-" => true,
        _ => return None,
    };
    let (tz_hour, tz_minute) = zone.split_at_checked(2)?;
    let (tz_hour, tz_minute) = (two_digits(tz_hour)?, two_digits(tz_minute)?);
    let valid = clock.next().is_none()
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60
        && tz_hour < 24
        && tz_minute < 60;
    valid.then_some(mail_parser::DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        tz_before_gmt,
        tz_hour,
        tz_minute,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: usize = 1024 * 1024;

    fn limits() -> Limits {
        Limits {
            max_line: 1024,
            max_literal: 4096,
            max_append: 2 * MIB,
        }
    }

    /// Every event the reader has, up to Incomplete.
    fn drain(reader: &mut CommandReader) -> Vec<Input> {
        let mut events = Vec::new();
        loop {
            match reader.next() {
                Input::Incomplete => return events,
                event => events.push(event),
            }
        }
    }

    fn events(input: &[u8]) -> Vec<Input> {
        let mut reader = CommandReader::new(limits());
        reader.feed(input);
        drain(&mut reader)
    }

    /// The command of `input` + CRLF, which must parse with tag `a`.
    fn command(input: &str) -> Command {
        let events: Vec<Input> = events(format!("{input}\r\n").as_bytes())
            .into_iter()
            .filter(|event| *event != Input::Continue)
            .collect();
        match events.as_slice() {
            [Input::Request(request)] if request.tag == "a" => request.command.clone(),
            other => panic!("{input:?} gave {other:?}"),
        }
    }

    /// The BAD message of `input` + CRLF, which must be tagged `a`.
    fn bad(input: &str) -> String {
        let events: Vec<Input> = events(format!("{input}\r\n").as_bytes())
            .into_iter()
            .filter(|event| *event != Input::Continue)
            .collect();
        match events.as_slice() {
            [Input::Bad { tag, message }] if tag.as_deref() == Some("a") => message.clone(),
            other => panic!("{input:?} gave {other:?}"),
        }
    }

    fn set(ranges: &[(u32, u32)]) -> SequenceSet {
        let number = |n| {
            if n == 0 {
                SeqNumber::Last
            } else {
                SeqNumber::Value(n)
            }
        };
        SequenceSet(
            ranges
                .iter()
                .map(|&(start, end)| SeqRange {
                    start: number(start),
                    end: number(end),
                })
                .collect(),
        )
    }

    fn fetch_items(input: &str) -> Vec<FetchAttribute> {
        match command(input) {
            Command::Fetch { items, .. } => items,
            other => panic!("{other:?}"),
        }
    }

    fn criteria(input: &str) -> Vec<SearchKey> {
        match command(input) {
            Command::Search {
                criteria: SearchKey::And(keys),
                ..
            } => keys,
            other => panic!("{other:?}"),
        }
    }

    fn one_key(input: &str) -> SearchKey {
        match criteria(input).as_slice() {
            [key] => key.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn date(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    fn section(part: &[u32], text: Option<SectionText>) -> Section {
        Section {
            part: part.to_vec(),
            text,
        }
    }

    fn body(peek: bool, section: Section, partial: Option<(u32, u32)>) -> FetchAttribute {
        FetchAttribute::BodySection {
            peek,
            section,
            partial,
        }
    }

    #[test]
    fn commands_without_arguments() {
        let cases = [
            ("CAPABILITY", Command::Capability),
            ("noop", Command::Noop),
            ("Logout", Command::Logout),
            ("STARTTLS", Command::StartTls),
            ("CHECK", Command::Check),
            ("CLOSE", Command::Close),
            ("UNSELECT", Command::Unselect),
            ("EXPUNGE", Command::Expunge { uids: None }),
            ("IDLE", Command::Idle),
            ("NAMESPACE", Command::Namespace),
        ];
        for (name, expected) in cases {
            assert_eq!(command(&format!("a {name}")), expected);
            assert_eq!(
                bad(&format!("a {name} extra")),
                "unexpected text after the command"
            );
        }
    }

    #[test]
    fn tags() {
        assert_eq!(
            events(b"A001.x] NOOP\r\n"),
            [Input::Request(Request {
                tag: "A001.x]".into(),
                command: Command::Noop
            })]
        );
        for line in ["+ NOOP", "a+b NOOP", " NOOP", "NOOP", "a(b NOOP"] {
            assert!(
                matches!(
                    events(format!("{line}\r\n").as_bytes()).as_slice(),
                    [Input::Bad { tag: None, .. }]
                ),
                "{line}"
            );
        }
        assert_eq!(
            events(b"a\r\n"),
            [Input::Bad {
                tag: None,
                message: "expected SP after the tag".into()
            }]
        );
    }

    #[test]
    fn unknown_command() {
        assert_eq!(bad("a FOO bar"), "unknown command FOO");
        assert_eq!(bad("a UID FOO 1"), "unknown UID command FOO");
        assert_eq!(bad("a  NOOP"), "expected a command name");
    }

    #[test]
    fn empty_lines_are_ignored() {
        assert_eq!(
            events(b"\r\n\n\r\na NOOP\r\n"),
            [Input::Request(Request {
                tag: "a".into(),
                command: Command::Noop
            })]
        );
    }

    #[test]
    fn bare_lf_ends_a_command() {
        assert_eq!(command("a NOOP\n"), Command::Noop);
    }

    #[test]
    fn id() {
        assert_eq!(command("a ID NIL"), Command::Id(vec![]));
        assert_eq!(command("a ID ()"), Command::Id(vec![]));
        assert_eq!(
            command(r#"a ID ("name" "x" "version" NIL)"#),
            Command::Id(vec![
                ("name".into(), Some("x".into())),
                ("version".into(), None)
            ])
        );
        assert_eq!(
            command(r#"a ID ("name" "NIL")"#),
            Command::Id(vec![("name".into(), Some("NIL".into()))])
        );
        bad(r#"a ID ("name")"#);
        bad("a ID");
    }

    #[test]
    fn enable() {
        assert_eq!(
            command("a ENABLE CONDSTORE UTF8=ACCEPT"),
            Command::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()])
        );
        bad("a ENABLE");
    }

    #[test]
    fn login() {
        let login = |user: &str, password: &str| Command::Login {
            user: user.into(),
            password: password.into(),
        };
        assert_eq!(command("a LOGIN joe secret"), login("joe", "secret"));
        assert_eq!(
            command(r#"a login "joe smith" "pa\"ss\\word""#),
            login("joe smith", r#"pa"ss\word"#)
        );
        assert_eq!(
            command("a LOGIN {3}\r\njoe {6}\r\nse\r\nct"),
            login("joe", "se\r\nct")
        );
        assert_eq!(command("a LOGIN {3+}\r\njoe \"\""), login("joe", ""));
        assert_eq!(
            command("a LOGIN \"\u{e9}t\u{e9}\" x"),
            login("\u{e9}t\u{e9}", "x")
        );
        bad("a LOGIN joe");
        bad(r#"a LOGIN "joe secret"#);
        bad(r#"a LOGIN "j\oe" secret"#);
        bad("a LOGIN {3}\r\nj\0e x");
        bad("a LOGIN {1}\r\n\u{ff} x");
        bad("a LOGIN joe{6}\r\nsecret");
    }

    #[test]
    fn authenticate() {
        assert_eq!(
            command("a AUTHENTICATE plain"),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: None
            }
        );
        assert_eq!(
            command("a AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ="),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGpvZQBzZWNyZXQ=".into())
            }
        );
        assert_eq!(
            command("a AUTHENTICATE EXTERNAL ="),
            Command::Authenticate {
                mechanism: "EXTERNAL".into(),
                initial: Some("=".into())
            }
        );
        bad("a AUTHENTICATE");
    }

    #[test]
    fn select_and_examine() {
        let select = |mailbox: &str, read_only| Command::Select {
            mailbox: mailbox.into(),
            read_only,
        };
        assert_eq!(command("a SELECT INBOX"), select("INBOX", false));
        assert_eq!(command("a EXAMINE inbox"), select("inbox", true));
        assert_eq!(
            command(r#"a SELECT "Sent Items""#),
            select("Sent Items", false)
        );
        assert_eq!(command("a SELECT {5}\r\nDraft"), select("Draft", false));
        assert_eq!(
            command("a SELECT INBOX (CONDSTORE)"),
            select("INBOX", false)
        );
        assert_eq!(
            command(
                r#"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 ("1:*" 1:2)))"#
            ),
            select("INBOX", false)
        );
        assert_eq!(
            command("a SELECT &AMk-t&AOk-"),
            select("&AMk-t&AOk-", false)
        );
        bad("a SELECT");
        bad("a SELECT INBOX (CONDSTORE");
        bad("a SELECT INBOX CONDSTORE");
        bad(&format!("a SELECT INBOX {}", "(".repeat(40)));
    }

    #[test]
    fn mailbox_commands() {
        assert_eq!(command("a CREATE foo"), Command::Create("foo".into()));
        assert_eq!(command(r#"a DELETE "a b""#), Command::Delete("a b".into()));
        assert_eq!(command("a SUBSCRIBE x"), Command::Subscribe("x".into()));
        assert_eq!(command("a UNSUBSCRIBE x"), Command::Unsubscribe("x".into()));
        assert_eq!(
            command("a RENAME old {3}\r\nnew"),
            Command::Rename {
                from: "old".into(),
                to: "new".into()
            }
        );
        assert_eq!(
            command(r#"a LSUB "" *"#),
            Command::Lsub {
                reference: "".into(),
                pattern: "*".into()
            }
        );
        bad("a CREATE");
        bad("a RENAME a");
        bad("a CREATE a%");
    }

    #[test]
    fn list() {
        let list = |reference: &str, patterns: &[&str]| ListCommand {
            reference: reference.into(),
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..ListCommand::default()
        };
        assert_eq!(command(r#"a LIST "" *"#), Command::List(list("", &["*"])));
        assert_eq!(command(r#"a LIST "" """#), Command::List(list("", &[""])));
        assert_eq!(
            command("a LIST ~/Mail/ %/x*"),
            Command::List(list("~/Mail/", &["%/x*"]))
        );
        assert_eq!(
            command(r#"a LIST "" (INBOX "Sent*" %)"#),
            Command::List(list("", &["INBOX", "Sent*", "%"]))
        );
        assert_eq!(
            command(
                r#"a LIST (SUBSCRIBED SPECIAL-USE RECURSIVEMATCH REMOTE) "" * RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))"#
            ),
            Command::List(ListCommand {
                subscribed: true,
                special_use: true,
                return_subscribed: true,
                return_children: true,
                return_special_use: true,
                return_status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                ..list("", &["*"])
            })
        );
        assert_eq!(
            command(r#"a list () "" % return ()"#),
            Command::List(list("", &["%"]))
        );
        assert!(bad("a LIST (FOO) \"\" *").contains("FOO"));
        assert!(bad("a LIST \"\" * RETURN (FOO)").contains("FOO"));
        bad("a LIST \"\" * (CHILDREN)");
        bad("a LIST \"\" ()");
        bad("a LIST \"\"");
    }

    #[test]
    fn status() {
        use StatusItem::*;
        assert_eq!(
            command("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED)"),
            Command::Status {
                mailbox: "INBOX".into(),
                items: vec![
                    Messages,
                    Recent,
                    UidNext,
                    UidValidity,
                    Unseen,
                    Size,
                    Deleted
                ]
            }
        );
        assert_eq!(
            bad("a STATUS INBOX (MESSAGES FOO)"),
            "unknown status item FOO"
        );
        bad("a STATUS INBOX ()");
        bad("a STATUS INBOX MESSAGES");
    }

    #[test]
    fn append() {
        assert_eq!(
            command(
                "a APPEND saved-messages (\\Seen $Forwarded) \"17-Jul-1996 02:44:25 -0700\" {5}\r\nHello"
            ),
            Command::Append {
                mailbox: "saved-messages".into(),
                flags: vec![Flag::Seen, Flag::Keyword("$Forwarded".into())],
                date: Some(837_596_665),
                message: b"Hello".to_vec(),
            }
        );
        assert_eq!(
            command("a APPEND INBOX {4+}\r\n\0\r\n\x01"),
            Command::Append {
                mailbox: "INBOX".into(),
                flags: vec![],
                date: None,
                message: b"\0\r\n\x01".to_vec(),
            }
        );
        assert_eq!(
            command("a APPEND {5}\r\nDraft () {0}\r\n"),
            Command::Append {
                mailbox: "Draft".into(),
                flags: vec![],
                date: None,
                message: vec![],
            }
        );
    }

    #[test]
    fn append_flags() {
        let flags = |input: &str| match command(&format!("a APPEND x ({input}) {{1}}\r\nm")) {
            Command::Append { flags, .. } => flags,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            flags("\\seen \\ANSWERED \\Flagged \\Deleted \\Draft \\Recent Junk"),
            vec![
                Flag::Seen,
                Flag::Answered,
                Flag::Flagged,
                Flag::Deleted,
                Flag::Draft,
                Flag::Recent,
                Flag::Keyword("Junk".into())
            ]
        );
        assert_eq!(
            bad("a APPEND x (\\Foo) {1}\r\nm"),
            "unknown system flag \\Foo"
        );
        bad("a APPEND x (\\*) {1}\r\nm");
    }

    #[test]
    fn append_dates() {
        let date = |input: &str| match command(&format!("a APPEND x \"{input}\" {{1}}\r\nm")) {
            Command::Append { date, .. } => date,
            other => panic!("{other:?}"),
        };
        let july_7 = Some(1_720_326_600);
        assert_eq!(date(" 7-Jul-2024 10:00:00 +0530"), july_7);
        assert_eq!(date("07-jul-2024 10:00:00 +0530"), july_7);
        assert_eq!(date("7-JUL-2024 10:00:00 +0530"), july_7);
        assert_eq!(date("01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(date("29-Feb-2024 00:00:00 +0000"), Some(1_709_164_800));
        for invalid in [
            "30-Feb-2024 00:00:00 +0000",
            "29-Feb-2023 00:00:00 +0000",
            "32-Jan-2024 00:00:00 +0000",
            "0-Jan-2024 00:00:00 +0000",
            "1-Foo-2024 00:00:00 +0000",
            "1-Jan-24 00:00:00 +0000",
            "1-Jan-2024 24:00:00 +0000",
            "1-Jan-2024 00:60:00 +0000",
            "1-Jan-2024 0:00:00 +0000",
            "1-Jan-2024 00:00:00 0000",
            "1-Jan-2024 00:00:00 +00000",
            "1-Jan-2024 00:00:00 +0060",
            "1-Jan-2024 00:00:00:00 +0000",
            "1-Jan-2024",
            "",
        ] {
            assert!(
                bad(&format!("a APPEND x \"{invalid}\" {{1}}\r\nm"))
                    .starts_with("invalid date-time"),
                "{invalid}"
            );
        }
    }

    #[test]
    fn append_errors() {
        assert_eq!(
            bad("a APPEND x (\\Seen) {1}\r\nm {1}\r\nn"),
            "only one message per APPEND (no MULTIAPPEND)"
        );
        assert_eq!(bad("a APPEND x hello"), "expected the message as a literal");
        assert_eq!(bad("a APPEND x \"hello\""), "invalid date-time \"hello\"");
        bad("a APPEND x");
        bad("a APPEND x {1}\r\nmjunk");
    }

    #[test]
    fn sequence_sets() {
        let fetch_set = |input: &str| match command(&format!("a FETCH {input} FLAGS")) {
            Command::Fetch { set, .. } => set,
            other => panic!("{other:?}"),
        };
        assert_eq!(fetch_set("1"), set(&[(1, 1)]));
        assert_eq!(fetch_set("1:5"), set(&[(1, 5)]));
        assert_eq!(fetch_set("5:1"), set(&[(5, 1)]));
        assert_eq!(fetch_set("*"), set(&[(0, 0)]));
        assert_eq!(fetch_set("1:*"), set(&[(1, 0)]));
        assert_eq!(fetch_set("1,3:4,7:*"), set(&[(1, 1), (3, 4), (7, 0)]));
        assert_eq!(fetch_set("4294967295"), set(&[(u32::MAX, u32::MAX)]));
        for invalid in ["0", "1:0", "1,", ",1", "1:", "a", "1;2", "-1"] {
            bad(&format!("a FETCH {invalid} FLAGS"));
        }
        assert_eq!(
            bad("a FETCH 99999999999 FLAGS"),
            "number 99999999999 is too large"
        );
        assert_eq!(
            bad("a FETCH 4294967296 FLAGS"),
            "number 4294967296 is too large"
        );
        assert!(bad(&format!("a FETCH 1:{} FLAGS", "9".repeat(500))).contains("too large"));
    }

    #[test]
    fn fetch_macros() {
        use FetchAttribute::*;
        assert_eq!(
            fetch_items("a FETCH 1 FAST"),
            vec![Flags, InternalDate, Rfc822Size]
        );
        assert_eq!(
            fetch_items("a FETCH 1 all"),
            vec![Flags, InternalDate, Rfc822Size, Envelope]
        );
        assert_eq!(
            fetch_items("a FETCH 1 Full"),
            vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
        );
        bad("a FETCH 1 (ALL)");
        bad("a FETCH 1 (FLAGS FAST)");
    }

    #[test]
    fn fetch_items_simple() {
        use FetchAttribute::*;
        assert_eq!(
            fetch_items(
                "a FETCH 1:* (FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER RFC822.TEXT)"
            ),
            vec![
                Flags,
                Uid,
                InternalDate,
                Rfc822Size,
                Envelope,
                Body,
                BodyStructure,
                Rfc822,
                Rfc822Header,
                Rfc822Text
            ]
        );
        assert_eq!(fetch_items("a fetch 2 uid"), vec![Uid]);
        assert_eq!(
            command("a UID FETCH 1:5 (FLAGS)"),
            Command::Fetch {
                uid: true,
                set: set(&[(1, 5)]),
                items: vec![Flags]
            }
        );
    }

    #[test]
    fn fetch_sections() {
        use SectionText::*;
        assert_eq!(
            fetch_items("a FETCH 1 BODY[]"),
            vec![body(false, section(&[], None), None)]
        );
        assert_eq!(
            fetch_items(
                "a FETCH 1 (BODY.PEEK[HEADER] BODY[TEXT] body[1.2] BODY[1.2.MIME] BODY[1.HEADER] BODY[3.TEXT])"
            ),
            vec![
                body(true, section(&[], Some(Header)), None),
                body(false, section(&[], Some(Text)), None),
                body(false, section(&[1, 2], None), None),
                body(false, section(&[1, 2], Some(Mime)), None),
                body(false, section(&[1], Some(Header)), None),
                body(false, section(&[3], Some(Text)), None),
            ]
        );
        assert_eq!(
            fetch_items(
                "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To \"Message-ID\")] BODY[2.header.fields.not (X-A)])"
            ),
            vec![
                body(
                    true,
                    section(
                        &[],
                        Some(HeaderFields {
                            not: false,
                            fields: vec!["FROM".into(), "TO".into(), "MESSAGE-ID".into()]
                        })
                    ),
                    None
                ),
                body(
                    false,
                    section(
                        &[2],
                        Some(HeaderFields {
                            not: true,
                            fields: vec!["X-A".into()]
                        })
                    ),
                    None
                ),
            ]
        );
        assert_eq!(
            fetch_items("a FETCH 1 BODY[]<0.100>"),
            vec![body(false, section(&[], None), Some((0, 100)))]
        );
        assert_eq!(
            fetch_items("a FETCH 1 (BODY.PEEK[1]<4294967295.4294967295> FLAGS)"),
            vec![
                body(true, section(&[1], None), Some((u32::MAX, u32::MAX))),
                FetchAttribute::Flags
            ]
        );
    }

    #[test]
    fn fetch_errors() {
        assert_eq!(bad("a FETCH 1 BODY[MIME]"), "MIME needs a part number");
        assert_eq!(bad("a FETCH 1 FOO"), "unknown fetch item FOO");
        for invalid in [
            "a FETCH 1 BODY.PEEK",
            "a FETCH 1 BODY[",
            "a FETCH 1 BODY[0]",
            "a FETCH 1 BODY[1.]",
            "a FETCH 1 BODY[FOO]",
            "a FETCH 1 BODY[HEADER.FIELDS]",
            "a FETCH 1 BODY[HEADER.FIELDS ()]",
            "a FETCH 1 BODY[]<0>",
            "a FETCH 1 BODY[]<0.0>",
            "a FETCH 1 BODY[]<4294967296.1>",
            "a FETCH 1 BODY[]<1.99999999999999999999999>",
            "a FETCH 1 ()",
            "a FETCH 1 (FLAGS",
            "a FETCH 1 (FLAGS) (CHANGEDSINCE 1)",
            "a FETCH 1",
            "a FETCH FLAGS",
            "a FETCH 1 BINARY[1]",
        ] {
            bad(invalid);
        }
    }

    #[test]
    fn store() {
        let store = |operation, silent, flags: Vec<Flag>| Command::Store {
            uid: false,
            set: set(&[(1, 3)]),
            operation,
            silent,
            flags,
        };
        assert_eq!(
            command("a STORE 1:3 FLAGS (\\Seen $Junk)"),
            store(
                StoreOperation::Replace,
                false,
                vec![Flag::Seen, Flag::Keyword("$Junk".into())]
            )
        );
        assert_eq!(
            command("a STORE 1:3 +flags.silent (\\Deleted)"),
            store(StoreOperation::Add, true, vec![Flag::Deleted])
        );
        assert_eq!(
            command("a STORE 1:3 -FLAGS \\Seen \\Flagged"),
            store(
                StoreOperation::Remove,
                false,
                vec![Flag::Seen, Flag::Flagged]
            )
        );
        assert_eq!(
            command("a STORE 1:3 FLAGS.SILENT ()"),
            store(StoreOperation::Replace, true, vec![])
        );
        assert_eq!(
            command("a UID STORE 1:3 +FLAGS \\Seen"),
            Command::Store {
                uid: true,
                set: set(&[(1, 3)]),
                operation: StoreOperation::Add,
                silent: false,
                flags: vec![Flag::Seen]
            }
        );
        assert_eq!(bad("a STORE 1 +FLAGZ \\Seen"), "unknown STORE item +FLAGZ");
        bad("a STORE 1 FLAGS");
        bad("a STORE 1 FLAGS \\Bogus");
        bad("a STORE 1 (UNCHANGEDSINCE 5) FLAGS \\Seen");
        bad("a STORE 1 FLAGS (\\Seen");
    }

    #[test]
    fn copy_move_expunge() {
        assert_eq!(
            command("a COPY 2:4 MEETING"),
            Command::Copy {
                uid: false,
                set: set(&[(2, 4)]),
                mailbox: "MEETING".into()
            }
        );
        assert_eq!(
            command("a UID MOVE 1,* \"Deleted Items\""),
            Command::Move {
                uid: true,
                set: set(&[(1, 1), (0, 0)]),
                mailbox: "Deleted Items".into()
            }
        );
        assert_eq!(
            command("a move 1 Trash"),
            Command::Move {
                uid: false,
                set: set(&[(1, 1)]),
                mailbox: "Trash".into()
            }
        );
        assert_eq!(
            command("a UID COPY 7 x"),
            Command::Copy {
                uid: true,
                set: set(&[(7, 7)]),
                mailbox: "x".into()
            }
        );
        assert_eq!(
            command("a UID EXPUNGE 3000:3002"),
            Command::Expunge {
                uids: Some(set(&[(3000, 3002)]))
            }
        );
        bad("a UID EXPUNGE");
        bad("a COPY 1");
    }

    #[test]
    fn search_simple_keys() {
        use SearchKey as K;
        let cases = [
            ("ALL", K::All),
            ("answered", K::Flag(Flag::Answered)),
            ("DELETED", K::Flag(Flag::Deleted)),
            ("DRAFT", K::Flag(Flag::Draft)),
            ("FLAGGED", K::Flag(Flag::Flagged)),
            ("SEEN", K::Flag(Flag::Seen)),
            ("RECENT", K::Flag(Flag::Recent)),
            ("NEW", K::New),
            ("OLD", K::Old),
            ("UNANSWERED", K::NotFlag(Flag::Answered)),
            ("UNDELETED", K::NotFlag(Flag::Deleted)),
            ("UNDRAFT", K::NotFlag(Flag::Draft)),
            ("UNFLAGGED", K::NotFlag(Flag::Flagged)),
            ("UNSEEN", K::NotFlag(Flag::Seen)),
            ("KEYWORD $Junk", K::Flag(Flag::Keyword("$Junk".into()))),
            ("UNKEYWORD foo", K::NotFlag(Flag::Keyword("foo".into()))),
            ("FROM joe", K::Header("FROM".into(), "joe".into())),
            ("to \"a b\"", K::Header("TO".into(), "a b".into())),
            ("CC x", K::Header("CC".into(), "x".into())),
            ("BCC x", K::Header("BCC".into(), "x".into())),
            (
                "SUBJECT {4}\r\nmeet",
                K::Header("SUBJECT".into(), "meet".into()),
            ),
            ("HEADER x-spam \"\"", K::Header("X-SPAM".into(), "".into())),
            ("BODY hello", K::Body("hello".into())),
            ("TEXT \"hi there\"", K::Text("hi there".into())),
            ("BEFORE 1-Feb-1994", K::Before(date(1994, 2, 1))),
            ("ON 01-feb-1994", K::On(date(1994, 2, 1))),
            ("SINCE \"31-Dec-2023\"", K::Since(date(2023, 12, 31))),
            ("SENTBEFORE 1-Jan-2000", K::SentBefore(date(2000, 1, 1))),
            ("SENTON 15-Jun-2010", K::SentOn(date(2010, 6, 15))),
            ("SENTSINCE 9-Sep-1999", K::SentSince(date(1999, 9, 9))),
            ("LARGER 10000", K::Larger(10000)),
            ("SMALLER 18446744073709551615", K::Smaller(u64::MAX)),
            ("UID 1:*", K::Uid(set(&[(1, 0)]))),
            ("2,4:7", K::Sequence(set(&[(2, 2), (4, 7)]))),
            ("*", K::Sequence(set(&[(0, 0)]))),
            ("NOT SEEN", K::Not(Box::new(K::Flag(Flag::Seen)))),
            (
                "OR SEEN FROM x",
                K::Or(
                    Box::new(K::Flag(Flag::Seen)),
                    Box::new(K::Header("FROM".into(), "x".into())),
                ),
            ),
            (
                "(SEEN 1:2)",
                K::And(vec![K::Flag(Flag::Seen), K::Sequence(set(&[(1, 2)]))]),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(one_key(&format!("a SEARCH {input}")), expected, "{input}");
        }
    }

    #[test]
    fn search_combinations() {
        use SearchKey as K;
        assert_eq!(
            command("a UID SEARCH CHARSET utf-8 UNSEEN (OR FROM a NOT TO b) SINCE 1-Jan-2024"),
            Command::Search {
                uid: true,
                charset: Some("UTF-8".into()),
                criteria: K::And(vec![
                    K::NotFlag(Flag::Seen),
                    K::And(vec![K::Or(
                        Box::new(K::Header("FROM".into(), "a".into())),
                        Box::new(K::Not(Box::new(K::Header("TO".into(), "b".into()))))
                    )]),
                    K::Since(date(2024, 1, 1)),
                ])
            }
        );
        assert_eq!(
            command("a SEARCH ALL"),
            Command::Search {
                uid: false,
                charset: None,
                criteria: K::And(vec![K::All])
            }
        );
    }

    #[test]
    fn search_errors() {
        assert_eq!(bad("a SEARCH FOO"), "unknown search key FOO");
        assert_eq!(
            bad("a SEARCH RETURN (MIN) ALL"),
            "SEARCH RETURN (ESEARCH) is not supported"
        );
        for invalid in [
            "a SEARCH",
            "a SEARCH ",
            "a SEARCH ALL ",
            "a SEARCH CHARSET UTF-8",
            "a SEARCH ()",
            "a SEARCH (ALL",
            "a SEARCH OR ALL",
            "a SEARCH NOT",
            "a SEARCH 0",
            "a SEARCH KEYWORD \\Seen",
            "a SEARCH HEADER From",
            "a SEARCH ON 32-Jan-2000",
            "a SEARCH ON 0-Jan-2000",
            "a SEARCH ON 1-Foo-2000",
            "a SEARCH ON 1-Jan-20",
            "a SEARCH ON 1-Jan-2000-1",
            "a SEARCH ON 123-Jan-2000",
            "a SEARCH LARGER 18446744073709551616",
            "a SEARCH LARGER x",
            "a SEARCH $",
        ] {
            bad(invalid);
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested =
            |depth: usize| format!("a SEARCH {}ALL{}", "(".repeat(depth), ")".repeat(depth));
        assert!(matches!(command(&nested(10)), Command::Search { .. }));
        assert_eq!(bad(&nested(40)), "search keys nested deeper than 32");
        assert_eq!(
            bad(&format!("a SEARCH {}ALL", "NOT ".repeat(200))),
            "search keys nested deeper than 32"
        );
        assert_eq!(
            bad(&format!("a SEARCH {}ALL", "OR ALL ".repeat(100))),
            "search keys nested deeper than 32"
        );
    }

    #[test]
    fn literal_across_feeds() {
        let input = b"a LOGIN {5}\r\nhe\r\no {3+}\r\nx y\r\n";
        let expected = Command::Login {
            user: "he\r\no".into(),
            password: "x y".into(),
        };
        for chunk in [1, 2, 3, 7, 13] {
            let mut reader = CommandReader::new(limits());
            let mut events = Vec::new();
            for piece in input.chunks(chunk) {
                reader.feed(piece);
                events.extend(drain(&mut reader));
            }
            assert_eq!(
                events,
                [
                    Input::Continue,
                    Input::Request(Request {
                        tag: "a".into(),
                        command: expected.clone()
                    })
                ],
                "chunks of {chunk}"
            );
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn pipelined_commands() {
        let events = events(b"a NOOP\r\nb LOGIN {1+}\r\nx y\r\nc CAPABILITY\r\nd LOGOUT\r\ne NO");
        let tags: Vec<&str> = events
            .iter()
            .map(|event| match event {
                Input::Request(request) => request.tag.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tags, ["a", "b", "c", "d"]);
    }

    #[test]
    fn sync_literal_continues_before_its_data() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a CREATE {4}\r\n");
        assert_eq!(reader.next(), Input::Continue);
        assert_eq!(reader.next(), Input::Incomplete);
        reader.feed(b"Test\r\n");
        assert_eq!(
            reader.next(),
            Input::Request(Request {
                tag: "a".into(),
                command: Command::Create("Test".into())
            })
        );
        assert_eq!(reader.next(), Input::Incomplete);
    }

    #[test]
    fn non_sync_literal_does_not_continue() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a CREATE {4+}\r\n");
        assert_eq!(reader.next(), Input::Incomplete);
        reader.feed(b"Test\r\n");
        assert!(matches!(reader.next(), Input::Request(_)));
    }

    #[test]
    fn zero_length_literal() {
        assert_eq!(command("a CREATE {0}\r\n"), Command::Create(String::new()));
    }

    #[test]
    fn append_size_limits() {
        let message = vec![b'x'; MIB];
        let mut reader = CommandReader::new(limits());
        reader.feed(format!("a APPEND INBOX {{{}}}\r\n", message.len()).as_bytes());
        assert_eq!(reader.next(), Input::Continue);
        for chunk in message.chunks(4096) {
            reader.feed(chunk);
            assert_eq!(reader.next(), Input::Incomplete);
        }
        reader.feed(b"\r\n");
        match reader.next() {
            Input::Request(Request {
                command: Command::Append { message: got, .. },
                ..
            }) => assert_eq!(got, message),
            other => panic!("{other:?}"),
        }

        let mut reader = CommandReader::new(limits());
        reader.feed(format!("a append INBOX {{{}}}\r\n", 3 * MIB).as_bytes());
        assert_eq!(
            reader.next(),
            Input::TooBig {
                tag: Some("a".into()),
                message: "literal of 3145728 bytes is over the limit of 2097152".into()
            }
        );
        assert_eq!(reader.buffered(), 0);
        reader.feed(b"b NOOP\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));

        let mut reader = CommandReader::new(limits());
        reader.feed(format!("a APPEND INBOX {{{}+}}\r\n", 3 * MIB).as_bytes());
        assert!(matches!(reader.next(), Input::Fatal { .. }));
        reader.feed(&vec![b'x'; 64 * 1024]);
        assert_eq!(reader.next(), Input::Incomplete);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn new_limits_apply_from_the_next_command() {
        let small = Limits {
            max_line: 64,
            max_literal: 16,
            max_append: 16,
        };
        let mut reader = CommandReader::new(small);
        reader.feed(b"a LOGIN u p\r\nb APPEND INBOX {1000+}\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "a"));
        reader.set_limits(limits());
        assert_eq!(reader.next(), Input::Incomplete);
        reader.feed(&[b'x'; 1000]);
        reader.feed(b"\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));

        let mut reader = CommandReader::new(small);
        reader.feed(b"a APPEND INBOX {17}\r\n");
        assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "a"));
        reader.feed(format!("b LOGIN {}\r\n", "x".repeat(64)).as_bytes());
        assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "b"));
        reader.feed(b"c APPEND INBOX {17+}\r\n");
        assert!(matches!(reader.next(), Input::Fatal { .. }));
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn other_literals_use_max_literal() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a LOGIN {4097}\r\n");
        assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "a"));
        reader.feed(b"a LOGIN {4096}\r\n");
        assert_eq!(reader.next(), Input::Continue);
    }

    #[test]
    fn literals_of_one_command_share_the_budget() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a LOGIN {3000+}\r\n");
        reader.feed(&[b'x'; 3000]);
        assert_eq!(reader.next(), Input::Incomplete);
        reader.feed(b" {3000}\r\n");
        assert_eq!(
            reader.next(),
            Input::TooBig {
                tag: Some("a".into()),
                message: "literal of 3000 bytes is over the limit of 1096".into()
            }
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn huge_literal_sizes() {
        assert_eq!(
            events(b"a LOGIN {99999999999999999999999}\r\n"),
            [Input::TooBig {
                tag: Some("a".into()),
                message: "literal size is out of range".into()
            }]
        );
        assert!(matches!(
            events(b"a LOGIN {99999999999999999999999+}\r\n").as_slice(),
            [Input::Fatal { .. }]
        ));
        assert!(matches!(
            events(b"{99999999999}\r\n").as_slice(),
            [Input::Bad { tag: None, .. }]
        ));
    }

    #[test]
    fn literal8_is_rejected() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a APPEND x ~{5}\r\nb NOOP\r\n");
        assert_eq!(
            reader.next(),
            Input::Bad {
                tag: Some("a".into()),
                message: "literal8 (~{n}) is not supported".into()
            }
        );
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));

        let mut reader = CommandReader::new(limits());
        reader.feed(b"a APPEND x ~{5+}\r\nb NOO");
        assert!(matches!(reader.next(), Input::Bad { tag: Some(t), .. } if t == "a"));
        reader.feed(b"P\r\nc NOOP\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "c"));
        assert_eq!(reader.next(), Input::Incomplete);
    }

    #[test]
    fn over_long_line_is_rejected_then_skipped() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a SEARCH ");
        reader.feed(&[b'x'; 1100]);
        assert_eq!(
            reader.next(),
            Input::TooBig {
                tag: Some("a".into()),
                message: "command line longer than 1024 bytes".into()
            }
        );
        assert_eq!(reader.buffered(), 0);
        reader.feed(&[b'y'; 5000]);
        assert_eq!(reader.next(), Input::Incomplete);
        assert_eq!(reader.buffered(), 0);
        reader.feed(b"yyy\r\nb NOOP\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));
        assert_eq!(reader.next(), Input::Incomplete);
    }

    #[test]
    fn over_long_line_without_tag_is_bad() {
        let mut input = vec![b'x'; 2000];
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        let events = events(&input);
        assert!(
            matches!(&events[0], Input::Bad { tag: None, .. }),
            "{events:?}"
        );
        assert!(matches!(&events[1], Input::Request(r) if r.tag == "b"));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn over_long_line_whole_in_buffer() {
        let mut input = b"t1 FETCH ".to_vec();
        input.extend(std::iter::repeat_n(b'1', 1100));
        input.extend_from_slice(b" FLAGS\r\nb NOOP\r\n");
        let events = events(&input);
        assert!(matches!(&events[0], Input::TooBig { tag: Some(t), .. } if t == "t1"));
        assert!(matches!(&events[1], Input::Request(r) if r.tag == "b"));
    }

    #[test]
    fn over_long_line_after_a_literal() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a LOGIN {3+}\r\nabc ");
        reader.feed(&[b'p'; 1100]);
        assert!(matches!(reader.next(), Input::TooBig { tag: Some(t), .. } if t == "a"));
        reader.feed(b"\r\nb NOOP\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));
    }

    #[test]
    fn skipped_line_with_non_sync_literal_stays_in_step() {
        let mut input = b"a LOGIN ".to_vec();
        input.extend(std::iter::repeat_n(b'u', 1100));
        input.extend_from_slice(b" {10+}\r\nb NOOP\r\n\r\n ccc\r\nd NOOP\r\n");
        let got = events(&input);
        assert!(matches!(&got[0], Input::TooBig { tag: Some(t), .. } if t == "a"));
        assert!(
            matches!(&got[1], Input::Request(r) if r.tag == "d"),
            "{got:?}"
        );
        assert_eq!(got.len(), 2);

        let mut input = b"a LOGIN ".to_vec();
        input.extend(std::iter::repeat_n(b'u', 1100));
        input.extend_from_slice(b" {5000+}\r\n");
        assert!(matches!(
            events(&input).as_slice(),
            [Input::TooBig { .. }, Input::Fatal { .. }]
        ));
    }

    #[test]
    fn skipped_line_with_sync_literal_ends_the_command() {
        let mut input = b"a LOGIN ".to_vec();
        input.extend(std::iter::repeat_n(b'u', 1100));
        input.extend_from_slice(b" {10}\r\nb NOOP\r\n");
        let events = events(&input);
        assert!(matches!(&events[0], Input::TooBig { tag: Some(t), .. } if t == "a"));
        assert!(matches!(&events[1], Input::Request(r) if r.tag == "b"));
    }

    #[test]
    fn next_line_for_idle_and_authenticate() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a IDLE\r\nDO");
        assert!(matches!(reader.next(), Input::Request(r) if r.command == Command::Idle));
        assert_eq!(reader.next_line(), None);
        reader.feed(b"NE\r\nAGpvZQ==\nb NOOP\r\n");
        assert_eq!(reader.next_line(), Some(Ok("DONE".into())));
        assert_eq!(reader.next_line(), Some(Ok("AGpvZQ==".into())));
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "b"));
        reader.feed(b"\r\n");
        assert_eq!(reader.next_line(), Some(Ok(String::new())));
    }

    #[test]
    fn next_line_too_long() {
        let mut reader = CommandReader::new(limits());
        let mut long = vec![b'x'; 1500];
        long.extend_from_slice(b"\r\nDONE\r\n");
        reader.feed(&long);
        assert_eq!(reader.next_line(), Some(Err(())));
        assert_eq!(reader.next_line(), Some(Ok("DONE".into())));

        let mut reader = CommandReader::new(limits());
        reader.feed(&[b'x'; 1500]);
        assert_eq!(reader.next_line(), Some(Err(())));
        assert_eq!(reader.buffered(), 0);
        reader.feed(&[b'x'; 1500]);
        assert_eq!(reader.next_line(), None);
        assert_eq!(reader.buffered(), 0);
        reader.feed(b"x\r\nDONE\r\n");
        assert_eq!(reader.next_line(), Some(Ok("DONE".into())));
    }

    #[test]
    fn starttls_sees_and_clears_injected_plaintext() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a STARTTLS\r\nb LOGIN joe secret\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.command == Command::StartTls));
        assert_eq!(reader.buffered(), "b LOGIN joe secret\r\n".len());
        reader.clear();
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.next(), Input::Incomplete);
        reader.feed(b"c NOOP\r\n");
        assert!(matches!(reader.next(), Input::Request(r) if r.tag == "c"));
    }

    #[test]
    fn buffered_counts_a_partial_command() {
        let mut reader = CommandReader::new(limits());
        reader.feed(b"a LOGIN {5+}\r\nab");
        assert_eq!(reader.next(), Input::Incomplete);
        assert_eq!(reader.buffered(), "a LOGIN ".len() + 2);
    }

    // Generators and renderers for the round-trip properties.

    fn seq_number() -> impl Strategy<Value = SeqNumber> {
        prop_oneof![
            Just(SeqNumber::Last),
            (1..=u32::MAX).prop_map(SeqNumber::Value),
            (1..20u32).prop_map(SeqNumber::Value),
        ]
    }

    fn sequence_set() -> impl Strategy<Value = SequenceSet> {
        let range = prop_oneof![
            seq_number().prop_map(|n| SeqRange { start: n, end: n }),
            (seq_number(), seq_number()).prop_map(|(start, end)| SeqRange { start, end }),
        ];
        prop::collection::vec(range, 1..4).prop_map(SequenceSet)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[ -~]{0,12}", "[a-zA-Z0-9]{1,8}", "\\PC{0,6}"]
    }

    fn keyword() -> impl Strategy<Value = String> {
        "[A-Za-z$][A-Za-z0-9_$.-]{0,8}"
    }

    fn header_name() -> impl Strategy<Value = String> {
        "[A-Z][A-Z0-9-]{0,10}"
    }

    fn search_date() -> impl Strategy<Value = Date> {
        (1970..=2100u16, 1..=12u8, 1..=31u8).prop_map(|(year, month, day)| Date {
            year,
            month,
            day,
        })
    }

    fn system_flag() -> impl Strategy<Value = Flag> {
        prop::sample::select(vec![
            Flag::Seen,
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Draft,
        ])
    }

    fn search_key() -> impl Strategy<Value = SearchKey> {
        use SearchKey as K;
        let dated: [fn(Date) -> SearchKey; 6] = [
            K::Before,
            K::On,
            K::Since,
            K::SentBefore,
            K::SentOn,
            K::SentSince,
        ];
        let leaf = prop_oneof![
            prop::sample::select(vec![K::All, K::New, K::Old, K::Flag(Flag::Recent)]),
            system_flag().prop_map(K::Flag),
            system_flag().prop_map(K::NotFlag),
            keyword().prop_map(|k| K::Flag(Flag::Keyword(k))),
            keyword().prop_map(|k| K::NotFlag(Flag::Keyword(k))),
            (header_name(), text()).prop_map(|(name, value)| K::Header(name, value)),
            text().prop_map(K::Body),
            text().prop_map(K::Text),
            (0..6usize, search_date()).prop_map(move |(i, date)| dated[i](date)),
            any::<u64>().prop_map(K::Larger),
            any::<u64>().prop_map(K::Smaller),
            sequence_set().prop_map(K::Uid),
            sequence_set().prop_map(K::Sequence),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|key| K::Not(Box::new(key))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| K::Or(Box::new(a), Box::new(b))),
                prop::collection::vec(inner, 1..4).prop_map(K::And),
            ]
        })
    }

    fn section_strategy() -> impl Strategy<Value = Section> {
        (
            prop::collection::vec(1..=u32::MAX, 0..3),
            0..5u8,
            prop::collection::vec(header_name(), 1..3),
            any::<bool>(),
        )
            .prop_map(|(part, kind, fields, not)| {
                let text = match kind {
                    0 => None,
                    1 => Some(SectionText::Header),
                    2 => Some(SectionText::Text),
                    3 => Some(SectionText::HeaderFields { not, fields }),
                    _ if part.is_empty() => None,
                    _ => Some(SectionText::Mime),
                };
                Section { part, text }
            })
    }

    fn fetch_attribute() -> impl Strategy<Value = FetchAttribute> {
        use FetchAttribute as A;
        prop_oneof![
            prop::sample::select(vec![
                A::Flags,
                A::Uid,
                A::InternalDate,
                A::Rfc822Size,
                A::Envelope,
                A::Body,
                A::BodyStructure,
                A::Rfc822,
                A::Rfc822Header,
                A::Rfc822Text,
            ]),
            (
                any::<bool>(),
                section_strategy(),
                prop::option::of((any::<u32>(), 1..=u32::MAX))
            )
                .prop_map(|(peek, section, partial)| A::BodySection {
                    peek,
                    section,
                    partial
                }),
        ]
    }

    fn flag() -> impl Strategy<Value = Flag> {
        prop_oneof![
            system_flag(),
            Just(Flag::Recent),
            keyword().prop_map(Flag::Keyword)
        ]
    }

    fn command_strategy() -> impl Strategy<Value = Command> {
        let fetch = (
            any::<bool>(),
            sequence_set(),
            prop::collection::vec(fetch_attribute(), 1..5),
        )
            .prop_map(|(uid, set, items)| Command::Fetch { uid, set, items });
        let operation = prop::sample::select(vec![
            StoreOperation::Replace,
            StoreOperation::Add,
            StoreOperation::Remove,
        ]);
        let store = (
            any::<bool>(),
            sequence_set(),
            operation,
            any::<bool>(),
            prop::collection::vec(flag(), 0..4),
        )
            .prop_map(|(uid, set, operation, silent, flags)| Command::Store {
                uid,
                set,
                operation,
                silent,
                flags,
            });
        let charset = prop::option::of(prop::sample::select(vec!["UTF-8", "US-ASCII"]));
        let search = (
            any::<bool>(),
            charset,
            prop::collection::vec(search_key(), 1..4),
        )
            .prop_map(|(uid, charset, keys)| Command::Search {
                uid,
                charset: charset.map(str::to_owned),
                criteria: SearchKey::And(keys),
            });
        prop_oneof![fetch, store, search]
    }

    /// Renders commands as a client would, picking among equivalent spellings with `styles`.
    struct Renderer<'a> {
        out: Vec<u8>,
        styles: std::iter::Cycle<std::slice::Iter<'a, u8>>,
    }

    impl Renderer<'_> {
        fn style(&mut self) -> u8 {
            self.styles.next().copied().unwrap_or(0)
        }

        fn push(&mut self, text: &str) {
            self.out.extend_from_slice(text.as_bytes());
        }

        fn astring(&mut self, value: &str) {
            let atom = !value.is_empty() && value.bytes().all(is_astring_char);
            match self.style() % 4 {
                0 if atom => self.push(value),
                1 => self.push(&format!("{{{}}}\r\n{value}", value.len())),
                2 => self.push(&format!("{{{}+}}\r\n{value}", value.len())),
                _ => self.push(&quote(value)),
            }
        }

        fn set(&mut self, set: &SequenceSet) {
            let number = |n: &SeqNumber| match n {
                SeqNumber::Value(v) => v.to_string(),
                SeqNumber::Last => "*".into(),
            };
            let ranges: Vec<String> = set
                .0
                .iter()
                .map(|r| {
                    if r.start == r.end {
                        number(&r.start)
                    } else {
                        format!("{}:{}", number(&r.start), number(&r.end))
                    }
                })
                .collect();
            self.push(&ranges.join(","));
        }

        fn flag(&mut self, flag: &Flag) {
            let text = match flag {
                Flag::Seen => "\\Seen",
                Flag::Answered => "\\answered",
                Flag::Flagged => "\\FLAGGED",
                Flag::Deleted => "\\Deleted",
                Flag::Draft => "\\Draft",
                Flag::Recent => "\\Recent",
                Flag::Keyword(k) => k,
            };
            self.push(text);
        }

        fn flag_name(flag: &Flag) -> &'static str {
            match flag {
                Flag::Seen => "SEEN",
                Flag::Answered => "ANSWERED",
                Flag::Flagged => "FLAGGED",
                Flag::Deleted => "DELETED",
                Flag::Draft => "DRAFT",
                Flag::Recent => "RECENT",
                Flag::Keyword(_) => "KEYWORD",
            }
        }

        fn date(&mut self, date: &Date) {
            let month = MONTHS
                .get(usize::from(date.month) - 1)
                .copied()
                .unwrap_or("JAN");
            let text = format!("{}-{}-{}", date.day, month.to_lowercase(), date.year);
            if self.style().is_multiple_of(2) {
                self.push(&text);
            } else {
                self.push(&format!("\"{text}\""));
            }
        }

        fn key(&mut self, key: &SearchKey) {
            use SearchKey as K;
            match key {
                K::All => self.push("ALL"),
                K::New => self.push("new"),
                K::Old => self.push("OLD"),
                K::Flag(Flag::Keyword(k)) => self.push(&format!("KEYWORD {k}")),
                K::NotFlag(Flag::Keyword(k)) => self.push(&format!("UNKEYWORD {k}")),
                K::Flag(flag) => self.push(Self::flag_name(flag)),
                K::NotFlag(flag) => self.push(&format!("UN{}", Self::flag_name(flag))),
                K::Header(name, value) => {
                    self.push(&format!("HEADER {} ", name.to_lowercase()));
                    self.astring(value);
                }
                K::Body(value) => {
                    self.push("BODY ");
                    self.astring(value);
                }
                K::Text(value) => {
                    self.push("TEXT ");
                    self.astring(value);
                }
                K::Before(d)
                | K::On(d)
                | K::Since(d)
                | K::SentBefore(d)
                | K::SentOn(d)
                | K::SentSince(d) => {
                    let name = match key {
                        K::Before(_) => "BEFORE ",
                        K::On(_) => "ON ",
                        K::Since(_) => "SINCE ",
                        K::SentBefore(_) => "SENTBEFORE ",
                        K::SentOn(_) => "SENTON ",
                        _ => "SENTSINCE ",
                    };
                    self.push(name);
                    self.date(d);
                }
                K::Larger(n) => self.push(&format!("LARGER {n}")),
                K::Smaller(n) => self.push(&format!("SMALLER {n}")),
                K::Uid(set) => {
                    self.push("UID ");
                    self.set(set);
                }
                K::Sequence(set) => self.set(set),
                K::Not(key) => {
                    self.push("NOT ");
                    self.key(key);
                }
                K::Or(a, b) => {
                    self.push("OR ");
                    self.key(a);
                    self.push(" ");
                    self.key(b);
                }
                K::And(keys) => {
                    self.push("(");
                    self.keys(keys);
                    self.push(")");
                }
            }
        }

        fn keys(&mut self, keys: &[SearchKey]) {
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    self.push(" ");
                }
                self.key(key);
            }
        }

        fn section(&mut self, section: &Section) {
            let mut parts: Vec<String> = section.part.iter().map(u32::to_string).collect();
            match &section.text {
                None => {}
                Some(SectionText::Header) => parts.push("HEADER".into()),
                Some(SectionText::Text) => parts.push("text".into()),
                Some(SectionText::Mime) => parts.push("MIME".into()),
                Some(SectionText::HeaderFields { not, fields }) => {
                    let name = if *not {
                        "HEADER.FIELDS.NOT"
                    } else {
                        "HEADER.FIELDS"
                    };
                    let fields: Vec<String> = fields.iter().map(|f| f.to_lowercase()).collect();
                    parts.push(format!("{name} ({})", fields.join(" ")));
                }
            }
            self.push(&format!("[{}]", parts.join(".")));
        }

        fn fetch_attribute(&mut self, item: &FetchAttribute) {
            use FetchAttribute as A;
            let name = match item {
                A::Flags => "FLAGS",
                A::Uid => "uid",
                A::InternalDate => "INTERNALDATE",
                A::Rfc822Size => "RFC822.SIZE",
                A::Envelope => "ENVELOPE",
                A::Body => "BODY",
                A::BodyStructure => "BODYSTRUCTURE",
                A::Rfc822 => "RFC822",
                A::Rfc822Header => "RFC822.HEADER",
                A::Rfc822Text => "RFC822.TEXT",
                A::BodySection {
                    peek,
                    section,
                    partial,
                } => {
                    self.push(if *peek { "BODY.PEEK" } else { "BODY" });
                    self.section(section);
                    if let Some((origin, length)) = partial {
                        self.push(&format!("<{origin}.{length}>"));
                    }
                    return;
                }
            };
            self.push(name);
        }

        fn command(&mut self, command: &Command) {
            self.push("a1 ");
            match command {
                Command::Fetch { uid, set, items } => {
                    self.push(if *uid { "UID FETCH " } else { "FETCH " });
                    self.set(set);
                    self.push(" ");
                    let bare = items.len() == 1 && self.style().is_multiple_of(2);
                    self.push(if bare { "" } else { "(" });
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            self.push(" ");
                        }
                        self.fetch_attribute(item);
                    }
                    self.push(if bare { "" } else { ")" });
                }
                Command::Store {
                    uid,
                    set,
                    operation,
                    silent,
                    flags,
                } => {
                    self.push(if *uid { "UID STORE " } else { "STORE " });
                    self.set(set);
                    self.push(match operation {
                        StoreOperation::Replace => " FLAGS",
                        StoreOperation::Add => " +FLAGS",
                        StoreOperation::Remove => " -flags",
                    });
                    self.push(if *silent { ".SILENT " } else { " " });
                    let bare = !flags.is_empty() && self.style().is_multiple_of(2);
                    self.push(if bare { "" } else { "(" });
                    for (i, flag) in flags.iter().enumerate() {
                        if i > 0 {
                            self.push(" ");
                        }
                        self.flag(flag);
                    }
                    self.push(if bare { "" } else { ")" });
                }
                Command::Search {
                    uid,
                    charset,
                    criteria: SearchKey::And(keys),
                } => {
                    self.push(if *uid { "UID SEARCH " } else { "SEARCH " });
                    if let Some(charset) = charset {
                        self.push(&format!("CHARSET {} ", charset.to_lowercase()));
                    }
                    self.keys(keys);
                }
                other => panic!("cannot render {other:?}"),
            }
            self.push("\r\n");
        }
    }

    fn quote(value: &str) -> String {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }

    fn render(command: &Command, styles: &[u8]) -> Vec<u8> {
        let mut renderer = Renderer {
            out: Vec::new(),
            styles: styles.iter().cycle(),
        };
        renderer.command(command);
        renderer.out
    }

    /// Feeds `input` split at `cuts`, returning every event but Continue.
    fn feed_split(limits: Limits, input: &[u8], cuts: &[prop::sample::Index]) -> Vec<Input> {
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(input.len() + 1)).collect();
        points.push(0);
        points.push(input.len());
        points.sort_unstable();
        let mut reader = CommandReader::new(limits);
        let mut events = Vec::new();
        for pair in points.windows(2) {
            reader.feed(&input[pair[0]..pair[1]]);
            events.extend(drain(&mut reader));
        }
        assert_eq!(reader.buffered(), 0);
        events.retain(|event| *event != Input::Continue);
        events
    }

    fn chunk() -> impl Strategy<Value = Vec<u8>> {
        let pieces: Vec<&[u8]> = vec![
            b"a APPEND x ",
            b"b LOGIN ",
            b"c SEARCH ",
            b"d FETCH 1 ",
            b"{5}\r\n",
            b"{40+}\r\n",
            b"{200+}\r\n",
            b"~{3+}\r\n",
            b"{99999999999999999999999}\r\n",
            b"\r\n",
            b"\n",
            b" ",
            b"(",
            b")",
            b"\"",
            b"\\",
            b"NOT ",
            b"1:*",
            b"BODY[1.HEADER.FIELDS (a)]<1.2>",
        ];
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::sample::select(pieces).prop_map(<[u8]>::to_vec),
            "[ -~]{0,100}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_stays_bounded(
            chunks in prop::collection::vec((chunk(), 0..4u8), 0..60)
        ) {
            let limits = Limits { max_line: 64, max_literal: 128, max_append: 256 };
            let bound = limits.max_line + limits.max_literal.max(limits.max_append);
            let mut reader = CommandReader::new(limits);
            for (chunk, mode) in chunks {
                reader.feed(&chunk);
                prop_assert!(reader.buffered() <= bound + chunk.len());
                match mode {
                    // Raw lines (IDLE, AUTHENTICATE), then a parse, as a session does:
                    // next_line leaves a command in progress alone, so a driver calling only
                    // it would let input pile up that no session lets pile up.
                    0 => {
                        while reader.next_line().is_some() {}
                        reader.next();
                    }
                    1 => {
                        reader.next();
                    }
                    _ => {
                        for _ in 0..10_000 {
                            if reader.next() == Input::Incomplete {
                                break;
                            }
                        }
                        prop_assert_eq!(reader.next(), Input::Incomplete);
                        prop_assert!(reader.buffered() <= bound);
                    }
                }
            }
        }

        #[test]
        fn generated_commands_round_trip(
            command in command_strategy(),
            styles in prop::collection::vec(any::<u8>(), 1..16),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let limits = Limits { max_line: 64 * 1024, max_literal: 64 * 1024, max_append: 64 * 1024 };
            let input = render(&command, &styles);
            let expected = [Input::Request(Request { tag: "a1".into(), command })];
            prop_assert_eq!(&feed_split(limits, &input, &[]), &expected, "{}", String::from_utf8_lossy(&input));
            prop_assert_eq!(&feed_split(limits, &input, &cuts), &expected);
        }

        #[test]
        fn quoted_strings_round_trip(
            user in "[ -~]{0,30}",
            password in "\\PC{0,20}",
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let input = format!("q LOGIN {} {}\r\n", quote(&user), quote(&password));
            let expected = [Input::Request(Request {
                tag: "q".into(),
                command: Command::Login { user, password },
            })];
            prop_assert_eq!(feed_split(limits(), input.as_bytes(), &cuts), expected);
        }
    }
}
