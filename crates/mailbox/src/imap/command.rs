//! IMAP commands as the parser yields them: a typed tree the session executes, so the
//! session never looks at raw client text. Mailbox names stay as the client wrote them
//! (modified UTF-7); INBOX is matched case-insensitively by the session.

/// Flags and the ways STORE changes them are the store's types (Sieve shares them).
pub use posthorn_maildir::store::flags::{Flag, StoreOperation};

/// One tagged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's tag, echoed in the completion reply.
    pub tag: String,
    /// What it asks for.
    pub command: Command,
}

/// The commands we implement (RFC 3501, RFC 9051 essentials, and the extensions we
/// announce: IDLE, MOVE, UNSELECT, ID, NAMESPACE, ENABLE, LITERAL+, SPECIAL-USE,
/// LIST-EXTENDED's selection and return options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// CAPABILITY
    Capability,
    /// NOOP
    Noop,
    /// LOGOUT
    Logout,
    /// STARTTLS
    StartTls,
    /// ID (RFC 2971): the client's field/value pairs, empty for `ID NIL`.
    Id(Vec<(String, Option<String>)>),
    /// ENABLE (RFC 5161): capability names as given.
    Enable(Vec<String>),
    /// LOGIN user password
    Login {
        /// The login name.
        user: String,
        /// The password.
        password: String,
    },
    /// AUTHENTICATE mechanism [initial-response] (RFC 4959 SASL-IR).
    Authenticate {
        /// The SASL mechanism, upper-cased.
        mechanism: String,
        /// The base64 initial response (`=` for an empty one), if sent.
        initial: Option<String>,
    },
    /// NAMESPACE (RFC 2342)
    Namespace,
    /// SELECT or EXAMINE.
    Select {
        /// The mailbox name.
        mailbox: String,
        /// True for EXAMINE.
        read_only: bool,
        /// CONDSTORE and QRESYNC parameters (RFC 7162).
        params: SelectParams,
    },
    /// CREATE mailbox
    Create(String),
    /// DELETE mailbox
    Delete(String),
    /// RENAME from to
    Rename {
        /// The existing name.
        from: String,
        /// The new name.
        to: String,
    },
    /// SUBSCRIBE mailbox
    Subscribe(String),
    /// UNSUBSCRIBE mailbox
    Unsubscribe(String),
    /// LIST, basic or extended (RFC 5258 selection and return options we support).
    List(ListCommand),
    /// LSUB reference pattern
    Lsub {
        /// The reference name.
        reference: String,
        /// The pattern with `*` and `%` wildcards.
        pattern: String,
    },
    /// STATUS mailbox (items)
    Status {
        /// The mailbox name.
        mailbox: String,
        /// The items asked for, in order.
        items: Vec<StatusItem>,
    },
    /// APPEND mailbox [flags] [date-time] literal, with MULTIAPPEND (RFC 3502) several
    /// messages, stored all or none.
    Append {
        /// The target mailbox.
        mailbox: String,
        /// The messages, at least one.
        messages: Vec<AppendMessage>,
    },
    /// CHECK
    Check,
    /// CLOSE
    Close,
    /// UNSELECT (RFC 3691)
    Unselect,
    /// EXPUNGE, or UID EXPUNGE set (RFC 4315) when `uids` is given.
    Expunge {
        /// Only these UIDs (UID EXPUNGE).
        uids: Option<SequenceSet>,
    },
    /// SEARCH / UID SEARCH
    Search {
        /// UID SEARCH: answer with UIDs.
        uid: bool,
        /// The CHARSET argument, if given (upper-cased).
        charset: Option<String>,
        /// The criteria, all of which must match (an `And` of the top-level keys).
        criteria: SearchKey,
        /// `RETURN (...)` (RFC 4731): answer with ESEARCH; None for a plain SEARCH.
        returning: Option<SearchReturn>,
    },
    /// SORT / UID SORT (RFC 5256)
    Sort {
        /// UID SORT: answer with UIDs.
        uid: bool,
        /// The sort criteria, most significant first.
        order: Vec<SortCriterion>,
        /// The charset (upper-cased).
        charset: String,
        /// Which messages take part.
        criteria: SearchKey,
    },
    /// THREAD / UID THREAD (RFC 5256)
    Thread {
        /// UID THREAD: answer with UIDs.
        uid: bool,
        /// How threads are found.
        algorithm: ThreadAlgorithm,
        /// The charset (upper-cased).
        charset: String,
        /// Which messages take part.
        criteria: SearchKey,
    },
    /// GETQUOTA root (RFC 9208)
    GetQuota(String),
    /// GETQUOTAROOT mailbox (RFC 9208)
    GetQuotaRoot(String),
    /// SETQUOTA root (limits): parsed so that it can be refused.
    SetQuota(String),
    /// FETCH / UID FETCH
    Fetch {
        /// Set given as UIDs.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// What to return, macros (ALL/FAST/FULL) expanded.
        items: Vec<FetchAttribute>,
        /// CHANGEDSINCE and VANISHED (RFC 7162).
        modifiers: FetchModifiers,
    },
    /// STORE / UID STORE
    Store {
        /// Set given as UIDs.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// Replace, add or remove.
        operation: StoreOperation,
        /// `.SILENT`: no untagged FETCH for the change.
        silent: bool,
        /// The flags.
        flags: Vec<Flag>,
        /// UNCHANGEDSINCE (RFC 7162 §3.1.3): only messages not changed after it.
        unchanged_since: Option<u64>,
    },
    /// COPY / UID COPY
    Copy {
        /// Set given as UIDs.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// The target mailbox.
        mailbox: String,
    },
    /// MOVE / UID MOVE (RFC 6851)
    Move {
        /// Set given as UIDs.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// The target mailbox.
        mailbox: String,
    },
    /// IDLE (RFC 2177)
    Idle,
}

/// SELECT and EXAMINE parameters (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    /// `(CONDSTORE)`
    pub condstore: bool,
    /// `(QRESYNC (...))`
    pub qresync: Option<Qresync>,
}

/// What a QRESYNC client remembers of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    /// The UIDVALIDITY it knows; another one means its cache is void.
    pub uid_validity: u32,
    /// The HIGHESTMODSEQ it last saw.
    pub modseq: u64,
    /// The UIDs it knows, if it said.
    pub known_uids: Option<SequenceSet>,
}

/// FETCH modifiers (RFC 7162 §3.1.4.1, §3.2.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchModifiers {
    /// CHANGEDSINCE: only messages whose MODSEQ is above it.
    pub changed_since: Option<u64>,
    /// VANISHED: also the UIDs of the set expunged since then (UID FETCH only).
    pub vanished: bool,
}

/// LIST with its RFC 5258 options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    /// The reference name.
    pub reference: String,
    /// One or more patterns with `*` and `%` wildcards.
    pub patterns: Vec<String>,
    /// Selection option SUBSCRIBED.
    pub subscribed: bool,
    /// Selection option SPECIAL-USE (RFC 6154).
    pub special_use: bool,
    /// Selection option RECURSIVEMATCH: a parent whose descendants meet the selection
    /// but not the pattern is listed with CHILDINFO.
    pub recursive_match: bool,
    /// The command used RFC 5258's extended syntax (selection or return options, or a
    /// list of patterns), so the client knows `\NonExistent`.
    pub extended: bool,
    /// Return option SUBSCRIBED.
    pub return_subscribed: bool,
    /// Return option SPECIAL-USE.
    pub return_special_use: bool,
    /// Return option CHILDREN.
    pub return_children: bool,
    /// Return option STATUS (RFC 5819), with its items.
    pub return_status: Option<Vec<StatusItem>>,
}

/// A STATUS item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// MESSAGES
    Messages,
    /// RECENT
    Recent,
    /// UIDNEXT
    UidNext,
    /// UIDVALIDITY
    UidValidity,
    /// UNSEEN
    Unseen,
    /// SIZE (RFC 8438)
    Size,
    /// DELETED (RFC 9051)
    Deleted,
    /// HIGHESTMODSEQ (RFC 7162)
    HighestModSeq,
}

/// A sequence set (`1:4,7,9:*`), or `$`, the saved search result (RFC 5182 §2.2), which
/// is the only set without ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<SeqRange>);

impl SequenceSet {
    /// `$`.
    pub fn saved() -> Self {
        SequenceSet(Vec::new())
    }

    /// True for `$`.
    pub fn is_saved(&self) -> bool {
        self.0.is_empty()
    }
}

/// One range of a sequence set; a single number has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// One end (not necessarily the lower: `5:2` is allowed).
    pub start: SeqNumber,
    /// The other end.
    pub end: SeqNumber,
}

/// A number in a sequence set, or `*`, the largest in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    /// A number (never 0).
    Value(u32),
    /// `*`
    Last,
}

/// A FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttribute {
    /// FLAGS
    Flags,
    /// UID
    Uid,
    /// INTERNALDATE
    InternalDate,
    /// RFC822.SIZE
    Rfc822Size,
    /// ENVELOPE
    Envelope,
    /// BODY (the structure without extension data)
    Body,
    /// MODSEQ (RFC 7162)
    ModSeq,
    /// BODYSTRUCTURE
    BodyStructure,
    /// RFC822 (same as BODY[], sets \Seen)
    Rfc822,
    /// RFC822.HEADER (same as BODY.PEEK[HEADER])
    Rfc822Header,
    /// RFC822.TEXT (same as BODY[TEXT], sets \Seen)
    Rfc822Text,
    /// BODY[section]<partial> or BODY.PEEK[...]
    BodySection {
        /// PEEK: do not set \Seen.
        peek: bool,
        /// Which part.
        section: Section,
        /// `<origin.length>`: octets from `origin`, at most `length`.
        partial: Option<(u32, u32)>,
    },
    /// BINARY[part]<partial> or BINARY.PEEK[...] (RFC 3516 §4.2): the part's content with
    /// its Content-Transfer-Encoding undone.
    Binary {
        /// PEEK: do not set \Seen.
        peek: bool,
        /// Part numbers, each from 1; empty for the whole message.
        part: Vec<u32>,
        /// `<origin.length>` of the decoded octets.
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[part] (RFC 3516 §4.2): the size of the decoded content.
    BinarySize {
        /// Part numbers, each from 1; empty for the whole message.
        part: Vec<u32>,
    },
}

/// A section specification: a part path (`1.2`, empty for the whole message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// Part numbers, each from 1.
    pub part: Vec<u32>,
    /// HEADER, HEADER.FIELDS, TEXT or MIME; `None` for the whole part.
    pub text: Option<SectionText>,
}

/// The text part of a section specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// HEADER
    Header,
    /// HEADER.FIELDS (names) or HEADER.FIELDS.NOT (names); names upper-cased.
    HeaderFields {
        /// True for HEADER.FIELDS.NOT.
        not: bool,
        /// The field names, upper-cased.
        fields: Vec<String>,
    },
    /// TEXT
    Text,
    /// MIME (only with a part number)
    Mime,
}

/// A calendar date as SEARCH compares them (no time, no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// The year.
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
}

/// A SEARCH key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// ALL
    All,
    /// Several keys that must all match (a parenthesised list, or the top level).
    And(Vec<SearchKey>),
    /// OR a b
    Or(Box<SearchKey>, Box<SearchKey>),
    /// NOT a
    Not(Box<SearchKey>),
    /// A sequence set of message numbers.
    Sequence(SequenceSet),
    /// UID set
    Uid(SequenceSet),
    /// ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, RECENT, KEYWORD k.
    Flag(Flag),
    /// UNANSWERED, UNDELETED, UNDRAFT, UNFLAGGED, UNSEEN, UNKEYWORD k.
    NotFlag(Flag),
    /// NEW: recent and not seen.
    New,
    /// OLD: not recent.
    Old,
    /// FROM, TO, CC, BCC, SUBJECT, HEADER name value: the field (upper-cased name)
    /// contains the string, case-insensitively. An empty value matches any message
    /// that has the field.
    Header(String, String),
    /// BODY s: the body contains s.
    Body(String),
    /// TEXT s: the header or the body contains s.
    Text(String),
    /// BEFORE date (internal date)
    Before(Date),
    /// ON date
    On(Date),
    /// SINCE date
    Since(Date),
    /// SENTBEFORE date (Date: header)
    SentBefore(Date),
    /// SENTON date
    SentOn(Date),
    /// SENTSINCE date
    SentSince(Date),
    /// LARGER n
    Larger(u64),
    /// SMALLER n
    Smaller(u64),
    /// MODSEQ [entry type] n (RFC 7162 §3.1.5): MODSEQ at least n; the entry is ignored,
    /// as all flags share the message's one MODSEQ.
    ModSeq(u64),
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// Flags to set on the new message.
    pub flags: Vec<Flag>,
    /// The internal date as Unix seconds, if given.
    pub date: Option<i64>,
    /// The message itself.
    pub message: Vec<u8>,
    /// Sent as a literal8 (RFC 3516 §4.4): it may hold binary content.
    pub binary: bool,
    /// Sent as APPEND's UTF8 data item (RFC 6855 §4).
    pub utf8: bool,
}

/// ESEARCH's return options (RFC 4731 §3.1); all false (`RETURN ()`) means ALL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchReturn {
    /// MIN: the lowest match.
    pub min: bool,
    /// MAX: the highest match.
    pub max: bool,
    /// ALL: every match, as a sequence set.
    pub all: bool,
    /// COUNT: how many matched.
    pub count: bool,
    /// SAVE (RFC 5182): keep the matches for `$`.
    pub save: bool,
}

/// One SORT criterion (RFC 5256 §3, RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    /// REVERSE: this key in descending order.
    pub reverse: bool,
    /// The key.
    pub key: SortKey,
}

/// What SORT orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// ARRIVAL: the internal date.
    Arrival,
    /// CC: the mailbox of the first Cc address.
    Cc,
    /// DATE: the sent date, else the internal date.
    Date,
    /// FROM: the mailbox of the first From address.
    From,
    /// SIZE: RFC822.SIZE.
    Size,
    /// SUBJECT: the base subject.
    Subject,
    /// TO: the mailbox of the first To address.
    To,
    /// DISPLAYFROM (RFC 5957): the first From's display name, else its address.
    DisplayFrom,
    /// DISPLAYTO (RFC 5957): the first To's display name, else its address.
    DisplayTo,
}

/// THREAD's algorithms (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    /// ORDEREDSUBJECT: by base subject, then sent date.
    OrderedSubject,
    /// REFERENCES: by Message-ID, In-Reply-To and References, then base subject.
    References,
}
