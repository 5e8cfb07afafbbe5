//! Checking the filter's answer to our offer: it may pick a lower version, fewer actions
//! and any protocol steps, but never an action we did not offer (Postfix refuses such a
//! filter too).

use crate::codec::{Actions, MacroStage, Negotiation, Protocol, VERSION};
use crate::error::MilterError;
use crate::macros::MacroLists;

/// The oldest version still met in the wild (Sendmail 8.13's libmilter spoke 2).
const OLDEST_VERSION: u32 = 2;

/// What was agreed with the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The filter's protocol version.
    pub version: u32,
    /// The actions the filter may take.
    pub actions: Actions,
    /// The protocol steps the filter asked for, limited to those offered.
    pub protocol: Protocol,
    pub(crate) macros: MacroLists,
}

impl Negotiated {
    /// Checks the filter's answer to [`Negotiation::offer`].
    pub fn from_reply(reply: &Negotiation) -> Result<Negotiated, MilterError> {
        let offer = Negotiation::offer();
        if !(OLDEST_VERSION..=VERSION).contains(&reply.version) {
            return Err(MilterError::Negotiation(format!(
                "the filter speaks version {}, we speak {OLDEST_VERSION} to {VERSION}",
                reply.version
            )));
        }
        if !offer.actions.contains(reply.actions) {
            return Err(MilterError::Negotiation(format!(
                "the filter wants actions {:#x}, we offered {:#x}",
                reply.actions.0, offer.actions.0
            )));
        }
        if !reply.macro_lists.is_empty() && !reply.actions.contains(Actions::SET_MACRO_LISTS) {
            return Err(MilterError::Negotiation(
                "the filter names macros without asking for SETSYMLIST".into(),
            ));
        }
        // Bits not offered (rejected recipients, the larger body chunks of MDS_256K and
        // MDS_1M) change nothing we send, so they are dropped rather than refused. Older
        // versions have no DATA (before 4) and no UNKNOWN (before 3) command.
        let mut protocol = Protocol(reply.protocol.0 & offer.protocol.0);
        if reply.version < 4 {
            protocol = protocol | Protocol::NO_DATA;
        }
        if reply.version < 3 {
            protocol = protocol | Protocol::NO_UNKNOWN;
        }
        Ok(Negotiated {
            version: reply.version,
            actions: reply.actions,
            protocol,
            macros: MacroLists::from_negotiation(reply),
        })
    }

    /// Whether the filter asked for the protocol step `flag`.
    pub fn wants(&self, flag: Protocol) -> bool {
        self.protocol.contains(flag)
    }

    /// Whether the filter may take `action`.
    pub fn allows(&self, action: Actions) -> bool {
        self.actions.contains(action)
    }

    /// The pairs of `macros` to send at `stage`: those the filter named, if it did.
    pub(crate) fn macros_for<'m>(
        &self,
        stage: MacroStage,
        macros: &'m crate::Macros,
    ) -> Vec<(&'m [u8], &'m [u8])> {
        self.macros.select(stage, macros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(version: u32, actions: u32, protocol: u32) -> Negotiation {
        Negotiation {
            version,
            actions: Actions(actions),
            protocol: Protocol(protocol),
            macro_lists: Vec::new(),
        }
    }

    #[test]
    fn a_filter_asking_for_more_than_offered_is_refused() {
        assert!(Negotiated::from_reply(&reply(7, 0, 0)).is_err());
        assert!(Negotiated::from_reply(&reply(1, 0, 0)).is_err());
        assert!(Negotiated::from_reply(&reply(6, 0x200, 0)).is_err());
        let mut lists = reply(6, 0, 0);
        lists.macro_lists.push((MacroStage::Connect, "j".into()));
        assert!(Negotiated::from_reply(&lists).is_err());
    }

    #[test]
    fn protocol_bits_not_offered_are_dropped_and_old_versions_miss_new_commands() {
        let agreed = Negotiated::from_reply(&reply(6, 0x1ff, 0x1000_0800 | 0x80)).unwrap();
        assert_eq!(agreed.protocol, Protocol::NO_REPLY_HEADER);
        let old = Negotiated::from_reply(&reply(2, 0x1, 0)).unwrap();
        assert!(old.wants(Protocol::NO_DATA) && old.wants(Protocol::NO_UNKNOWN));
    }
}
