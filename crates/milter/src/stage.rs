//! The stages of the protocol the MTA reports, each with the protocol bits that leave it
//! out or unanswered, the macros sent before it and the timeout it runs under.

use crate::codec::{MacroStage, Protocol};

/// One stage of the protocol: its name for errors, the protocol bits that leave it out
/// or unanswered, its macros and which timeout applies.
pub(crate) struct Stage {
    pub(crate) name: &'static str,
    pub(crate) skip: Option<Protocol>,
    pub(crate) no_reply: Option<Protocol>,
    pub(crate) macros: Option<MacroStage>,
    pub(crate) content: bool,
}

pub(crate) const CONNECT: Stage = Stage {
    name: "CONNECT",
    skip: Some(Protocol::NO_CONNECT),
    no_reply: Some(Protocol::NO_REPLY_CONNECT),
    macros: Some(MacroStage::Connect),
    content: false,
};
pub(crate) const HELO: Stage = Stage {
    name: "HELO",
    skip: Some(Protocol::NO_HELO),
    no_reply: Some(Protocol::NO_REPLY_HELO),
    macros: Some(MacroStage::Helo),
    content: false,
};
pub(crate) const MAIL: Stage = Stage {
    name: "MAIL",
    skip: Some(Protocol::NO_MAIL),
    no_reply: Some(Protocol::NO_REPLY_MAIL),
    macros: Some(MacroStage::Mail),
    content: false,
};
pub(crate) const RCPT: Stage = Stage {
    name: "RCPT",
    skip: Some(Protocol::NO_RCPT),
    no_reply: Some(Protocol::NO_REPLY_RCPT),
    macros: Some(MacroStage::Rcpt),
    content: false,
};
pub(crate) const DATA: Stage = Stage {
    name: "DATA",
    skip: Some(Protocol::NO_DATA),
    no_reply: Some(Protocol::NO_REPLY_DATA),
    macros: Some(MacroStage::Data),
    content: false,
};
pub(crate) const HEADER: Stage = Stage {
    name: "HEADER",
    skip: Some(Protocol::NO_HEADERS),
    no_reply: Some(Protocol::NO_REPLY_HEADER),
    macros: None,
    content: true,
};
pub(crate) const END_OF_HEADERS: Stage = Stage {
    name: "EOH",
    skip: Some(Protocol::NO_END_OF_HEADERS),
    no_reply: Some(Protocol::NO_REPLY_END_OF_HEADERS),
    macros: Some(MacroStage::EndOfHeaders),
    content: true,
};
pub(crate) const BODY: Stage = Stage {
    name: "BODY",
    skip: Some(Protocol::NO_BODY),
    no_reply: Some(Protocol::NO_REPLY_BODY),
    macros: None,
    content: true,
};
pub(crate) const END_OF_MESSAGE: Stage = Stage {
    name: "BODYEOB",
    skip: None,
    no_reply: None,
    macros: Some(MacroStage::EndOfMessage),
    content: true,
};
pub(crate) const UNKNOWN: Stage = Stage {
    name: "UNKNOWN",
    skip: Some(Protocol::NO_UNKNOWN),
    no_reply: Some(Protocol::NO_REPLY_UNKNOWN),
    macros: None,
    content: false,
};
