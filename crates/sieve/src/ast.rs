//! The checked form of a script: what `validate` builds and `interp` runs. Strings are
//! kept as written; when the script requires "variables" the interpreter expands them.

use crate::address::AddressPart;
use crate::extensions::Extensions;
use crate::matching::Matcher;

/// A compiled script: its commands and the extensions it required.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub(crate) commands: Vec<Command>,
    pub(crate) uses_variables: bool,
    pub(crate) uses_flags: bool,
    /// What the server enabled, for the scripts this one includes.
    pub(crate) extensions: Extensions,
}

/// One `include` a script makes, as written (RFC 6609 §3.2): what a server checks when
/// the script is uploaded, before any run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion<'s> {
    pub name: &'s str,
    pub location: Location,
    /// `:optional`: a missing script is skipped.
    pub optional: bool,
}

impl Script {
    /// Every `include` of this script, in the order written, nested blocks included.
    pub fn includes(&self) -> Vec<Inclusion<'_>> {
        let mut found = Vec::new();
        gather_includes(&self.commands, &mut found);
        found
    }
}

fn gather_includes<'s>(commands: &'s [Command], found: &mut Vec<Inclusion<'s>>) {
    for command in commands {
        match command {
            Command::Include {
                name,
                location,
                optional,
                ..
            } => found.push(Inclusion {
                name,
                location: *location,
                optional: *optional,
            }),
            Command::If {
                branches,
                otherwise,
            } => {
                for (_, block) in branches {
                    gather_includes(block, found);
                }
                if let Some(block) = otherwise {
                    gather_includes(block, found);
                }
            }
            _ => {}
        }
    }
}

/// Where `include` looks for a script (RFC 6609 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    Personal,
    Global,
}

/// `addflag`, `setflag` and `removeflag` (RFC 5232 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

/// A `set` modifier (RFC 5229 §4.1), applied in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    Length,
}

impl Modifier {
    /// RFC 5229 §4.1: higher runs first, and two of the same precedence may not be combined.
    pub fn precedence(self) -> u8 {
        match self {
            Modifier::Lower | Modifier::Upper => 40,
            Modifier::LowerFirst | Modifier::UpperFirst => 30,
            Modifier::QuoteWildcard => 20,
            Modifier::Length => 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `if`, its `elsif`s and `else` (RFC 5228 §3.1).
    If {
        branches: Vec<(Test, Vec<Command>)>,
        otherwise: Option<Vec<Command>>,
    },
    Stop,
    Keep {
        flags: Option<Vec<String>>,
    },
    Discard,
    FileInto {
        mailbox: String,
        flags: Option<Vec<String>>,
        copy: bool,
        create: bool,
    },
    Redirect {
        address: String,
        copy: bool,
    },
    Reject {
        reason: String,
        extended: bool,
    },
    Vacation(Box<VacationSpec>),
    Set {
        name: String,
        value: String,
        modifiers: Vec<Modifier>,
    },
    Flags {
        op: FlagOp,
        variable: Option<String>,
        flags: Vec<String>,
    },
    Include {
        name: String,
        location: Location,
        once: bool,
        optional: bool,
    },
    Return,
    Global(Vec<String>),
}

/// The arguments of `vacation` (RFC 5230 §4, RFC 6131).
#[derive(Debug, Clone, PartialEq)]
pub struct VacationSpec {
    /// The period asked for, in seconds (`:days` times 86400, or `:seconds`).
    pub period: Option<u64>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
}

/// What `body` looks at (RFC 5173 §5).
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTransform {
    Raw,
    Content(Vec<String>),
    Text,
}

/// Which time zone `date` and `currentdate` report in (RFC 5260 §4.1).
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    Local,
    Original,
    Fixed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Exists(Vec<String>),
    Size {
        over: bool,
        limit: u64,
    },
    Header {
        names: Vec<String>,
        keys: Vec<String>,
        matcher: Matcher,
    },
    Address {
        names: Vec<String>,
        keys: Vec<String>,
        part: AddressPart,
        matcher: Matcher,
    },
    Envelope {
        parts: Vec<String>,
        keys: Vec<String>,
        part: AddressPart,
        matcher: Matcher,
    },
    Body {
        transform: BodyTransform,
        keys: Vec<String>,
        matcher: Matcher,
    },
    Date {
        header: String,
        zone: Zone,
        part: String,
        keys: Vec<String>,
        matcher: Matcher,
    },
    CurrentDate {
        zone: Zone,
        part: String,
        keys: Vec<String>,
        matcher: Matcher,
    },
    Spam {
        percent: bool,
        value: String,
        matcher: Matcher,
    },
    Virus {
        value: String,
        matcher: Matcher,
    },
    String {
        sources: Vec<String>,
        keys: Vec<String>,
        matcher: Matcher,
    },
    HasFlag {
        variables: Vec<String>,
        keys: Vec<String>,
        matcher: Matcher,
    },
}
