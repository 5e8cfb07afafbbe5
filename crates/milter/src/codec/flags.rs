//! What the two sides agree on when they meet (SMFIC_OPTNEG and its reply): the protocol
//! version, the actions the filter may take, the protocol steps it wants left out, and
//! the macros it wants at each stage.

use std::ops::BitOr;

use super::fields::Fields;
use super::{DecodeError, Packet, PacketWriter};

/// The protocol version this side speaks.
pub const VERSION: u32 = 6;

/// What a filter may change (SMFIF_* bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Actions(pub u32);

impl Actions {
    /// SMFIF_ADDHDRS: add and insert header fields.
    pub const ADD_HEADERS: Actions = Actions(0x01);
    /// SMFIF_CHGBODY: replace the body.
    pub const CHANGE_BODY: Actions = Actions(0x02);
    /// SMFIF_ADDRCPT: add recipients.
    pub const ADD_RECIPIENTS: Actions = Actions(0x04);
    /// SMFIF_DELRCPT: remove recipients.
    pub const DELETE_RECIPIENTS: Actions = Actions(0x08);
    /// SMFIF_CHGHDRS: change and delete header fields.
    pub const CHANGE_HEADERS: Actions = Actions(0x10);
    /// SMFIF_QUARANTINE: quarantine the message.
    pub const QUARANTINE: Actions = Actions(0x20);
    /// SMFIF_CHGFROM: change the envelope sender.
    pub const CHANGE_SENDER: Actions = Actions(0x40);
    /// SMFIF_ADDRCPT_PAR: add recipients with ESMTP parameters.
    pub const ADD_RECIPIENTS_WITH_ARGS: Actions = Actions(0x80);
    /// SMFIF_SETSYMLIST: name the macros wanted at each stage.
    pub const SET_MACRO_LISTS: Actions = Actions(0x100);

    /// Every action of version 6: what this client offers, as it carries out all of them.
    pub const ALL: Actions = Actions(0x1ff);

    /// True when every bit of `other` is set here.
    pub const fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Actions {
    type Output = Actions;
    fn bitor(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }
}

/// Protocol steps a filter asks to leave out or not to answer (SMFIP_* bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Protocol(pub u32);

impl Protocol {
    /// SMFIP_NOCONNECT: no CONNECT.
    pub const NO_CONNECT: Protocol = Protocol(0x01);
    /// SMFIP_NOHELO: no HELO.
    pub const NO_HELO: Protocol = Protocol(0x02);
    /// SMFIP_NOMAIL: no MAIL.
    pub const NO_MAIL: Protocol = Protocol(0x04);
    /// SMFIP_NORCPT: no RCPT.
    pub const NO_RCPT: Protocol = Protocol(0x08);
    /// SMFIP_NOBODY: no BODY chunks.
    pub const NO_BODY: Protocol = Protocol(0x10);
    /// SMFIP_NOHDRS: no HEADER.
    pub const NO_HEADERS: Protocol = Protocol(0x20);
    /// SMFIP_NOEOH: no end of headers.
    pub const NO_END_OF_HEADERS: Protocol = Protocol(0x40);
    /// SMFIP_NR_HDR (also SMFIP_NOHREPL): no reply to HEADER.
    pub const NO_REPLY_HEADER: Protocol = Protocol(0x80);
    /// SMFIP_NOUNKNOWN: no UNKNOWN.
    pub const NO_UNKNOWN: Protocol = Protocol(0x100);
    /// SMFIP_NODATA: no DATA.
    pub const NO_DATA: Protocol = Protocol(0x200);
    /// SMFIP_SKIP: the MTA understands SKIP in answer to a body chunk.
    pub const SKIP: Protocol = Protocol(0x400);
    /// SMFIP_RCPT_REJ: the MTA also sends recipients it rejected (not offered here).
    pub const REJECTED_RCPT: Protocol = Protocol(0x800);
    /// SMFIP_NR_CONN: no reply to CONNECT.
    pub const NO_REPLY_CONNECT: Protocol = Protocol(0x1000);
    /// SMFIP_NR_HELO: no reply to HELO.
    pub const NO_REPLY_HELO: Protocol = Protocol(0x2000);
    /// SMFIP_NR_MAIL: no reply to MAIL.
    pub const NO_REPLY_MAIL: Protocol = Protocol(0x4000);
    /// SMFIP_NR_RCPT: no reply to RCPT.
    pub const NO_REPLY_RCPT: Protocol = Protocol(0x8000);
    /// SMFIP_NR_DATA: no reply to DATA.
    pub const NO_REPLY_DATA: Protocol = Protocol(0x1_0000);
    /// SMFIP_NR_UNKN: no reply to UNKNOWN.
    pub const NO_REPLY_UNKNOWN: Protocol = Protocol(0x2_0000);
    /// SMFIP_NR_EOH: no reply to end of headers.
    pub const NO_REPLY_END_OF_HEADERS: Protocol = Protocol(0x4_0000);
    /// SMFIP_NR_BODY: no reply to a body chunk.
    pub const NO_REPLY_BODY: Protocol = Protocol(0x8_0000);
    /// SMFIP_HDR_LEADSPC: header values keep the space after the colon, both ways.
    pub const HEADER_LEADING_SPACE: Protocol = Protocol(0x10_0000);

    /// What this client offers: every step may be left out or left unanswered, SKIP and
    /// leading spaces are understood; rejected recipients are never sent.
    pub const OFFERED: Protocol = Protocol(0x1f_f7ff);

    /// True when every bit of `other` is set here.
    pub const fn contains(self, other: Protocol) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Protocol {
    type Output = Protocol;
    fn bitor(self, other: Protocol) -> Protocol {
        Protocol(self.0 | other.0)
    }
}

/// The stages a filter can name macros for (SMFIM_*), in their wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MacroStage {
    /// SMFIM_CONNECT.
    Connect,
    /// SMFIM_HELO.
    Helo,
    /// SMFIM_ENVFROM.
    Mail,
    /// SMFIM_ENVRCPT.
    Rcpt,
    /// SMFIM_DATA.
    Data,
    /// SMFIM_EOM.
    EndOfMessage,
    /// SMFIM_EOH.
    EndOfHeaders,
}

impl MacroStage {
    const ALL: [MacroStage; 7] = [
        MacroStage::Connect,
        MacroStage::Helo,
        MacroStage::Mail,
        MacroStage::Rcpt,
        MacroStage::Data,
        MacroStage::EndOfMessage,
        MacroStage::EndOfHeaders,
    ];

    /// The stage's number on the wire.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The stage numbered `number` on the wire.
    pub fn from_number(number: u32) -> Option<MacroStage> {
        usize::try_from(number)
            .ok()
            .and_then(|i| MacroStage::ALL.get(i).copied())
    }

    /// The code of the command whose macros these are (the first octet of SMFIC_MACRO).
    pub fn command_code(self) -> u8 {
        match self {
            MacroStage::Connect => b'C',
            MacroStage::Helo => b'H',
            MacroStage::Mail => b'M',
            MacroStage::Rcpt => b'R',
            MacroStage::Data => b'T',
            MacroStage::EndOfMessage => b'E',
            MacroStage::EndOfHeaders => b'N',
        }
    }
}

/// The OPTNEG packet, the same shape both ways: the MTA offers, the filter picks. Only
/// the filter's may carry macro lists (SMFIF_SETSYMLIST): each stage's macro names,
/// separated by spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiation {
    /// The protocol version.
    pub version: u32,
    /// Actions offered or requested.
    pub actions: Actions,
    /// Protocol steps offered or requested.
    pub protocol: Protocol,
    /// Macro names per stage, as the filter wrote them.
    pub macro_lists: Vec<(MacroStage, String)>,
}

impl Negotiation {
    /// What this client offers.
    pub fn offer() -> Negotiation {
        Negotiation {
            version: VERSION,
            actions: Actions::ALL,
            protocol: Protocol::OFFERED,
            macro_lists: Vec::new(),
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let mut packet = PacketWriter::new(out, b'O');
        packet
            .u32(self.version)
            .u32(self.actions.0)
            .u32(self.protocol.0);
        for (stage, names) in &self.macro_lists {
            packet.u32(stage.number()).cstr(names.as_bytes());
        }
    }

    pub(super) fn decode(packet: Packet<'_>) -> Result<Negotiation, DecodeError> {
        let mut fields = Fields::new(packet);
        let version = fields.u32()?;
        let actions = Actions(fields.u32()?);
        let protocol = Protocol(fields.u32()?);
        let mut macro_lists = Vec::new();
        while !fields.is_empty() {
            let stage = MacroStage::from_number(fields.u32()?)
                .ok_or_else(|| fields.bad("macro list for an unknown stage"))?;
            macro_lists.push((stage, fields.text()?));
        }
        Ok(Negotiation {
            version,
            actions,
            protocol,
            macro_lists,
        })
    }
}
