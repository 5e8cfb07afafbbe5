//! The extensions a server enables, and the capability names `require` takes.

use std::collections::BTreeSet;

/// One Sieve extension this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Extension {
    /// RFC 5228 §4.1.
    FileInto,
    /// RFC 5429 §2.2.
    Reject,
    /// RFC 5429 §2.1.
    Ereject,
    /// RFC 5228 §5.4.
    Envelope,
    /// RFC 5232.
    Imap4Flags,
    /// RFC 5229.
    Variables,
    /// RFC 5173.
    Body,
    /// RFC 3894.
    Copy,
    /// RFC 5230.
    Vacation,
    /// RFC 6131: `:seconds` for vacation.
    VacationSeconds,
    /// RFC 5260: `date` and `currentdate`.
    Date,
    /// RFC 5231: `:count` and `:value`.
    Relational,
    /// RFC 5233: `:user` and `:detail`.
    Subaddress,
    /// RFC 6609: `include`, `return`, `global`.
    Include,
    /// RFC 5235.
    SpamTest,
    /// RFC 5235 §3.2: spamtest with `:percent`.
    SpamTestPlus,
    /// RFC 5235 §3.3.
    VirusTest,
    /// RFC 5490 §3.2: `:create` for fileinto.
    Mailbox,
    /// RFC 4790 §9.1 via RFC 5228 §2.7.3: the `i;ascii-numeric` comparator.
    ComparatorNumeric,
}

impl Extension {
    const ALL: [Extension; 19] = [
        Extension::FileInto,
        Extension::Reject,
        Extension::Ereject,
        Extension::Envelope,
        Extension::Imap4Flags,
        Extension::Variables,
        Extension::Body,
        Extension::Copy,
        Extension::Vacation,
        Extension::VacationSeconds,
        Extension::Date,
        Extension::Relational,
        Extension::Subaddress,
        Extension::Include,
        Extension::SpamTest,
        Extension::SpamTestPlus,
        Extension::VirusTest,
        Extension::Mailbox,
        Extension::ComparatorNumeric,
    ];

    /// The capability string `require` names it by.
    pub fn name(self) -> &'static str {
        match self {
            Extension::FileInto => "fileinto",
            Extension::Reject => "reject",
            Extension::Ereject => "ereject",
            Extension::Envelope => "envelope",
            Extension::Imap4Flags => "imap4flags",
            Extension::Variables => "variables",
            Extension::Body => "body",
            Extension::Copy => "copy",
            Extension::Vacation => "vacation",
            Extension::VacationSeconds => "vacation-seconds",
            Extension::Date => "date",
            Extension::Relational => "relational",
            Extension::Subaddress => "subaddress",
            Extension::Include => "include",
            Extension::SpamTest => "spamtest",
            Extension::SpamTestPlus => "spamtestplus",
            Extension::VirusTest => "virustest",
            Extension::Mailbox => "mailbox",
            Extension::ComparatorNumeric => "comparator-i;ascii-numeric",
        }
    }

    /// The extension a capability string names (case-sensitive, as RFC 5228 §3.2 has it).
    pub fn from_name(name: &str) -> Option<Extension> {
        Extension::ALL.into_iter().find(|ext| ext.name() == name)
    }
}

/// The set of extensions a server lets scripts require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extensions {
    enabled: BTreeSet<Extension>,
}

impl Extensions {
    /// Every extension this crate implements.
    pub fn all() -> Self {
        Extensions {
            enabled: Extension::ALL.into_iter().collect(),
        }
    }

    /// Only base RFC 5228.
    pub fn none() -> Self {
        Extensions {
            enabled: BTreeSet::new(),
        }
    }

    /// This set with `ext` turned off.
    pub fn without(mut self, ext: Extension) -> Self {
        self.enabled.remove(&ext);
        self
    }

    /// This set with `ext` turned on.
    pub fn with(mut self, ext: Extension) -> Self {
        self.enabled.insert(ext);
        self
    }

    pub fn contains(&self, ext: Extension) -> bool {
        self.enabled.contains(&ext)
    }

    /// The capability strings, for a ManageSieve SIEVE line.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.enabled.iter().map(|ext| ext.name())
    }
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for ext in Extension::ALL {
            assert_eq!(Extension::from_name(ext.name()), Some(ext));
        }
        assert_eq!(Extension::from_name("FILEINTO"), None);
        let set = Extensions::all().without(Extension::Body);
        assert!(!set.contains(Extension::Body) && set.names().count() == 18);
    }
}
