//! The grammar of the extensions that add commands or arguments to existing ones:
//! ESEARCH's RETURN (RFC 4731), SORT and THREAD (RFC 5256, RFC 5957), MULTIAPPEND
//! (RFC 3502) and QUOTA (RFC 9208).

use super::super::super::command::{
    AppendMessage, Command, SearchKey, SearchReturn, SortCriterion, SortKey, ThreadAlgorithm,
};
use super::super::dates::parse_date_time;
use super::{Cursor, Parsed, shorten};

impl Cursor {
    /// `RETURN (option ...)` after SEARCH; the caller has eaten RETURN.
    pub(super) fn search_return(&mut self) -> Parsed<SearchReturn> {
        self.sp()?;
        let mut returning = SearchReturn::default();
        self.paren_list(true, |c| {
            match c.keyword("a search return option")?.as_str() {
                "MIN" => returning.min = true,
                "MAX" => returning.max = true,
                "ALL" => returning.all = true,
                "COUNT" => returning.count = true,
                "SAVE" => returning.save = true,
                other => return Err(format!("unknown search return option {}", shorten(other))),
            }
            Ok(())
        })?;
        // RFC 4731 §3.1: `RETURN ()` means `RETURN (ALL)`.
        if returning == SearchReturn::default() {
            returning.all = true;
        }
        self.sp()?;
        Ok(returning)
    }

    /// `SORT (criteria) charset key ...`
    pub(super) fn sort(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        let order = self.paren_list(false, Self::sort_criterion)?;
        let charset = self.sp_astring("a charset")?.to_ascii_uppercase();
        self.sp()?;
        let criteria = self.search_keys()?;
        Ok(Command::Sort {
            uid,
            order,
            charset,
            criteria,
        })
    }

    /// `[REVERSE SP] key`
    fn sort_criterion(&mut self) -> Parsed<SortCriterion> {
        let mut name = self.keyword("a sort key")?;
        let reverse = name == "REVERSE";
        if reverse {
            self.sp()?;
            name = self.keyword("a sort key")?;
        }
        let key = match name.as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            other => return Err(format!("unknown sort key {}", shorten(other))),
        };
        Ok(SortCriterion { reverse, key })
    }

    /// `THREAD algorithm charset key ...`
    pub(super) fn thread(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        let algorithm = match self.keyword("a thread algorithm")?.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            other => return Err(format!("unknown thread algorithm {}", shorten(other))),
        };
        let charset = self.sp_astring("a charset")?.to_ascii_uppercase();
        self.sp()?;
        let criteria = self.search_keys()?;
        Ok(Command::Thread {
            uid,
            algorithm,
            charset,
            criteria,
        })
    }

    /// `APPEND mailbox 1*(SP [(flags) SP] ["date-time" SP] literal)`: MULTIAPPEND's
    /// messages follow one another, each with its own flags and date.
    pub(super) fn append(&mut self) -> Parsed<Command> {
        let mailbox = self.mailbox_arg()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            messages.push(self.append_message()?);
        }
        if messages.is_empty() {
            return Err("expected SP and a message".to_owned());
        }
        Ok(Command::Append { mailbox, messages })
    }

    /// One message of an APPEND: `[(flags) SP] ["date-time" SP] literal`.
    fn append_message(&mut self) -> Parsed<AppendMessage> {
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(parse_date_time(&self.quoted()?)?);
            self.sp()?;
        }
        // RFC 6855 §4: `UTF8 (literal8)` carries a message with UTF-8 header fields.
        let utf8 = matches!(self.peek(), Some(b'U' | b'u'));
        if utf8 {
            let word = self.take_while(|b| b.is_ascii_alphanumeric()).to_vec();
            if !word.eq_ignore_ascii_case(b"UTF8") {
                return Err("expected the message as a literal".to_owned());
            }
            self.sp()?;
            self.expect_byte(b'(', "'(' after UTF8")?;
            if !self.at_literal8() {
                return Err("UTF8 data must be a literal8".to_owned());
            }
        }
        let binary = self.at_literal8();
        let message = self
            .take_literal()
            .ok_or_else(|| "expected the message as a literal".to_owned())?;
        if utf8 {
            self.expect_byte(b')', "')' after the UTF8 data")?;
        }
        Ok(AppendMessage {
            flags,
            date,
            message,
            binary,
            utf8,
        })
    }

    /// `SETQUOTA root (resource limit ...)`: checked for form only, as it is refused.
    pub(super) fn set_quota(&mut self) -> Parsed<Command> {
        let root = self.sp_astring("a quota root")?;
        self.sp()?;
        self.paren_list(true, |c| {
            c.atom("a resource name")?;
            c.sp()?;
            c.number("a limit")
        })?;
        Ok(Command::SetQuota(root))
    }

    /// The search keys after SEARCH's, SORT's or THREAD's other arguments; the top level is
    /// always an `And` of them.
    pub(super) fn search_keys(&mut self) -> Parsed<SearchKey> {
        let mut keys = vec![self.search_key(1)?];
        while self.eat(b' ') {
            keys.push(self.search_key(1)?);
        }
        Ok(SearchKey::And(keys))
    }
}
