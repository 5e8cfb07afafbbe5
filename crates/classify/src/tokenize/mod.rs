//! The tokenizer: walks a parsed message (mail-parser decodes transfer encodings and
//! charsets) and feeds every token hash to a [`Sink`].

mod header;
pub(crate) mod html;
pub(crate) mod kind;
mod mime;
mod url;
mod words;

use mail_parser::{Message, MessageParser, PartType};

use crate::features::Sink;
use crate::hash::TokenHash;

/// Nested messages (forwards, bounces) are read this deep.
const MAX_DEPTH: usize = 2;

/// Tokenizes a whole message; bytes mail-parser cannot parse are read as plain text.
pub(crate) fn message(bytes: &[u8], sink: &mut Sink) {
    match MessageParser::default().parse(bytes) {
        Some(message) => walk(&message, 0, sink),
        None => body_text(&String::from_utf8_lossy(bytes), sink),
    }
}

/// Tokenizes a parsed message: its header section, then every part.
fn walk(message: &Message<'_>, depth: usize, sink: &mut Sink) {
    if let Some(root) = message.parts.first() {
        header::section(&root.headers, message.raw_message(), sink);
    }
    mime::count(message.parts.len(), sink);
    for part in &message.parts {
        if sink.full() {
            return;
        }
        mime::part(part, sink);
        match &part.body {
            PartType::Text(text) => body_text(text, sink),
            PartType::Html(html) => {
                let text = html::text(html, sink);
                body_text(&text, sink);
            }
            PartType::Message(inner) if depth < MAX_DEPTH => walk(inner, depth + 1, sink),
            PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Message(_) => {
                sink.push(TokenHash::new(kind::STRUCTURE).bytes(b"binary").finish());
            }
            PartType::Multipart(_) => {}
        }
    }
}

/// Tokenizes decoded body text: its words and pairs, and its URLs.
fn body_text(text: &str, sink: &mut Sink) {
    url::scan(text, sink);
    words::text(kind::BODY, text, sink);
}
