//! Message flags and how Maildir keeps them: the letters after `:2,` in the file name
//! (D F P R S T, in ASCII order; P, "passed", is the keyword `$Forwarded`), and keywords as the letters `a`–`z`, each standing for a
//! keyword listed in the folder's index (as Dovecot does with `dovecot-keywords`).
//!
//! The flags are IMAP's (RFC 3501 §2.3.2), and Sieve's `imap4flags` names them the same
//! way (RFC 5232), so the types are the store's and the IMAP parser re-exports them.

/// A message flag: a system flag or a keyword.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// \Seen
    Seen,
    /// \Answered
    Answered,
    /// \Flagged
    Flagged,
    /// \Deleted
    Deleted,
    /// \Draft
    Draft,
    /// \Recent (never stored; only seen in SEARCH and FETCH)
    Recent,
    /// A keyword such as `$Forwarded` or `$Junk`, as written by the client.
    Keyword(String),
}

/// How a change of flags applies: IMAP's STORE `FLAGS`, `+FLAGS` and `-FLAGS`, Sieve's
/// `setflag`, `addflag` and `removeflag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    /// FLAGS: replace.
    Replace,
    /// +FLAGS
    Add,
    /// -FLAGS
    Remove,
}

/// The system flags as Maildir letters, in the order a file name must list them.
const LETTERS: [(char, Flag); 5] = [
    ('D', Flag::Draft),
    ('F', Flag::Flagged),
    ('R', Flag::Answered),
    ('S', Flag::Seen),
    ('T', Flag::Deleted),
];

/// The keyword Maildir's P flag stands for.
const FORWARDED: &str = "$Forwarded";

/// The most keywords a folder can have: one per lower-case letter.
pub const MAX_KEYWORDS: usize = 26;

/// The flags of one message: system flags and keywords (never \Recent, which belongs to a
/// session, not to the message). The system flags are bits (of their places in
/// [`LETTERS`]): a folder's listing makes one `Flags` per message, which thus needs no
/// allocation unless it has keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    system: u8,
    keywords: Vec<String>,
}

/// The bit of a system flag in [`Flags`]; none for a keyword or \Recent.
fn bit(flag: &Flag) -> Option<u8> {
    let at = LETTERS.iter().position(|(_, f)| f == flag)?;
    Some(1 << at)
}

impl Flags {
    /// Flags from the info part of a file name (what follows `:2,`), with `names` the
    /// folder's keyword list (letter `a` is `names[0]`). Unknown letters are kept out.
    pub fn from_info(info: &str, names: &[String]) -> Flags {
        let mut flags = Flags::default();
        for c in info.chars() {
            if let Some(at) = LETTERS.iter().position(|(l, _)| *l == c) {
                flags.system |= 1 << at;
            } else if c == 'P' {
                flags.insert(&Flag::Keyword(FORWARDED.into()));
            } else if c.is_ascii_lowercase()
                && let Some(name) = names.get((c as u8 - b'a') as usize)
            {
                flags.insert(&Flag::Keyword(name.clone()));
            }
        }
        flags
    }

    /// The info part of a file name for these flags: system letters then keyword letters,
    /// in ASCII order. Keywords missing from `names` are left out: the caller adds them to
    /// the folder's list first.
    pub fn to_info(&self, names: &[String]) -> String {
        let mut letters: Vec<char> = self.system_flags().map(|(l, _)| *l).collect();
        for keyword in &self.keywords {
            if keyword.eq_ignore_ascii_case(FORWARDED) {
                letters.push('P');
            } else if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(keyword))
                && i < MAX_KEYWORDS
            {
                letters.push((b'a' + i as u8) as char);
            }
        }
        letters.sort_unstable();
        letters.into_iter().collect()
    }

    /// True if the message has `flag`. Keywords compare case-insensitively.
    pub fn contains(&self, flag: &Flag) -> bool {
        match flag {
            Flag::Keyword(k) => self
                .keywords
                .iter()
                .any(|have| have.eq_ignore_ascii_case(k)),
            system => bit(system).is_some_and(|bit| self.system & bit != 0),
        }
    }

    /// The system flags set, as [`LETTERS`] lists them.
    fn system_flags(&self) -> impl Iterator<Item = &'static (char, Flag)> {
        let system = self.system;
        LETTERS
            .iter()
            .enumerate()
            .filter(move |(at, _)| system & (1 << at) != 0)
            .map(|(_, letter)| letter)
    }

    /// Sets `flag`; \Recent is ignored.
    pub fn insert(&mut self, flag: &Flag) {
        if self.contains(flag) || *flag == Flag::Recent {
            return;
        }
        match flag {
            Flag::Keyword(k) => self.keywords.push(k.clone()),
            system => self.system |= bit(system).unwrap_or(0),
        }
    }

    /// Clears `flag`.
    pub fn remove(&mut self, flag: &Flag) {
        match flag {
            Flag::Keyword(k) => self.keywords.retain(|have| !have.eq_ignore_ascii_case(k)),
            system => self.system &= !bit(system).unwrap_or(0),
        }
    }

    /// The keywords set.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// The flags as IMAP writes them, e.g. `\Seen \Flagged $Forwarded` (no parentheses).
    pub fn to_imap(&self, recent: bool) -> String {
        let mut words: Vec<String> = self.system_flags().map(|(_, f)| flag_name(f)).collect();
        if recent {
            words.push("\\Recent".into());
        }
        words.extend(self.keywords.iter().cloned());
        words.join(" ")
    }
}

/// The IMAP name of a flag (`\Seen`, or the keyword itself).
fn flag_name(flag: &Flag) -> String {
    match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::Keyword(k) => k.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_in_ascii_order() {
        let names = vec!["$Forwarded".to_string(), "$Junk".to_string()];
        let flags = Flags::from_info("FSTb", &names);
        assert_eq!(Flags::from_info("P", &[]).to_info(&names), "P");
        assert!(flags.contains(&Flag::Seen) && flags.contains(&Flag::Deleted));
        assert!(flags.contains(&Flag::Keyword("$junk".into())));
        assert!(!flags.contains(&Flag::Keyword("$Forwarded".into())));
        assert_eq!(flags.to_info(&names), "FSTb");
        assert_eq!(
            flags.to_imap(true),
            "\\Flagged \\Seen \\Deleted \\Recent $Junk"
        );
    }

    #[test]
    fn unknown_letters_and_recent_are_not_stored() {
        let mut flags = Flags::from_info("Sxz", &[]);
        assert_eq!(flags.to_info(&[]), "S");
        flags.insert(&Flag::Recent);
        flags.insert(&Flag::Seen);
        assert_eq!(flags.to_imap(false), "\\Seen");
        flags.remove(&Flag::Seen);
        assert_eq!(flags.to_info(&[]), "");
    }
}
