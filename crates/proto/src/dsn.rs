//! Delivery Status Notification parameters of RFC 3461: what the sender asked to be told
//! (NOTIFY), what a bounce returns (RET), and the identifiers it must quote (ENVID, ORCPT).
//! Parsed at MAIL/RCPT time and kept in the envelope for the bounce writer.

/// RET: whether a bounce returns the whole message or only its headers (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ret {
    /// `RET=FULL`.
    Full,
    /// `RET=HDRS`.
    Headers,
}

/// NOTIFY: which events the sender wants a DSN for (RFC 3461 §4.1). All false is `NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Notify {
    /// Report successful delivery.
    pub success: bool,
    /// Report failure.
    pub failure: bool,
    /// Report delay.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// Parses `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY`; NEVER must stand alone.
    pub fn parse(value: &str) -> Option<Notify> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Some(Notify::NEVER);
        }
        let mut notify = Notify::NEVER;
        for word in value.split(',') {
            let flag = match word.to_ascii_uppercase().as_str() {
                "SUCCESS" => &mut notify.success,
                "FAILURE" => &mut notify.failure,
                "DELAY" => &mut notify.delay,
                _ => return None,
            };
            if *flag {
                return None;
            }
            *flag = true;
        }
        Some(notify)
    }

    /// The parameter value as it goes on the wire to the next hop.
    pub fn to_param(self) -> String {
        if self == Notify::NEVER {
            return "NEVER".into();
        }
        let mut words = Vec::new();
        if self.success {
            words.push("SUCCESS");
        }
        if self.failure {
            words.push("FAILURE");
        }
        if self.delay {
            words.push("DELAY");
        }
        words.join(",")
    }
}

/// ORCPT: the recipient address as the original sender gave it (RFC 3461 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Orcpt {
    /// The address type, lower-cased: `rfc822`, or `utf-8` (RFC 6533).
    pub addr_type: String,
    /// The address, xtext-decoded.
    pub address: String,
}

impl Orcpt {
    /// Parses `addr-type;xtext`.
    pub fn parse(value: &str) -> Option<Orcpt> {
        let (addr_type, xtext) = value.split_once(';')?;
        let type_ok = !addr_type.is_empty()
            && addr_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let address = xtext_decode(xtext)?;
        if !type_ok || address.is_empty() {
            return None;
        }
        Some(Orcpt {
            addr_type: addr_type.to_ascii_lowercase(),
            address,
        })
    }

    /// The parameter value as it goes on the wire to the next hop.
    pub fn to_param(&self) -> String {
        format!("{};{}", self.addr_type, xtext_encode(&self.address))
    }
}

/// Decodes xtext (RFC 3461 §4): printable ASCII except `+` and `=`, with `+XX` hex escapes.
/// Returns `None` for malformed input, a result that is not UTF-8, or one with control
/// characters: ENVID and ORCPT are quoted into reports and passed on, and RFC 3461 §4
/// allows only printable characters in them (`+0D+0A` must not become a line break).
pub fn xtext_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = text.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'=' => return None,
            b @ 33..=126 => {
                out.push(b);
                i += 1;
            }
            b if b >= 0x80 => {
                // UTF-8 is allowed in utf-8-addr-xtext (RFC 6533 §3) under SMTPUTF8.
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out)
        .ok()
        .filter(|decoded| !decoded.chars().any(char::is_control))
}

/// Encodes a value as xtext for passing DSN parameters on to the next hop.
pub fn xtext_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_never_stands_alone() {
        assert_eq!(Notify::parse("never"), Some(Notify::NEVER));
        assert_eq!(Notify::parse("NEVER,SUCCESS"), None);
        assert_eq!(Notify::parse("SUCCESS,SUCCESS"), None);
        assert_eq!(Notify::parse(""), None);
        assert_eq!(
            Notify::parse("FAILURE,DELAY").unwrap().to_param(),
            "FAILURE,DELAY"
        );
    }

    #[test]
    fn xtext_round_trip() {
        let value = "a+b=c d";
        let encoded = xtext_encode(value);
        assert_eq!(encoded, "a+2Bb+3Dc+20d");
        assert_eq!(xtext_decode(&encoded).as_deref(), Some(value));
    }

    #[test]
    fn xtext_rejects_malformed() {
        assert_eq!(xtext_decode("a+2"), None);
        assert_eq!(xtext_decode("a+zz"), None);
        assert_eq!(xtext_decode("a=b"), None);
        assert_eq!(xtext_decode("a b"), None);
    }

    #[test]
    fn xtext_refuses_decoded_controls() {
        assert_eq!(xtext_decode("a+0D+0Ab"), None);
        assert_eq!(xtext_decode("a+00"), None);
        assert_eq!(xtext_decode("a+7F"), None);
        assert_eq!(xtext_decode("a+C2+85"), None, "C1 control NEL");
        assert_eq!(xtext_decode("a+20b+2B").as_deref(), Some("a b+"));
        assert_eq!(xtext_decode("caf+C3+A9").as_deref(), Some("café"));
        assert_eq!(Orcpt::parse("rfc822;a+0D+0AX-Evil:+20yes@b"), None);
    }

    #[test]
    fn orcpt_parses_type_and_address() {
        let orcpt = Orcpt::parse("RFC822;user+40example.com").unwrap();
        assert_eq!(orcpt.addr_type, "rfc822");
        assert_eq!(orcpt.address, "user@example.com");
        assert_eq!(orcpt.to_param(), "rfc822;user@example.com");
        assert_eq!(Orcpt::parse("rfc822"), None);
        assert_eq!(Orcpt::parse(";x"), None);
    }
}
