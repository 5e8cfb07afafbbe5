//! What a client has turned on for the rest of the connection, by ENABLE (RFC 5161) or, for
//! CONDSTORE, by a command that uses it: the one place a session's protocol variant is
//! kept. A client that enables nothing gets IMAP4rev1 exactly as it always did.

/// The extensions and the protocol revision a client has turned on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    /// Untagged FETCH responses carry UID and MODSEQ (RFC 7162 §3.1: after any
    /// CONDSTORE-enabling command).
    pub condstore: bool,
    /// VANISHED replaces EXPUNGE, and SELECT takes QRESYNC (RFC 7162 §3.2.3: only after
    /// ENABLE).
    pub qresync: bool,
    /// UTF8=ACCEPT (RFC 6855 §3): mailbox names in UTF-8, APPEND's UTF8 data item.
    pub utf8_accept: bool,
    /// IMAP4rev2 (RFC 9051 §6.3.1): no \Recent, ESEARCH answers SEARCH, UTF-8 names,
    /// [CLOSED] on a new SELECT, the LIST response in SELECT's, [HASCHILDREN].
    pub imap4rev2: bool,
}

impl Enabled {
    /// Takes in the names of an ENABLE command; returns those it turns on, for the
    /// ENABLED response (RFC 5161 §3.2).
    pub fn enable(&mut self, names: &[String]) -> Vec<&'static str> {
        let mut enabled = Vec::new();
        for name in names {
            let (flag, label) = match name.to_ascii_uppercase().as_str() {
                "CONDSTORE" => (&mut self.condstore, "CONDSTORE"),
                // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                "QRESYNC" => {
                    self.condstore = true;
                    (&mut self.qresync, "QRESYNC")
                }
                "UTF8=ACCEPT" => (&mut self.utf8_accept, "UTF8=ACCEPT"),
                "IMAP4REV2" => (&mut self.imap4rev2, "IMAP4rev2"),
                _ => continue,
            };
            *flag = true;
            if !enabled.contains(&label) {
                enabled.push(label);
            }
        }
        enabled
    }

    /// Mailbox names travel in UTF-8 rather than modified UTF-7 (RFC 6855 §3, RFC 9051
    /// §5.1).
    pub fn utf8_names(&self) -> bool {
        self.utf8_accept || self.imap4rev2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_names_what_it_turned_on() {
        let mut enabled = Enabled::default();
        assert_eq!(
            enabled.enable(&["condstore".into(), "X-OTHER".into(), "CONDSTORE".into()]),
            ["CONDSTORE"]
        );
        assert!(enabled.condstore && !enabled.qresync);
        assert_eq!(enabled.enable(&["QRESYNC".into()]), ["QRESYNC"]);
        assert!(enabled.qresync);
    }

    #[test]
    fn enable_names_each_once() {
        let mut enabled = Enabled::default();
        let names = [
            "qresync",
            "IMAP4rev2",
            "X-UNKNOWN",
            "QRESYNC",
            "utf8=accept",
        ];
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        assert_eq!(
            enabled.enable(&names),
            ["QRESYNC", "IMAP4rev2", "UTF8=ACCEPT"]
        );
        assert!(enabled.condstore && enabled.qresync && enabled.utf8_names());
        assert!(!Enabled::default().utf8_names());
    }
}
