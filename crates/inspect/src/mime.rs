//! The MIME structure (RFC 2046 §5), walked with an explicit stack so nesting cannot exhaust
//! the call stack. Each multipart's body is scanned once for its own delimiters, so the whole
//! walk reads each octet at most `max_depth` times; parts beyond `max_parts` are not read.
//! mail-parser decodes each entity's header fields, but it repairs structure silently, so
//! the structure is found here.

use mail_parser::{ContentType, HeaderName, MessageParser};

use crate::Scan;
use crate::header::{self, lines};
use crate::leaf::{self, Part};
use crate::symbols::*;

/// One entity waiting to be inspected.
struct Pending<'a> {
    raw: &'a [u8],
    depth: usize,
    /// RFC 2046 §5.1.5: in a multipart/digest, parts default to message/rfc822.
    digest_child: bool,
}

pub(crate) fn walk(scan: &mut Scan, message: &[u8]) {
    let limits = *scan.limits();
    let mut stack = vec![Pending {
        raw: message,
        depth: 0,
        digest_child: false,
    }];
    let mut parts = 1;
    while let Some(pending) = stack.pop() {
        let entity = header::split(pending.raw);
        let parsed = MessageParser::new().parse_headers(entity.header);
        let content_type = parsed
            .as_ref()
            .and_then(|m| m.header(HeaderName::ContentType))
            .and_then(|v| v.as_content_type());
        let (main, sub) = match content_type {
            Some(ct) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            ),
            None if pending.digest_child => ("message".to_owned(), "rfc822".to_owned()),
            None => ("text".to_owned(), "plain".to_owned()),
        };
        let children = match (main.as_str(), sub.as_str()) {
            ("multipart", _) => multipart(scan, content_type, entity.body),
            ("message", "rfc822" | "global") => vec![entity.body],
            _ => {
                let part = Part::new(parsed.as_ref(), main, sub, content_type);
                leaf::check(scan, &part, entity.body);
                scan.report.parts += 1;
                continue;
            }
        };
        if children.is_empty() {
            continue;
        }
        if pending.depth >= limits.max_depth {
            scan.add(MIME_TOO_DEEP, format!("deeper than {}", limits.max_depth));
            continue;
        }
        let digest_child = sub == "digest";
        for raw in children.into_iter().rev() {
            parts += 1;
            if parts > limits.max_parts {
                scan.add(
                    MIME_TOO_MANY_PARTS,
                    format!("more than {}", limits.max_parts),
                );
                return;
            }
            stack.push(Pending {
                raw,
                depth: pending.depth + 1,
                digest_child,
            });
        }
    }
}

/// The body parts of a multipart, reporting a missing boundary parameter, a boundary that
/// never appears, or a missing close delimiter (RFC 2046 §5.1.1).
fn multipart<'a>(
    scan: &mut Scan,
    content_type: Option<&ContentType>,
    body: &'a [u8],
) -> Vec<&'a [u8]> {
    let Some(boundary) = content_type
        .and_then(|ct| ct.attribute("boundary"))
        .filter(|b| !b.is_empty())
    else {
        scan.add(MIME_NO_BOUNDARY, "multipart without boundary");
        return Vec::new();
    };
    let split = split_parts(body, boundary.as_bytes());
    if !split.opened {
        scan.add(MIME_BOUNDARY_NOT_FOUND, boundary.to_owned());
    } else if !split.closed {
        scan.add(MIME_NO_CLOSING_BOUNDARY, boundary.to_owned());
    }
    split.parts
}

#[derive(Debug)]
struct Split<'a> {
    parts: Vec<&'a [u8]>,
    opened: bool,
    closed: bool,
}

/// Splits at delimiter lines `--boundary` (optionally followed by white space) up to the
/// close delimiter `--boundary--`. The line end before a delimiter belongs to it, not to
/// the part. Text before the first delimiter (the preamble) and after the close (the
/// epilogue) is no part.
fn split_parts<'a>(body: &'a [u8], boundary: &[u8]) -> Split<'a> {
    let mut split = Split {
        parts: Vec::new(),
        opened: false,
        closed: false,
    };
    let mut part_start = None;
    let mut offset = 0;
    for line in lines(body) {
        let line_start = offset;
        offset += line.len();
        offset += usize::from(body.get(offset) == Some(&b'\r'));
        offset += usize::from(body.get(offset) == Some(&b'\n'));
        let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        else {
            continue;
        };
        let close = rest.starts_with(b"--");
        let rest = if close { &rest[2..] } else { rest };
        if !rest.iter().all(|b| matches!(b, b' ' | b'\t')) {
            continue;
        }
        if let Some(start) = part_start.take() {
            split
                .parts
                .push(&body[start..before_line_end(body, start, line_start)]);
        }
        if close {
            split.closed = split.opened;
            return split;
        }
        split.opened = true;
        part_start = Some(offset);
    }
    if let Some(start) = part_start {
        split.parts.push(&body[start..]);
    }
    split
}

/// Where a part ends: before the line end that precedes the delimiter at `line_start`.
fn before_line_end(body: &[u8], start: usize, line_start: usize) -> usize {
    let mut end = line_start;
    if end > start && body[end - 1] == b'\n' {
        end -= 1;
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parts() {
        let body =
            b"preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b \r\n\r\ntwo\r\n--bx\r\n--b--\r\nepilogue";
        let s = split_parts(body, b"b");
        assert!(s.opened && s.closed);
        assert_eq!(s.parts, [&b"A: 1\r\n\r\none"[..], &b"\r\ntwo\r\n--bx"[..]]);
        let s = split_parts(b"--b\nx\n", b"b");
        assert!(s.opened && !s.closed);
        assert_eq!(s.parts, [&b"x\n"[..]]);
        let s = split_parts(b"no delimiter", b"b");
        assert!(!s.opened && s.parts.is_empty());
    }
}
