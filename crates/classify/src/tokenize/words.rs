//! Words of decoded text, and the pairs they form (orthogonal sparse bigrams).
//!
//! A word is a run of letters, digits and the few marks that live inside spam words
//! (`$`, `'`, `-`, `_`), lowercased. Very long runs (encoded blobs, hashes) become one
//! shape token; long numbers become a length token; CJK runs, written without spaces,
//! become character pairs.

use crate::features::Sink;
use crate::hash::{self, TokenHash};
use crate::tokenize::kind;

/// Words longer than this (in chars) are shapes, not words.
const MAX_WORD: usize = 24;

/// Each word is paired with the words up to this far before it (OSB window minus one).
pub(crate) const PAIR_WINDOW: usize = 1;

/// Tokenizes `text`: each word under `kind`, and each pair of a word with the
/// [`PAIR_WINDOW`] words before it.
pub(crate) fn text(kind: u64, text: &str, sink: &mut Sink) {
    let mut recent = [0u64; PAIR_WINDOW];
    let mut seen = 0usize;
    let mut lower = String::new();
    for raw in text.split(|c: char| !is_word_char(c)) {
        if sink.full() {
            return;
        }
        let word = raw.trim_matches(|c| matches!(c, '-' | '\'' | '_'));
        let Some(token) = word_token(kind, word, &mut lower, sink) else {
            continue;
        };
        sink.push(token);
        for (distance, &before) in recent.iter().take(seen.min(PAIR_WINDOW)).enumerate() {
            sink.push(hash::pair(before, token, distance as u64));
        }
        recent.rotate_right(1);
        recent[0] = token;
        seen += 1;
    }
}

/// True for the characters a word is made of.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '$' | '\'' | '-' | '_')
}

/// The token of one word, or `None` for a word too short to mean anything. CJK runs
/// push their character pairs themselves and give no token.
fn word_token(kind: u64, word: &str, lower: &mut String, sink: &mut Sink) -> Option<u64> {
    if word.is_ascii() {
        return ascii_word_token(kind, word.as_bytes());
    }
    let mut chars = word.chars();
    let first = chars.next()?;
    if chars.next().is_none() && first.is_ascii() {
        return None;
    }
    if word.chars().any(is_cjk) {
        cjk_pairs(kind, word, sink);
        return None;
    }
    let length = word.chars().count();
    if word.bytes().all(|b| b.is_ascii_digit()) && length > 4 {
        return Some(
            TokenHash::new(kind::NUMBER)
                .bytes(&[length.min(32) as u8])
                .finish(),
        );
    }
    if length > MAX_WORD {
        let class = if first.is_ascii_digit() { b'9' } else { b'a' };
        return Some(
            TokenHash::new(kind::LONG_WORD)
                .bytes(&[class, (length / 8).min(32) as u8])
                .finish(),
        );
    }
    Some(lowercase_hash(kind, word, lower))
}

/// [`word_token`] of an ASCII word, the common case, without a pass per question or a
/// copy to the heap; the same tokens as the general path.
fn ascii_word_token(kind: u64, word: &[u8]) -> Option<u64> {
    let length = word.len();
    if length < 2 {
        return None;
    }
    if length > 4 && word.iter().all(u8::is_ascii_digit) {
        return Some(
            TokenHash::new(kind::NUMBER)
                .bytes(&[length.min(32) as u8])
                .finish(),
        );
    }
    if length > MAX_WORD {
        let class = if word[0].is_ascii_digit() { b'9' } else { b'a' };
        return Some(
            TokenHash::new(kind::LONG_WORD)
                .bytes(&[class, (length / 8).min(32) as u8])
                .finish(),
        );
    }
    let mut lower = [0u8; MAX_WORD];
    let lower = &mut lower[..length];
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    Some(TokenHash::new(kind).bytes(lower).finish())
}

/// Hash of `word` lowercased under `kind`; `lower` is a reused buffer.
pub(crate) fn lowercase_hash(kind: u64, word: &str, lower: &mut String) -> u64 {
    lower.clear();
    if word.is_ascii() {
        lower.push_str(word);
        lower.make_ascii_lowercase();
    } else {
        lower.extend(word.chars().flat_map(char::to_lowercase));
    }
    TokenHash::new(kind).bytes(lower.as_bytes()).finish()
}

/// Scripts written without spaces between words: Han, Kana, Hangul and their
/// punctuation and compatibility blocks.
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{2e80}'..='\u{9fff}' | '\u{ac00}'..='\u{d7af}' | '\u{f900}'..='\u{faff}' | '\u{ff00}'..='\u{ffef}')
}

/// Character pairs of a CJK run (at most 64 per run, enough to recognise its language
/// and topic).
fn cjk_pairs(kind: u64, word: &str, sink: &mut Sink) {
    let mut previous: Option<char> = None;
    for c in word.chars().take(65) {
        if let Some(p) = previous {
            let mut buffer = [0u8; 8];
            let len = p.encode_utf8(&mut buffer[..4]).len();
            let len = len + c.encode_utf8(&mut buffer[len..]).len();
            sink.push(TokenHash::new(kind).bytes(&buffer[..len]).finish());
        }
        previous = Some(c);
    }
}
