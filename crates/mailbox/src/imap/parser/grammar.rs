//! The grammar layer: one assembled command (its lines, with the literals between them)
//! parsed into the typed tree of `command` (RFC 9051 §9): keywords in any case, numbers
//! checked for overflow, nesting bounded.

use super::super::command::{
    Command, Date, FetchAttribute, FetchModifiers, Flag, ListCommand, Request, SearchKey, Section,
    SectionText, SelectParams, SeqNumber, SeqRange, SequenceSet, StatusItem, StoreOperation,
};
use super::dates::parse_search_date;
use super::*;

mod condstore;
mod extensions;

/// Deepest nesting of parenthesised lists and of SEARCH's NOT/OR we accept.
const MAX_DEPTH: usize = 32;
/// Longest piece of client text quoted back in an error message.
const ECHO_MAX: usize = 40;

/// The result of parsing part of a command: the message explains what is wrong.
pub(super) type Parsed<T> = Result<T, String>;

/// Parses one assembled command into a request, or the BAD it deserves.
pub(super) fn parse_request(
    texts: Vec<Vec<u8>>,
    literals: Vec<Vec<u8>>,
    binary: Vec<bool>,
) -> Input {
    let mut cursor = Cursor {
        texts,
        literals,
        binary,
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
    /// Which literals are literal8.
    binary: Vec<bool>,
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

    /// True when the literal that comes next is a literal8.
    fn at_literal8(&self) -> bool {
        self.at_literal() && self.binary.get(self.seg).copied().unwrap_or(false)
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
        // RFC 3516 §4.4: literal8 carries message data only, never a string argument.
        if self.at_literal8() {
            return Err("literal8 where a string is expected".to_owned());
        }
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
}

/// Shared arguments: sequence sets, flags, dates.
impl Cursor {
    /// A sequence set: `1`, `2:4`, `*`, `1,3:*`.
    fn sequence_set(&mut self) -> Parsed<SequenceSet> {
        if self.eat(b'$') {
            return Ok(SequenceSet::saved());
        }
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
            "HIGHESTMODSEQ" => Ok(StatusItem::HighestModSeq),
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
            "SORT" => self.sort(false)?,
            "THREAD" => self.thread(false)?,
            "GETQUOTA" => Command::GetQuota(self.sp_astring("a quota root")?),
            "GETQUOTAROOT" => Command::GetQuotaRoot(self.mailbox_arg()?),
            "SETQUOTA" => self.set_quota()?,
            "UID" => self.uid()?,
            other => return Err(format!("unknown command {}", shorten(other))),
        };
        self.end()?;
        Ok(command)
    }

    /// UID FETCH, STORE, COPY, MOVE, SEARCH, SORT, THREAD or EXPUNGE.
    fn uid(&mut self) -> Parsed<Command> {
        self.sp()?;
        match self.keyword("a command after UID")?.as_str() {
            "FETCH" => self.fetch(true),
            "STORE" => self.store(true),
            "COPY" => self.copy(true),
            "MOVE" => self.move_(true),
            "SEARCH" => self.search(true),
            "SORT" => self.sort(true),
            "THREAD" => self.thread(true),
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

    /// `SELECT mailbox [(params)]` or EXAMINE.
    fn select(&mut self, read_only: bool) -> Parsed<Command> {
        let mailbox = self.mailbox_arg()?;
        let params = if self.eat(b' ') {
            self.select_params()?
        } else {
            SelectParams::default()
        };
        Ok(Command::Select {
            mailbox,
            read_only,
            params,
        })
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
            list.extended = true;
            self.paren_list(true, |c| c.selection_option(&mut list))?;
            // RFC 5258 §3: RECURSIVEMATCH alone (or with REMOTE only) is an error.
            if list.recursive_match && !list.subscribed && !list.special_use {
                return Err("RECURSIVEMATCH needs another selection option".to_owned());
            }
            self.sp()?;
        }
        list.reference = self.astring("a reference name")?;
        self.sp()?;
        list.patterns = if self.peek() == Some(b'(') {
            list.extended = true;
            self.paren_list(false, Self::list_mailbox)?
        } else {
            vec![self.list_mailbox()?]
        };
        if self.eat(b' ') {
            if !self.eat_keyword("RETURN") {
                return Err("expected RETURN".to_owned());
            }
            list.extended = true;
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
            "RECURSIVEMATCH" => list.recursive_match = true,
            "REMOTE" => {}
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
        let modifiers = if self.eat(b' ') {
            self.fetch_modifiers()?
        } else {
            FetchModifiers::default()
        };
        Ok(Command::Fetch {
            uid,
            set,
            items,
            modifiers,
        })
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
            "MODSEQ" => A::ModSeq,
            "RFC822" => A::Rfc822,
            "RFC822.HEADER" => A::Rfc822Header,
            "RFC822.TEXT" => A::Rfc822Text,
            "BODY" if self.peek() == Some(b'[') => self.body_section(false)?,
            "BODY" => A::Body,
            "BODY.PEEK" => self.body_section(true)?,
            "BINARY" => self.binary_section(false)?,
            "BINARY.PEEK" => self.binary_section(true)?,
            "BINARY.SIZE" => A::BinarySize {
                part: self.section_binary()?,
            },
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

    /// `[part]<origin.length>` after BINARY or BINARY.PEEK (RFC 3516 §6).
    fn binary_section(&mut self, peek: bool) -> Parsed<FetchAttribute> {
        let part = self.section_binary()?;
        let partial = if self.eat(b'<') {
            Some(self.partial()?)
        } else {
            None
        };
        Ok(FetchAttribute::Binary {
            peek,
            part,
            partial,
        })
    }

    /// `[1.2.3]` or `[]`: a binary section names parts only (RFC 3516 §6).
    fn section_binary(&mut self) -> Parsed<Vec<u32>> {
        self.expect_byte(b'[', "'[' after BINARY")?;
        let mut part = Vec::new();
        if !self.eat(b']') {
            loop {
                part.push(self.nz_number("a part number")?);
                if !self.eat(b'.') {
                    break;
                }
            }
            self.expect_byte(b']', "']' after the part")?;
        }
        Ok(part)
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
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            unchanged_since = Some(self.store_modifiers()?);
            self.sp()?;
        }
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
            unchanged_since,
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

    /// `SEARCH [RETURN (options)] [CHARSET name] key key ...`; the top level is always an `And` of its keys,
    /// even when there is only one, so the session has a single shape to evaluate.
    fn search(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        let returning = if self.eat_keyword("RETURN") {
            Some(self.search_return()?)
        } else {
            None
        };
        let mut charset = None;
        if self.eat_keyword("CHARSET") {
            charset = Some(self.sp_astring("a charset")?.to_ascii_uppercase());
            self.sp()?;
        }
        Ok(Command::Search {
            uid,
            charset,
            criteria: self.search_keys()?,
            returning,
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
            Some(b'0'..=b'9' | b'*' | b'$') => Ok(SearchKey::Sequence(self.sequence_set()?)),
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
            "MODSEQ" => self.search_modseq()?,
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

/// The value of a run of ASCII digits, None if it overflows.
pub(super) fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

/// ATOM-CHAR of RFC 3501: printable ASCII except the atom-specials.
pub(super) fn is_atom_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR: an atom char or `]`.
pub(super) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// A tag is made of ASTRING-CHARs other than `+`.
pub(super) fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// list-char: an astring char or one of the wildcards.
pub(super) fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// Bytes known to be ASCII as a String.
pub(super) fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Client text cut short enough to quote in a response.
pub(super) fn shorten(text: &str) -> String {
    if text.chars().count() <= ECHO_MAX {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(ECHO_MAX).collect();
    short.push_str("...");
    short
}
