//! SEARCH criteria against one message (RFC 3501 §6.4.4). Most keys need only what the
//! mailbox index knows (numbers, flags, dates, sizes); header, body and sent-date keys need
//! the message itself, which the session then reads and hands over once per message.

use std::cell::OnceCell;

use mail_parser::{DateTime, Header, HeaderValue, Message, PartType};
use posthorn_maildir::store::Flags;

use crate::imap::command::{Date, Flag, SearchKey, SeqNumber, SeqRange, SequenceSet};
use crate::imap::message::{MAX_DEPTH, Node, header_date, parse};

/// What SEARCH knows of a message without reading it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The message sequence number.
    pub seq: u32,
    /// The UID.
    pub uid: u32,
    /// The stored flags.
    pub flags: &'a Flags,
    /// Whether this session sees the message as \Recent.
    pub recent: bool,
    /// INTERNALDATE as Unix seconds (only read when [`needs_internal_date`] says so).
    pub internal_date: i64,
    /// RFC822.SIZE in octets.
    pub size: u64,
    /// MODSEQ (RFC 7162).
    pub modseq: u64,
    /// The highest sequence number in the mailbox (what `*` means in a sequence set).
    pub last_seq: u32,
    /// The highest UID in the mailbox (what `*` means in a UID set).
    pub last_uid: u32,
}

/// True when evaluating `key` may need the message text (header, body, text and sent-date
/// keys), so that the session reads the file only then.
pub fn needs_content(key: &SearchKey) -> bool {
    fields_needed(key).is_none_or(|names| !names.is_empty())
}

/// The header fields evaluating `key` may look at, when they are all of the message it
/// needs: none for keys the index answers, None when it needs the body (BODY, TEXT).
/// SENTBEFORE, SENTON and SENTSINCE look at Date.
pub fn fields_needed(key: &SearchKey) -> Option<Vec<&str>> {
    match key {
        SearchKey::And(keys) => keys.iter().try_fold(Vec::new(), |mut names, key| {
            names.extend(fields_needed(key)?);
            Some(names)
        }),
        SearchKey::Or(a, b) => {
            let mut names = fields_needed(a)?;
            names.extend(fields_needed(b)?);
            Some(names)
        }
        SearchKey::Not(key) => fields_needed(key),
        SearchKey::Header(name, _) => Some(vec![name.as_str()]),
        SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => {
            Some(vec!["Date"])
        }
        SearchKey::Body(_) | SearchKey::Text(_) => None,
        _ => Some(Vec::new()),
    }
}

/// True when evaluating `key` may need the internal date (BEFORE, ON, SINCE), so the
/// session looks at each file's time only then.
pub fn needs_internal_date(key: &SearchKey) -> bool {
    uses(key, &|k| {
        matches!(
            k,
            SearchKey::Before(_) | SearchKey::On(_) | SearchKey::Since(_)
        )
    })
}

/// True if some key inside `key` (through AND, OR and NOT) is `wanted`.
fn uses(key: &SearchKey, wanted: &dyn Fn(&SearchKey) -> bool) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().any(|k| uses(k, wanted)),
        SearchKey::Or(a, b) => uses(a, wanted) || uses(b, wanted),
        SearchKey::Not(k) => uses(k, wanted),
        k => wanted(k),
    }
}

/// Evaluates `key` for one message. `content` is what [`fields_needed`] asked for: a
/// header section with at least the fields it names, the whole raw message when it
/// answered None, or None when no content is needed (content keys then do not match);
/// it is parsed at most once, however many keys look at it.
pub fn matches(key: &SearchKey, candidate: &Candidate<'_>, content: Option<&[u8]>) -> bool {
    Evaluation {
        candidate,
        content,
        parsed: OnceCell::new(),
    }
    .matches(key)
}

/// The UIDs `uids` (ascending) as a UID set of ranges; None when there are none.
pub fn uid_set(uids: &[u32]) -> Option<SequenceSet> {
    let mut ranges: Vec<SeqRange> = Vec::new();
    for &uid in uids {
        match ranges.last_mut() {
            Some(SeqRange {
                end: SeqNumber::Value(end),
                ..
            }) if end.checked_add(1) == Some(uid) => *end = uid,
            _ => ranges.push(SeqRange {
                start: SeqNumber::Value(uid),
                end: SeqNumber::Value(uid),
            }),
        }
    }
    (!ranges.is_empty()).then_some(SequenceSet(ranges))
}

/// True if `n` is in `set`, where `*` stands for `last` and a range may be given high end
/// first (`5:1`). FETCH and STORE use it too.
pub fn in_set(set: &SequenceSet, n: u32, last: u32) -> bool {
    let value = |number: SeqNumber| match number {
        SeqNumber::Value(value) => value,
        SeqNumber::Last => last,
    };
    set.0.iter().any(|range| {
        let (a, b) = (value(range.start), value(range.end));
        (a.min(b)..=a.max(b)).contains(&n)
    })
}

/// The UTC calendar date of Unix seconds: what BEFORE, ON and SINCE compare the internal
/// date by.
pub fn date_of(unix: i64) -> Date {
    let date = DateTime::from_timestamp(unix);
    Date {
        year: date.year,
        month: date.month,
        day: date.day,
    }
}

/// One message under evaluation, its content parsed on first use.
struct Evaluation<'c, 'a> {
    candidate: &'c Candidate<'a>,
    content: Option<&'c [u8]>,
    parsed: OnceCell<Option<Message<'c>>>,
}

impl Evaluation<'_, '_> {
    /// The parsed message, if the session supplied its content.
    fn message(&self) -> Option<&Message<'_>> {
        self.parsed.get_or_init(|| self.content.map(parse)).as_ref()
    }

    /// Whether the message matches `key`.
    fn matches(&self, key: &SearchKey) -> bool {
        let c = self.candidate;
        let in_message = |test: &dyn Fn(&Message<'_>) -> bool| self.message().is_some_and(test);
        match key {
            SearchKey::All => true,
            SearchKey::And(keys) => keys.iter().all(|key| self.matches(key)),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::Not(key) => !self.matches(key),
            SearchKey::Sequence(set) => in_set(set, c.seq, c.last_seq),
            SearchKey::Uid(set) => in_set(set, c.uid, c.last_uid),
            SearchKey::Flag(flag) => self.has_flag(flag),
            SearchKey::NotFlag(flag) => !self.has_flag(flag),
            SearchKey::New => c.recent && !c.flags.contains(&Flag::Seen),
            SearchKey::Old => !c.recent,
            SearchKey::Header(name, value) => in_message(&|m| header_matches(m, name, value)),
            SearchKey::Body(value) => in_message(&|m| body_contains(m, &lower(value))),
            SearchKey::Text(value) => in_message(&|m| {
                let needle = lower(value);
                header_contains(m, &needle) || body_contains(m, &needle)
            }),
            SearchKey::Before(date) | SearchKey::SentBefore(date) => {
                self.date_for(key).is_some_and(|d| d < *date)
            }
            SearchKey::On(date) | SearchKey::SentOn(date) => {
                self.date_for(key).is_some_and(|d| d == *date)
            }
            SearchKey::Since(date) | SearchKey::SentSince(date) => {
                self.date_for(key).is_some_and(|d| d >= *date)
            }
            SearchKey::Larger(n) => c.size > *n,
            SearchKey::ModSeq(n) => c.modseq >= *n,
            SearchKey::Smaller(n) => c.size < *n,
        }
    }

    /// Whether the message has `flag`; \Recent belongs to the session, not the store.
    fn has_flag(&self, flag: &Flag) -> bool {
        match flag {
            Flag::Recent => self.candidate.recent,
            flag => self.candidate.flags.contains(flag),
        }
    }

    /// The date a date key compares: the internal date for BEFORE/ON/SINCE, the Date:
    /// header for the SENT keys.
    fn date_for(&self, key: &SearchKey) -> Option<Date> {
        match key {
            SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => {
                self.message().and_then(header_date)
            }
            _ => Some(date_of(self.candidate.internal_date)),
        }
    }
}

/// A search string folded for case-insensitive comparison.
pub(super) fn lower(value: &str) -> String {
    value.to_lowercase()
}

/// True if `haystack` contains `needle` (already folded by [`lower`]), ignoring case.
fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(needle)
}

/// True if the raw octets, read as UTF-8 where they are, contain `needle`.
fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    contains(&String::from_utf8_lossy(haystack), needle)
}

/// HEADER name value (and FROM, TO, CC, BCC, SUBJECT): some field called `name` exists and,
/// unless `value` is empty, contains it.
fn header_matches(message: &Message<'_>, name: &str, value: &str) -> bool {
    let Some(root) = Node::root(message) else {
        return false;
    };
    let needle = lower(value);
    root.fields()
        .iter()
        .filter(|field| field.name.as_str().eq_ignore_ascii_case(name))
        .any(|field| needle.is_empty() || field_contains(root, field, &needle))
}

/// True if a field contains `needle` (folded by [`lower`]), as stored or decoded.
fn field_contains(root: Node<'_, '_>, field: &Header<'_>, needle: &str) -> bool {
    field_texts(root, field)
        .iter()
        .any(|text| text.contains(needle))
}

/// The texts of a field a search string is looked for in, folded as [`lower`] folds the
/// string: its value as stored (read as UTF-8 where it is) and decoded, RFC 2047 words
/// decoded, and for address fields each display name, address and `name <address>` on
/// its own. The header cache keeps them, so that SEARCH need not parse.
pub(super) fn field_texts(root: Node<'_, '_>, field: &Header<'_>) -> Vec<String> {
    let mut texts = vec![lower(&String::from_utf8_lossy(&root.value(field)))];
    texts.extend(decoded_texts(&field.value).iter().map(|text| lower(text)));
    texts
}

/// The decoded texts of a field value that a search string may be part of.
fn decoded_texts(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(text) => vec![text.to_string()],
        HeaderValue::TextList(texts) => texts.iter().map(|text| text.to_string()).collect(),
        HeaderValue::Address(address) => {
            let groups = address
                .as_group()
                .unwrap_or_default()
                .iter()
                .filter_map(|group| group.name.as_deref().map(str::to_string));
            let addresses = address.iter().flat_map(|addr| {
                let name = addr.name.as_deref().unwrap_or_default();
                let email = addr.address.as_deref().unwrap_or_default();
                [
                    name.to_string(),
                    email.to_string(),
                    format!("{name} <{email}>"),
                ]
            });
            groups.chain(addresses).collect()
        }
        _ => Vec::new(),
    }
}

/// TEXT's header half: the header block as stored, or any field's decoded value.
fn header_contains(message: &Message<'_>, needle: &str) -> bool {
    Node::root(message).is_some_and(|root| {
        bytes_contain(root.header(), needle)
            || root
                .fields()
                .iter()
                .any(|field| field_contains(root, field, needle))
    })
}

/// BODY: the body as stored, or the decoded text of any text part, contains `needle`.
fn body_contains(message: &Message<'_>, needle: &str) -> bool {
    Node::root(message).is_some_and(|root| bytes_contain(root.body(), needle))
        || text_contains(message, needle, 0)
}

/// True if the decoded text of a text part of `message`, or of a message it encapsulates
/// (down to the depth limit), contains `needle`.
fn text_contains(message: &Message<'_>, needle: &str, depth: usize) -> bool {
    message.parts.iter().any(|part| match &part.body {
        PartType::Text(text) | PartType::Html(text) => contains(text, needle),
        PartType::Message(nested) if depth < MAX_DEPTH => text_contains(nested, needle, depth + 1),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::SeqRange;
    use SeqNumber::{Last, Value};

    const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
        To: Team: bob@example.org, =?utf-8?q?J=C3=BCrgen?= <juergen@example.net>;\r\n\
        Cc: carol@example.com\r\n\
        Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the\r\n lake\r\n\
        Date: Mon, 31 Dec 2018 23:30:00 -0500\r\n\
        Message-ID: <unique@example.org>\r\n\
        X-Empty:\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\
        \r\n\
        --b\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        Meet at the caf=C3=A9 by the pier.\r\n\
        --b\r\n\
        Content-Type: message/rfc822\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        U3ViamVjdDogaW5uZXIKCnNlY3JldCB3b3JkOiBwZWxpY2FuCg==\r\n\
        --b--\r\n";

    /// 2019-01-01 00:00:00 UTC.
    const NEW_YEAR: i64 = 1_546_300_800;

    fn seen() -> Flags {
        let mut flags = Flags::default();
        flags.insert(&Flag::Seen);
        flags.insert(&Flag::Keyword("$Label1".into()));
        flags
    }

    fn candidate(flags: &Flags) -> Candidate<'_> {
        Candidate {
            seq: 3,
            uid: 30,
            flags,
            recent: false,
            internal_date: NEW_YEAR + 3600,
            size: 2000,
            modseq: 7,
            last_seq: 5,
            last_uid: 50,
        }
    }

    fn date(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    fn set(ranges: &[(SeqNumber, SeqNumber)]) -> SequenceSet {
        SequenceSet(
            ranges
                .iter()
                .map(|&(start, end)| SeqRange { start, end })
                .collect(),
        )
    }

    fn header(name: &str, value: &str) -> SearchKey {
        SearchKey::Header(name.into(), value.into())
    }

    /// Evaluates `key` against MESSAGE with seen flags.
    fn hit(key: SearchKey) -> bool {
        let flags = seen();
        matches(&key, &candidate(&flags), Some(MESSAGE))
    }

    #[test]
    fn sets_with_star_and_reversed_ranges() {
        assert!(in_set(&set(&[(Value(1), Value(4))]), 4, 10));
        assert!(!in_set(&set(&[(Value(1), Value(4))]), 5, 10));
        assert!(in_set(&set(&[(Value(5), Value(1))]), 3, 10));
        assert!(in_set(&set(&[(Value(7), Last)]), 10, 10));
        assert!(!in_set(&set(&[(Value(7), Last)]), 6, 10));
        assert!(in_set(&set(&[(Last, Last)]), 10, 10));
        assert!(in_set(&set(&[(Value(20), Last)]), 15, 10), "20:* is 10:20");
        assert!(in_set(
            &set(&[(Value(2), Value(2)), (Value(9), Last)]),
            9,
            10
        ));
        assert!(!in_set(&set(&[]), 1, 10));
    }

    #[test]
    fn sequence_and_uid_keys_use_their_own_star() {
        assert!(hit(SearchKey::Sequence(set(&[(Value(3), Last)]))));
        assert!(!hit(SearchKey::Sequence(set(&[(Last, Last)]))));
        assert!(hit(SearchKey::Uid(set(&[(Value(30), Value(30))]))));
        assert!(hit(SearchKey::Uid(set(&[(Last, Value(25))]))));
        assert!(!hit(SearchKey::Uid(set(&[(Value(3), Value(3))]))));
    }

    #[test]
    fn flag_keys() {
        assert!(hit(SearchKey::All));
        assert!(hit(SearchKey::Flag(Flag::Seen)));
        assert!(!hit(SearchKey::NotFlag(Flag::Seen)));
        assert!(hit(SearchKey::NotFlag(Flag::Deleted)));
        assert!(hit(SearchKey::Flag(Flag::Keyword("$label1".into()))));
        assert!(hit(SearchKey::NotFlag(Flag::Keyword("$Junk".into()))));
        assert!(!hit(SearchKey::Flag(Flag::Recent)));
        assert!(hit(SearchKey::Old));
        assert!(!hit(SearchKey::New));
    }

    #[test]
    fn recent_new_and_old_follow_the_session() {
        let unseen = Flags::default();
        let flags = seen();
        let recent = |flags| Candidate {
            recent: true,
            ..candidate(flags)
        };
        assert!(matches(
            &SearchKey::Flag(Flag::Recent),
            &recent(&unseen),
            None
        ));
        assert!(matches(&SearchKey::New, &recent(&unseen), None));
        assert!(!matches(&SearchKey::New, &recent(&flags), None));
        assert!(!matches(&SearchKey::Old, &recent(&unseen), None));
        assert!(matches(
            &SearchKey::NotFlag(Flag::Seen),
            &recent(&unseen),
            None
        ));
    }

    #[test]
    fn address_keys_match_names_and_addresses() {
        assert!(hit(header("FROM", "alice@example.org")));
        assert!(hit(header("FROM", "Alice")));
        assert!(hit(header("FROM", "ALICE <alice@")));
        assert!(hit(header("FROM", "example.ORG")));
        assert!(!hit(header("FROM", "bob")));
        assert!(hit(header("TO", "jürgen")), "decoded display name");
        assert!(hit(header("TO", "JÜRGEN <juergen@")));
        assert!(hit(header("TO", "bob@example.org")), "a group member");
        assert!(hit(header("TO", "team")), "the group name");
        assert!(hit(header("CC", "carol")));
        assert!(!hit(header("BCC", "")), "no Bcc field");
    }

    #[test]
    fn subject_and_header_keys() {
        assert!(hit(header("SUBJECT", "grüße")), "decoded encoded word");
        assert!(hit(header("SUBJECT", "from the lake")), "unfolded");
        assert!(hit(header("SUBJECT", "=?utf-8?q?")), "as stored");
        assert!(!hit(header("SUBJECT", "pier")));
        assert!(hit(header("MESSAGE-ID", "<unique@")));
        assert!(hit(header("X-EMPTY", "")), "an empty field exists");
        assert!(!hit(header("X-MISSING", "")));
        assert!(!hit(header("X-EMPTY", "x")));
    }

    #[test]
    fn body_and_text_keys() {
        assert!(
            hit(SearchKey::Body("CAFÉ".into())),
            "quoted-printable decoded"
        );
        assert!(hit(SearchKey::Body("caf=C3=A9".into())), "as stored");
        assert!(
            hit(SearchKey::Body("pelican".into())),
            "base64 attached message"
        );
        assert!(!hit(SearchKey::Body("alice".into())), "header only");
        assert!(hit(SearchKey::Text("alice".into())));
        assert!(
            hit(SearchKey::Text("x-empty".into())),
            "field names are header text"
        );
        assert!(hit(SearchKey::Text("Grüße".into())));
        assert!(hit(SearchKey::Text("pier".into())));
        assert!(!hit(SearchKey::Text("walrus".into())));
    }

    #[test]
    fn only_date_keys_need_the_internal_date() {
        let since = SearchKey::Since(date(2019, 1, 1));
        assert!(needs_internal_date(&SearchKey::Not(Box::new(
            since.clone()
        ))));
        assert!(needs_internal_date(&SearchKey::And(vec![
            SearchKey::All,
            since
        ])));
        assert!(!needs_internal_date(&SearchKey::SentSince(date(
            2019, 1, 1
        ))));
        assert!(!needs_internal_date(&SearchKey::Flag(Flag::Seen)));
    }

    #[test]
    fn internal_date_keys_compare_utc_days() {
        assert!(hit(SearchKey::On(date(2019, 1, 1))));
        assert!(!hit(SearchKey::On(date(2018, 12, 31))));
        assert!(hit(SearchKey::Before(date(2019, 1, 2))));
        assert!(!hit(SearchKey::Before(date(2019, 1, 1))));
        assert!(hit(SearchKey::Since(date(2019, 1, 1))));
        assert!(!hit(SearchKey::Since(date(2019, 1, 2))));
    }

    #[test]
    fn sent_date_keys_use_the_header_zone() {
        assert!(hit(SearchKey::SentOn(date(2018, 12, 31))));
        assert!(!hit(SearchKey::SentOn(date(2019, 1, 1))));
        assert!(hit(SearchKey::SentBefore(date(2019, 1, 1))));
        assert!(!hit(SearchKey::SentBefore(date(2018, 12, 31))));
        assert!(hit(SearchKey::SentSince(date(2018, 12, 31))));
        assert!(!hit(SearchKey::SentSince(date(2019, 1, 1))));
        let flags = seen();
        let undated = b"Subject: x\r\n\r\n";
        let key = SearchKey::SentSince(date(1970, 1, 1));
        assert!(!matches(&key, &candidate(&flags), Some(undated)));
    }

    #[test]
    fn size_keys_are_strict() {
        assert!(hit(SearchKey::ModSeq(7)));
        assert!(!hit(SearchKey::ModSeq(8)));
        assert!(hit(SearchKey::Larger(1999)));
        assert!(!hit(SearchKey::Larger(2000)));
        assert!(hit(SearchKey::Smaller(2001)));
        assert!(!hit(SearchKey::Smaller(2000)));
    }

    #[test]
    fn boolean_combinations() {
        let yes = || SearchKey::Flag(Flag::Seen);
        let no = || SearchKey::Flag(Flag::Deleted);
        assert!(hit(SearchKey::And(vec![])));
        assert!(hit(SearchKey::And(vec![yes(), yes()])));
        assert!(!hit(SearchKey::And(vec![yes(), no()])));
        assert!(hit(SearchKey::Or(Box::new(no()), Box::new(yes()))));
        assert!(!hit(SearchKey::Or(Box::new(no()), Box::new(no()))));
        assert!(hit(SearchKey::Not(Box::new(no()))));
        let nested = SearchKey::And(vec![
            SearchKey::Not(Box::new(SearchKey::Or(
                Box::new(no()),
                Box::new(header("FROM", "mallory")),
            ))),
            SearchKey::Or(Box::new(SearchKey::Body("pelican".into())), Box::new(no())),
        ]);
        assert!(hit(nested));
    }

    #[test]
    fn content_keys_need_content_and_fail_without_it() {
        assert!(!needs_content(&SearchKey::All));
        assert!(!needs_content(&SearchKey::Before(date(2020, 1, 1))));
        assert!(needs_content(&SearchKey::SentBefore(date(2020, 1, 1))));
        assert!(needs_content(&SearchKey::Body("x".into())));
        assert!(needs_content(&SearchKey::Text("x".into())));
        let deep = SearchKey::And(vec![
            SearchKey::Old,
            SearchKey::Or(
                Box::new(SearchKey::New),
                Box::new(SearchKey::Not(Box::new(header("FROM", "x")))),
            ),
        ]);
        assert!(needs_content(&deep));
        let flags = seen();
        let from = header("FROM", "alice");
        assert!(!matches(&from, &candidate(&flags), None));
        assert!(matches(
            &SearchKey::Not(Box::new(from)),
            &candidate(&flags),
            None
        ));
    }

    #[test]
    fn dates_of_unix_seconds() {
        assert_eq!(date_of(0), date(1970, 1, 1));
        assert_eq!(date_of(86_399), date(1970, 1, 1));
        assert_eq!(date_of(86_400), date(1970, 1, 2));
        assert_eq!(date_of(-1), date(1969, 12, 31));
        assert_eq!(date_of(NEW_YEAR - 1), date(2018, 12, 31));
        assert_eq!(date_of(951_782_400), date(2000, 2, 29));
    }
}
