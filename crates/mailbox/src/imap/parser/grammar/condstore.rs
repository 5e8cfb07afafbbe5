//! The arguments RFC 7162 adds to commands: SELECT's CONDSTORE and QRESYNC parameters,
//! FETCH's CHANGEDSINCE and VANISHED modifiers, STORE's UNCHANGEDSINCE and SEARCH's MODSEQ.

use super::super::super::command::{FetchModifiers, Qresync, SearchKey, SelectParams};
use super::{Cursor, Parsed, shorten};

/// The largest mod-sequence (RFC 7162 §7: mod-sequence-value is a 63-bit number).
const MAX_MODSEQ: u64 = i64::MAX as u64;

impl Cursor {
    /// `(param ...)` after SELECT's or EXAMINE's mailbox name.
    pub(super) fn select_params(&mut self) -> Parsed<SelectParams> {
        let mut params = SelectParams::default();
        self.paren_list(false, |c| match c.keyword("a SELECT parameter")?.as_str() {
            "CONDSTORE" => {
                params.condstore = true;
                Ok(())
            }
            "QRESYNC" => {
                c.sp()?;
                params.qresync = Some(c.qresync()?);
                Ok(())
            }
            other => Err(format!("unknown SELECT parameter {}", shorten(other))),
        })?;
        Ok(params)
    }

    /// `(uidvalidity modseq [known-uids [(known-sequence-set known-uid-set)]])`. The
    /// sequence match data is checked and dropped: the folder remembers its expunges, so
    /// it needs no help from the client to narrow VANISHED down (§3.2.5.2).
    fn qresync(&mut self) -> Parsed<Qresync> {
        self.expect_byte(b'(', "'(' after QRESYNC")?;
        let uid_validity = self.nz_number("a UIDVALIDITY")?;
        self.sp()?;
        let modseq = self.mod_sequence()?;
        let mut known_uids = None;
        if self.eat(b' ') {
            if self.peek() != Some(b'(') {
                known_uids = Some(self.sequence_set()?);
                if !self.eat(b' ') {
                    self.expect_byte(b')', "')' after QRESYNC's arguments")?;
                    return Ok(Qresync {
                        uid_validity,
                        modseq,
                        known_uids,
                    });
                }
            }
            self.expect_byte(b'(', "'(' before the sequence match data")?;
            self.sequence_set()?;
            self.sp()?;
            self.sequence_set()?;
            self.expect_byte(b')', "')' after the sequence match data")?;
        }
        self.expect_byte(b')', "')' after QRESYNC's arguments")?;
        Ok(Qresync {
            uid_validity,
            modseq,
            known_uids,
        })
    }

    /// `(CHANGEDSINCE n [VANISHED])` after FETCH's items, in either order.
    pub(super) fn fetch_modifiers(&mut self) -> Parsed<FetchModifiers> {
        let mut modifiers = FetchModifiers::default();
        self.paren_list(false, |c| {
            match c.keyword("a FETCH modifier")?.as_str() {
                "CHANGEDSINCE" => {
                    c.sp()?;
                    modifiers.changed_since = Some(c.mod_sequence()?);
                }
                "VANISHED" => modifiers.vanished = true,
                other => return Err(format!("unknown FETCH modifier {}", shorten(other))),
            }
            Ok(())
        })?;
        // VANISHED only goes with CHANGEDSINCE (RFC 7162 §3.2.6).
        if modifiers.vanished && modifiers.changed_since.is_none() {
            return Err("VANISHED needs CHANGEDSINCE".to_owned());
        }
        Ok(modifiers)
    }

    /// `(UNCHANGEDSINCE n)` between STORE's set and its item.
    pub(super) fn store_modifiers(&mut self) -> Parsed<u64> {
        let mut since = None;
        self.paren_list(false, |c| match c.keyword("a STORE modifier")?.as_str() {
            "UNCHANGEDSINCE" => {
                c.sp()?;
                since = Some(c.number("a mod-sequence")?);
                Ok(())
            }
            other => Err(format!("unknown STORE modifier {}", shorten(other))),
        })?;
        since.ok_or_else(|| "expected UNCHANGEDSINCE".to_owned())
    }

    /// The arguments of SEARCH's `MODSEQ [entry-name entry-type] n`.
    pub(super) fn search_modseq(&mut self) -> Parsed<SearchKey> {
        self.sp()?;
        if self.peek() == Some(b'"') {
            self.quoted()?;
            self.sp()?;
            let kind = self.keyword("an entry type")?;
            if !matches!(kind.as_str(), "PRIV" | "SHARED" | "ALL") {
                return Err(format!("unknown entry type {}", shorten(&kind)));
            }
            self.sp()?;
        }
        Ok(SearchKey::ModSeq(self.number("a mod-sequence")?))
    }

    /// A mod-sequence value up to 2^63 - 1.
    fn mod_sequence(&mut self) -> Parsed<u64> {
        match self.number("a mod-sequence")? {
            n if n > MAX_MODSEQ => Err(format!("mod-sequence {n} is too large")),
            n => Ok(n),
        }
    }
}
