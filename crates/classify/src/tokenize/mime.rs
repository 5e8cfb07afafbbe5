//! MIME structure tokens: each part's content type, charset, transfer encoding and
//! attachment extension, and the number of parts. Spam has its own habits here
//! (HTML-only, base64-encoded text, odd charsets, executable attachments).

use mail_parser::{MessagePart, MimeHeaders};

use crate::features::Sink;
use crate::hash::TokenHash;
use crate::tokenize::kind;

/// Emits the structure tokens of one part.
pub(crate) fn part(part: &MessagePart<'_>, sink: &mut Sink) {
    if let Some(content_type) = part.content_type() {
        let subtype = content_type.subtype().unwrap_or("");
        emit(
            sink,
            b"type",
            &[content_type.ctype(), "/", subtype].concat(),
        );
        if let Some(charset) = content_type.attribute("charset") {
            emit(sink, b"charset", charset);
        }
    }
    if let Some(encoding) = part.content_transfer_encoding() {
        emit(sink, b"encoding", encoding);
    }
    if let Some(name) = part.attachment_name() {
        let extension = name.rsplit_once('.').map_or("", |(_, extension)| extension);
        emit(
            sink,
            b"extension",
            &extension[..extension.floor_char_boundary(16)],
        );
    }
}

/// Emits the count of parts, bucketed.
pub(crate) fn count(parts: usize, sink: &mut Sink) {
    let bucket: &[u8] = match parts {
        0 | 1 => b"1",
        2 => b"2",
        3 => b"3",
        4..=6 => b"4-6",
        _ => b"7+",
    };
    sink.push(
        TokenHash::new(kind::MIME)
            .bytes(b"parts")
            .bytes(bucket)
            .finish(),
    );
}

fn emit(sink: &mut Sink, what: &[u8], value: &str) {
    sink.push(
        TokenHash::new(kind::MIME)
            .bytes(what)
            .bytes(value.to_ascii_lowercase().as_bytes())
            .finish(),
    );
}
