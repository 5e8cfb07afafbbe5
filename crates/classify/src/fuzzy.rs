//! "The next one like it": a MinHash fingerprint of what a message says (its Subject and
//! the words of its text and HTML parts, in overlapping runs of three), so a message
//! filed as junk catches its near-copies from the first lesson on, long before a model
//! has learnt enough to score (rspamd's fuzzy hashes serve the same end). Two messages'
//! fingerprints agree in about the share of word runs they have in common (Jaccard).

use mail_parser::{MessageParser, PartType};

use crate::features::{MAX_INPUT, Sink};
use crate::hash::{TokenHash, mix};
use crate::tokenize::html;

/// Slots of a fingerprint: each is the smallest hash of the message's word runs under
/// its own seed. 32 make the similarity good to about ±0.09.
pub const SLOTS: usize = 32;

/// Words in one run (shingle).
const RUN: usize = 3;

/// Fewer runs than this say too little to compare: no fingerprint.
const MIN_RUNS: usize = 8;

/// Runs read at most, so a huge message costs what a large ordinary one does.
const MAX_RUNS: usize = 5000;

/// Seed of the word-run hash.
const KIND: u64 = 0x66_757a_7a79; // "fuzzy"

/// What a message says, in [`SLOTS`] numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(pub [u32; SLOTS]);

impl Fingerprint {
    /// The share of slots two fingerprints agree on: near the share of word runs the two
    /// messages have in common.
    pub fn similarity(&self, other: &Fingerprint) -> f64 {
        let same = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count();
        same as f64 / SLOTS as f64
    }
}

/// The fingerprint of a message; `None` when it says too little (under [`MIN_RUNS`] word
/// runs). Reads at most [`MAX_INPUT`] octets.
pub fn fingerprint(message: &[u8]) -> Option<Fingerprint> {
    let message = &message[..message.len().min(MAX_INPUT)];
    let text = visible_text(message);
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 1)
        .collect();
    let mut slots = [u32::MAX; SLOTS];
    let mut runs = 0;
    let mut lower = String::new();
    for run in words.windows(RUN).take(MAX_RUNS) {
        lower.clear();
        for word in run {
            lower.extend(word.chars().flat_map(char::to_lowercase));
            lower.push(' ');
        }
        let hash = TokenHash::new(KIND).bytes(lower.as_bytes()).finish();
        for (seed, slot) in slots.iter_mut().enumerate() {
            let value =
                (mix(hash ^ (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 32) as u32;
            *slot = (*slot).min(value);
        }
        runs += 1;
    }
    (runs >= MIN_RUNS).then_some(Fingerprint(slots))
}

/// The Subject and the text of every text and HTML part, as a reader sees them.
fn visible_text(message: &[u8]) -> String {
    let Some(parsed) = MessageParser::default().parse(message) else {
        return String::from_utf8_lossy(message).into_owned();
    };
    let mut text = parsed.subject().unwrap_or_default().to_string();
    // Tag and link tokens are not wanted here, only the text.
    let mut unused = Sink::default();
    for part in &parsed.parts {
        text.push('\n');
        match &part.body {
            PartType::Text(body) => text.push_str(body),
            PartType::Html(body) => text.push_str(&html::text(body, &mut unused)),
            _ => {}
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str, body: &str) -> Vec<u8> {
        format!("From: a@x.test\r\nSubject: {subject}\r\n\r\n{body}\r\n").into_bytes()
    }

    const PILLS: &str = "Cheap pills online! Best prices on viagra cialis and weight loss \
        pills. Order now from our online pharmacy, no prescription needed, discreet \
        worldwide shipping. Click here to buy cheap meds today and save 80 percent.";

    #[test]
    fn near_copies_are_alike_and_other_mail_is_not() {
        let first = fingerprint(&mail("cheap pills", PILLS)).unwrap();
        let copy = fingerprint(&mail("pharmacy offers", &PILLS.replace("80", "90"))).unwrap();
        let lunch = fingerprint(&mail(
            "lunch",
            "Hi Alice, are we still on for lunch on Thursday? I booked a table at the \
             little Italian place near the office for half past twelve.",
        ))
        .unwrap();
        assert!(
            first.similarity(&copy) >= 0.6,
            "{}",
            first.similarity(&copy)
        );
        assert!(
            first.similarity(&lunch) <= 0.2,
            "{}",
            first.similarity(&lunch)
        );
        assert_eq!(first.similarity(&first), 1.0);
    }

    #[test]
    fn html_is_read_as_its_text_and_short_mail_has_no_fingerprint() {
        let plain = fingerprint(&mail("offer", PILLS)).unwrap();
        let html = format!(
            "From: a@x.test\r\nSubject: offer\r\nContent-Type: text/html\r\n\r\n<html><body><p>{}</p></body></html>\r\n",
            PILLS.replace("viagra", "v<!-- x -->iagra")
        );
        let html = fingerprint(html.as_bytes()).unwrap();
        assert!(
            plain.similarity(&html) >= 0.8,
            "{}",
            plain.similarity(&html)
        );
        assert_eq!(fingerprint(&mail("hi", "see you")), None);
        assert_eq!(fingerprint(b""), None);
        assert_eq!(fingerprint(&[0xff; 300]), None);
    }
}
