//! Macros: the MTA's facts a filter may ask about (`{client_addr}`, `i` for the queue
//! ID, `{auth_authen}`, ...), sent before each stage's command. A filter may name the
//! ones it wants per stage (SMFIR_SETSYMLIST in its negotiation reply); then only those
//! are sent for that stage.

use crate::codec::{MacroStage, Negotiation};

/// Macro names and values for one stage, in the order they are sent. Names are written
/// as Sendmail writes them: one letter bare (`i`, `j`), longer names in braces
/// (`{daemon_name}`); either form may be given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Macros {
    pairs: Vec<(String, String)>,
}

impl Macros {
    /// No macros.
    pub fn new() -> Macros {
        Macros::default()
    }

    /// These macros and `name` = `value` (replacing an earlier value of `name`).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Macros {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = canonical(name);
        let value = value.into();
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((name, value)),
        }
    }
}

/// Sendmail's spelling of a macro name: braces around names longer than one character.
fn canonical(name: &str) -> String {
    let bare = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    if bare.chars().count() == 1 {
        bare.to_string()
    } else {
        format!("{{{bare}}}")
    }
}

/// The macros each stage's filter asked for, or `None` where it named none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MacroLists {
    wanted: Vec<(MacroStage, Vec<String>)>,
}

impl MacroLists {
    pub(crate) fn from_negotiation(reply: &Negotiation) -> MacroLists {
        let wanted = reply
            .macro_lists
            .iter()
            .map(|(stage, names)| (*stage, names.split_whitespace().map(canonical).collect()))
            .collect();
        MacroLists { wanted }
    }

    /// The pairs of `macros` to send at `stage`.
    pub(crate) fn select<'m>(
        &self,
        stage: MacroStage,
        macros: &'m Macros,
    ) -> Vec<(&'m [u8], &'m [u8])> {
        let wanted = self
            .wanted
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, names)| names);
        macros
            .pairs
            .iter()
            .filter(|(name, _)| wanted.is_none_or(|names| names.contains(name)))
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Actions, Protocol};

    #[test]
    fn names_are_spelled_as_sendmail_does() {
        let macros = Macros::new()
            .with("i", "Q1")
            .with("client_addr", "192.0.2.1")
            .with("{j}", "mx")
            .with("{auth_authen}", "u");
        let sent = MacroLists::default().select(MacroStage::Mail, &macros);
        let names: Vec<&[u8]> = sent.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [&b"i"[..], b"{client_addr}", b"j", b"{auth_authen}"]);
    }

    #[test]
    fn a_stage_with_a_list_sends_only_what_the_filter_named() {
        let lists = MacroLists::from_negotiation(&Negotiation {
            version: 6,
            actions: Actions::SET_MACRO_LISTS,
            protocol: Protocol::default(),
            macro_lists: vec![(MacroStage::Connect, "{client_addr}  j".into())],
        });
        let macros = Macros::new()
            .with("j", "mx")
            .with("{client_addr}", "192.0.2.1")
            .with("{daemon_name}", "posthorn");
        let connect = lists.select(MacroStage::Connect, &macros);
        assert_eq!(
            connect,
            [(&b"j"[..], &b"mx"[..]), (b"{client_addr}", b"192.0.2.1")]
        );
        assert_eq!(lists.select(MacroStage::Helo, &macros).len(), 3);
    }
}
