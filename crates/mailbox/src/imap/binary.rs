//! BINARY (RFC 3516): a part's content with its Content-Transfer-Encoding undone, decoded a
//! chunk at a time, so FETCH BINARY of a large part streams from the message file as
//! BODY[] does; and APPEND's literal8, whose binary parts are stored base64-encoded so that
//! BODY[] never has to send a NUL.

use std::fs::File;
use std::io;
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::command::AppendMessage;
use super::fetch::{CHUNK, read_range};
use super::message;

/// How a part's stored octets become its content (RFC 2045 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// 7bit, 8bit, binary or none given: stored as they are.
    Identity,
    Base64,
    QuotedPrintable,
}

impl Encoding {
    /// The encoding a Content-Transfer-Encoding value names (`None` for no field); an
    /// unknown one is an error, answered `NO [UNKNOWN-CTE]` (RFC 3516 §4.3).
    pub(super) fn of(cte: Option<&[u8]>) -> Result<Self, UnknownCte> {
        let Some(cte) = cte else {
            return Ok(Encoding::Identity);
        };
        let cte = cte.trim_ascii();
        if [&b"7bit"[..], b"8bit", b"binary", b""]
            .iter()
            .any(|name| cte.eq_ignore_ascii_case(name))
        {
            Ok(Encoding::Identity)
        } else if cte.eq_ignore_ascii_case(b"base64") {
            Ok(Encoding::Base64)
        } else if cte.eq_ignore_ascii_case(b"quoted-printable") {
            Ok(Encoding::QuotedPrintable)
        } else {
            Err(UnknownCte)
        }
    }
}

/// A part whose Content-Transfer-Encoding we cannot undo.
#[derive(Debug)]
pub(super) struct UnknownCte;

impl std::fmt::Display for UnknownCte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unknown Content-Transfer-Encoding")
    }
}

impl std::error::Error for UnknownCte {}

/// True when a FETCH failed on a part of an unknown encoding.
pub(super) fn is_unknown_cte(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<UnknownCte>())
}

/// The longest quoted-printable line held while waiting for its end: a longer one is
/// decoded in pieces (what may still change, trailing white space and a cut `=XX`, stays).
const QP_LINE_HOLD: usize = 8 * 1024;

/// Undoes one encoding over input fed in any pieces: the output does not depend on where
/// the input was cut, so the size counted once and the octets sent later agree.
pub(super) struct Decoder {
    encoding: Encoding,
    /// Base64: the sextets of the quantum being collected.
    quantum: [u8; 4],
    filled: usize,
    /// Quoted-printable: the current line, not yet ended.
    line: Vec<u8>,
}

impl Decoder {
    pub(super) fn new(encoding: Encoding) -> Self {
        Decoder {
            encoding,
            quantum: [0; 4],
            filled: 0,
            line: Vec::new(),
        }
    }

    /// Decodes `input`, appending to `out` what is certain so far.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self.encoding {
            Encoding::Identity => out.extend_from_slice(input),
            Encoding::Base64 => input.iter().for_each(|&b| self.base64(b, out)),
            Encoding::QuotedPrintable => self.quoted_printable(input, out),
        }
    }

    /// Decodes what is left at the end of the input.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        match self.encoding {
            Encoding::Identity => {}
            Encoding::Base64 => self.base64(b'=', out),
            Encoding::QuotedPrintable => {
                let line = std::mem::take(&mut self.line);
                qp_line(&line, None, out);
            }
        }
    }

    /// One base64 character; characters outside the alphabet are ignored and `=` ends
    /// a quantum early (RFC 2045 §6.8).
    fn base64(&mut self, b: u8, out: &mut Vec<u8>) {
        let sextet = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                let [a, b, c, _] = self.quantum;
                match self.filled {
                    2 => out.push(a << 2 | b >> 4),
                    3 => out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2]),
                    _ => {}
                }
                self.filled = 0;
                return;
            }
            _ => return,
        };
        if let Some(slot) = self.quantum.get_mut(self.filled) {
            *slot = sextet;
        }
        self.filled += 1;
        if self.filled == 4 {
            let [a, b, c, d] = self.quantum;
            out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2, c << 6 | d]);
            self.filled = 0;
        }
    }

    /// Quoted-printable input: each line is decoded once its end is seen.
    fn quoted_printable(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while let Some(lf) = input.iter().position(|&b| b == b'\n') {
            let (head, rest) = input.split_at(lf + 1);
            self.line
                .extend_from_slice(head.get(..lf).unwrap_or_default());
            let line = std::mem::take(&mut self.line);
            let (text, eol) = match line.strip_suffix(b"\r") {
                Some(text) => (text, &b"\r\n"[..]),
                None => (&line[..], &b"\n"[..]),
            };
            qp_line(text, Some(eol), out);
            input = rest;
        }
        self.line.extend_from_slice(input);
        if self.line.len() > QP_LINE_HOLD {
            let keep = qp_settled(&self.line);
            let settled: Vec<u8> = self.line.drain(..keep).collect();
            qp_text(&settled, out);
        }
    }
}

/// How much of an unfinished quoted-printable line can be decoded now: all but trailing
/// white space (removed if the line ends there) and an `=` within the last two octets.
fn qp_settled(line: &[u8]) -> usize {
    let mut end = line.len() - trailing_wsp(line);
    let tail = end.saturating_sub(2);
    if let Some(eq) = line
        .get(tail..end)
        .and_then(|t| t.iter().position(|&b| b == b'='))
    {
        end = tail + eq;
    }
    end
}

/// One quoted-printable line without its line break: trailing white space goes, a final
/// `=` joins it to the next line, otherwise the break `eol` (none at the end of input)
/// follows (RFC 2045 §6.7 rules 3 and 5).
fn qp_line(line: &[u8], eol: Option<&[u8]>, out: &mut Vec<u8>) {
    let text = line
        .get(..line.len() - trailing_wsp(line))
        .unwrap_or_default();
    match text.strip_suffix(b"=") {
        Some(joined) => qp_text(joined, out),
        None => {
            qp_text(text, out);
            out.extend_from_slice(eol.unwrap_or_default());
        }
    }
}

/// How many spaces and tabs end `line`.
fn trailing_wsp(line: &[u8]) -> usize {
    line.iter().rev().take_while(|b| is_wsp(**b)).count()
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Quoted-printable text: `=XX` is an octet, anything else (a stray `=` too) itself.
fn qp_text(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        let hex = (b == b'=')
            .then(|| Some((hex_digit(*text.get(i + 1)?)?, hex_digit(*text.get(i + 2)?)?)))
            .flatten();
        match hex {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The decoded size of `encoded` and whether it holds a NUL (which makes the response a
/// literal8, RFC 3516 §4.2), counted a chunk at a time.
pub(super) fn measure(encoded: &[u8], encoding: Encoding) -> (u64, bool) {
    let mut decoder = Decoder::new(encoding);
    let mut out = Vec::new();
    let (mut size, mut nul) = (0, false);
    let mut count = |out: &mut Vec<u8>| {
        size += out.len() as u64;
        nul |= out.contains(&0);
        out.clear();
    };
    for chunk in encoded.chunks(CHUNK) {
        decoder.feed(chunk, &mut out);
        count(&mut out);
    }
    decoder.finish(&mut out);
    count(&mut out);
    (size, nul)
}

/// Decodes `encoded` whole and keeps `window`: for content that is in memory anyway.
pub(super) fn decode(encoded: &[u8], encoding: Encoding, window: Range<u64>) -> Vec<u8> {
    let mut decoder = Decoder::new(encoding);
    let mut out = Vec::new();
    decoder.feed(encoded, &mut out);
    decoder.finish(&mut out);
    let end = usize::try_from(window.end)
        .unwrap_or(usize::MAX)
        .min(out.len());
    let start = usize::try_from(window.start).unwrap_or(usize::MAX).min(end);
    out.drain(..start);
    out.truncate(end - start);
    out
}

/// The decoded octets `window` of the encoded range `stored` of a message file, produced a
/// chunk at a time as the writer takes them.
pub(super) struct Stream {
    decoder: Decoder,
    /// What of the file is still to decode.
    stored: Range<u64>,
    /// The decoded octets wanted.
    window: Range<u64>,
    /// Decoded octets produced so far, kept or not.
    produced: u64,
    finished: bool,
}

impl Stream {
    pub(super) fn new(encoding: Encoding, stored: Range<u64>, window: Range<u64>) -> Self {
        Stream {
            decoder: Decoder::new(encoding),
            stored,
            window,
            produced: 0,
            finished: false,
        }
    }

    /// How many octets the stream yields in all.
    pub(super) fn len(&self) -> u64 {
        self.window.end - self.window.start
    }

    /// The next octets of the window, `None` once it is complete.
    pub(super) fn next_chunk(&mut self, file: &File) -> io::Result<Option<Vec<u8>>> {
        if self.finished || self.produced >= self.window.end {
            return Ok(None);
        }
        let mut out = Vec::new();
        let n = (self.stored.end - self.stored.start).min(CHUNK as u64);
        if n == 0 {
            self.decoder.finish(&mut out);
            self.finished = true;
        } else {
            let input = read_range(file, self.stored.start, n)?;
            self.stored.start += n;
            self.decoder.feed(&input, &mut out);
        }
        let from = self.produced;
        self.produced += out.len() as u64;
        let keep_from = self.window.start.saturating_sub(from).min(out.len() as u64);
        let keep_to = self.window.end.saturating_sub(from).min(out.len() as u64);
        out.truncate(keep_to as usize);
        out.drain(..keep_from as usize);
        Ok(Some(out))
    }
}

/// APPEND's messages as we store them: those sent as literal8 made [`storable`].
pub(super) fn storable_messages(messages: Vec<AppendMessage>) -> Vec<AppendMessage> {
    messages
        .into_iter()
        .map(|m| match m.binary {
            true => AppendMessage {
                message: storable(m.message),
                ..m
            },
            false => m,
        })
        .collect()
}

/// Base64 lines are this long (RFC 2045 §6.8).
const BASE64_LINE: usize = 76;

/// The message of an APPEND literal8 as we store it: each part declared
/// `Content-Transfer-Encoding: binary` becomes base64, so that every stored message can
/// be sent as BODY[] (RFC 3516 §4.4 lets the server store binary content as it likes).
pub(super) fn storable(message: Vec<u8>) -> Vec<u8> {
    let parts = message::binary_parts(&message);
    if parts.is_empty() {
        return message;
    }
    let mut out = Vec::with_capacity(message.len() * 4 / 3 + 64);
    let mut at = 0;
    for part in parts {
        out.extend_from_slice(message.get(at..part.field.start).unwrap_or_default());
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
        out.extend_from_slice(
            message
                .get(part.field.end..part.body.start)
                .unwrap_or_default(),
        );
        let body = message.get(part.body.clone()).unwrap_or_default();
        for line in body.chunks(BASE64_LINE / 4 * 3) {
            out.extend_from_slice(BASE64.encode(line).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        at = part.body.end;
    }
    out.extend_from_slice(message.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(encoding: Encoding, input: &[u8]) -> Vec<u8> {
        decode(input, encoding, 0..u64::MAX)
    }

    /// The same input fed one octet at a time.
    fn trickled(encoding: Encoding, input: &[u8]) -> Vec<u8> {
        let mut decoder = Decoder::new(encoding);
        let mut out = Vec::new();
        input.chunks(1).for_each(|b| decoder.feed(b, &mut out));
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn encodings_by_name() {
        assert_eq!(Encoding::of(None).ok(), Some(Encoding::Identity));
        assert_eq!(Encoding::of(Some(b" BASE64 ")).ok(), Some(Encoding::Base64));
        assert_eq!(
            Encoding::of(Some(b"Quoted-Printable")).ok(),
            Some(Encoding::QuotedPrintable)
        );
        assert_eq!(Encoding::of(Some(b"8bit")).ok(), Some(Encoding::Identity));
        assert!(Encoding::of(Some(b"x-uuencode")).is_err());
    }

    #[test]
    fn base64_skips_white_space_and_stops_at_padding() {
        let input = b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n";
        assert_eq!(decoded(Encoding::Base64, input), b"hello world");
        assert_eq!(trickled(Encoding::Base64, input), b"hello world");
        assert_eq!(decoded(Encoding::Base64, b"YQ"), b"a");
    }

    #[test]
    fn quoted_printable_soft_breaks_and_trailing_space() {
        let input = b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo =41=3d=\r\n=62\r\n= stray=4";
        let expected = b"hello\r\nbar\r\nfoo\tbar\r\nfoo A=b\r\n= stray=4";
        assert_eq!(decoded(Encoding::QuotedPrintable, input), expected);
        assert_eq!(trickled(Encoding::QuotedPrintable, input), expected);
    }

    #[test]
    fn long_quoted_printable_lines_decode_the_same_in_any_pieces() {
        let mut input = Vec::new();
        for i in 0..5000 {
            input.extend_from_slice(if i % 7 == 0 { b"=41  " } else { b"ab \t" });
        }
        input.extend_from_slice(b"=\r\nend   \r\n");
        let whole = decoded(Encoding::QuotedPrintable, &input);
        assert_eq!(trickled(Encoding::QuotedPrintable, &input), whole);
        assert!(whole.ends_with(b"ab \tend\r\n"));
        assert_eq!(
            measure(&input, Encoding::QuotedPrintable).0,
            whole.len() as u64
        );
    }

    #[test]
    fn windows_of_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let encoded = BASE64.encode((0..=255u8).cycle().take(200_000).collect::<Vec<_>>());
        std::fs::write(&path, format!("xx{encoded}yy")).unwrap();
        let file = File::open(&path).unwrap();
        let stored = 2..2 + encoded.len() as u64;
        let mut stream = Stream::new(Encoding::Base64, stored, 70_000..70_010);
        let mut got = Vec::new();
        while let Some(chunk) = stream.next_chunk(&file).unwrap() {
            got.extend(chunk);
        }
        let expected: Vec<u8> = (70_000..70_010u32).map(|i| (i % 256) as u8).collect();
        assert_eq!(got, expected);
        assert_eq!(stream.len(), 10);
    }

    #[test]
    fn binary_parts_are_stored_as_base64() {
        let message = b"Subject: x\r\nContent-Transfer-Encoding: binary\r\n\r\n\0\xe4\r\n".to_vec();
        let stored = storable(message);
        assert_eq!(
            stored,
            b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nAOQNCg==\r\n"
        );
        let plain = b"Subject: y\r\n\r\nhello\r\n".to_vec();
        assert_eq!(storable(plain.clone()), plain);
    }
}
