//! The search fields of a message folded as SEARCH compares them (RFC 3501 §6.4.4, RFC
//! 9051 §6.4.4: a case-insensitive substring of the field, decoded), kept beside the raw
//! fields in each header cache record, so that SEARCH FROM, TO, CC, BCC and SUBJECT on a
//! large folder is one pass over the cache file with a substring scan per record and no
//! parse.
//!
//! A record's bytes: the length of the cached fields (u32, little-endian), the cached
//! fields as stored, then one entry per folded text of a search field the message has:
//! the field's index in [`FOLDED`] (one octet), the text's length (u32) and the text. A
//! field the message has gives at least one entry (its value as stored, maybe empty), so
//! an empty search string still tells whether the field is there. Changing this layout
//! means changing the cache's magic (posthorn-maildir's `store::cache`).

use memchr::memmem::Finder;

use super::command::SearchKey;
use super::message::Node;
use super::search::{self, Candidate};

/// The fields whose folded texts are kept: those SEARCH has keys of their own for.
const FOLDED: [&str; 5] = ["From", "To", "Cc", "Bcc", "Subject"];

/// The index in [`FOLDED`] of the field called `name`.
fn index_of(name: &str) -> Option<u8> {
    FOLDED
        .iter()
        .position(|folded| folded.eq_ignore_ascii_case(name))
        .map(|index| index as u8)
}

/// The cache record of a message: `fields` (its cached fields as stored) and the folded
/// texts of the search fields of `root`, the parsed header they were taken from.
pub(super) fn record(root: Option<Node<'_, '_>>, fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 2 * fields.len());
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    out.extend_from_slice(fields);
    let Some(root) = root else {
        return out;
    };
    for field in root.fields() {
        let Some(index) = index_of(field.name.as_str()) else {
            continue;
        };
        let texts = search::field_texts(root, field);
        for (at, text) in texts.iter().enumerate() {
            // Plain text is the same stored and decoded: kept once.
            if texts[..at].contains(text) {
                continue;
            }
            out.push(index);
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// A cache record read back.
pub(super) struct Record<'a> {
    /// The cached fields as stored, with their blank line.
    pub(super) fields: &'a [u8],
    /// The folded entries.
    folded: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record in `bytes`, None if they are not one.
    pub(super) fn split(bytes: &'a [u8]) -> Option<Record<'a>> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let rest = bytes.get(4..)?;
        (len <= rest.len()).then(|| {
            let (fields, folded) = rest.split_at(len);
            Record { fields, folded }
        })
    }

    /// The folded texts, each with its field's index in [`FOLDED`].
    fn texts(&self) -> impl Iterator<Item = (u8, &'a [u8])> {
        let mut rest = self.folded;
        std::iter::from_fn(move || {
            let (&index, after) = rest.split_first()?;
            let len = u32::from_le_bytes(after.get(..4)?.try_into().ok()?) as usize;
            let text = after.get(4..4 + len)?;
            rest = after.get(4 + len..)?;
            Some((index, text))
        })
    }
}

/// Search criteria as a folded record answers them: built once per SEARCH, the search
/// strings folded and made into finders once, not per message.
pub(super) enum Plan<'k> {
    /// A key the index answers (flags, numbers, sizes, dates of arrival).
    Index(&'k SearchKey),
    /// HEADER (or FROM, TO, CC, BCC, SUBJECT) on a folded field: the field is there and,
    /// when there is a string, one of its texts contains it.
    Field {
        index: u8,
        /// Boxed: a finder is large, and plans are small trees.
        needle: Option<Box<Finder<'static>>>,
    },
    /// AND.
    All(Vec<Plan<'k>>),
    /// OR.
    Either(Box<Plan<'k>>, Box<Plan<'k>>),
    /// NOT.
    Not(Box<Plan<'k>>),
}

impl<'k> Plan<'k> {
    /// The plan of `key`, None when some key in it needs more than the folded fields
    /// and the index (another header field, a sent date, the body).
    pub(super) fn new(key: &'k SearchKey) -> Option<Plan<'k>> {
        Some(match key {
            SearchKey::And(keys) => Plan::All(keys.iter().map(Plan::new).collect::<Option<_>>()?),
            SearchKey::Or(a, b) => Plan::Either(Box::new(Plan::new(a)?), Box::new(Plan::new(b)?)),
            SearchKey::Not(key) => Plan::Not(Box::new(Plan::new(key)?)),
            SearchKey::Header(name, value) => {
                let needle = search::lower(value);
                Plan::Field {
                    index: index_of(name)?,
                    needle: (!needle.is_empty())
                        .then(|| Box::new(Finder::new(needle.as_bytes()).into_owned())),
                }
            }
            key if !search::needs_content(key) => Plan::Index(key),
            _ => return None,
        })
    }

    /// Whether the message `candidate`, whose cache record is `record`, matches; the same
    /// answer as [`search::matches`] on the message.
    pub(super) fn matches(&self, candidate: &Candidate<'_>, record: &Record<'_>) -> bool {
        match self {
            Plan::Index(key) => search::matches(key, candidate, None),
            Plan::Field { index, needle } => record.texts().any(|(field, text)| {
                field == *index && needle.as_ref().is_none_or(|n| n.find(text).is_some())
            }),
            Plan::All(plans) => plans.iter().all(|plan| plan.matches(candidate, record)),
            Plan::Either(a, b) => a.matches(candidate, record) || b.matches(candidate, record),
            Plan::Not(plan) => !plan.matches(candidate, record),
        }
    }
}
