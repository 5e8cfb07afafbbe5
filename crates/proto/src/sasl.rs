//! The server side of the SASL mechanisms we offer in SMTP AUTH (RFC 4954): PLAIN
//! (RFC 4616) and LOGIN (the de-facto mechanism older clients still use). The session runs
//! the challenge-response exchange; checking the password is the driver's job.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A mechanism named in `AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`: one response with authorization id, user name and password.
    Plain,
    /// `LOGIN`: the user name, then the password, each on its own challenge.
    Login,
}

impl Mechanism {
    /// The mechanism called `name` (case-insensitive), if we offer it.
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The names advertised after `AUTH` in the EHLO reply.
    pub const ADVERTISED: &'static str = "PLAIN LOGIN";
}

/// What the client claims: who it is and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as, when it differs from `username` (PLAIN only).
    pub authzid: Option<String>,
    /// The login name.
    pub username: String,
    /// The password, in clear; never logged.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Leaves the password out, so a debug print cannot leak it into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a response could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The client sent `*` (RFC 4954 §4).
    Cancelled,
    /// Not base64, not UTF-8, or not the shape the mechanism needs.
    Malformed,
}

/// One decoded client response: `=` is the empty response of RFC 4954 §4.
pub fn decode_response(line: &str) -> Result<Vec<u8>, ResponseError> {
    let line = line.trim();
    if line == "*" {
        return Err(ResponseError::Cancelled);
    }
    if line == "=" {
        return Ok(Vec::new());
    }
    BASE64.decode(line).map_err(|_| ResponseError::Malformed)
}

/// Splits a PLAIN message `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
pub fn parse_plain(message: &[u8]) -> Result<Credentials, ResponseError> {
    let text = std::str::from_utf8(message).map_err(|_| ResponseError::Malformed)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ResponseError::Malformed);
    };
    if username.is_empty() || password.is_empty() {
        return Err(ResponseError::Malformed);
    }
    Ok(Credentials {
        authzid: (!authzid.is_empty() && authzid != username).then(|| authzid.to_string()),
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// A LOGIN step's text (user name or password).
pub fn parse_login_field(message: &[u8]) -> Result<String, ResponseError> {
    match std::str::from_utf8(message) {
        Ok(text) if !text.is_empty() && !text.contains('\0') => Ok(text.to_string()),
        _ => Err(ResponseError::Malformed),
    }
}

/// The base64 challenge text LOGIN sends for the user name (`Username:`).
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// The base64 challenge text LOGIN sends for the password (`Password:`).
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_and_without_authzid() {
        let c = parse_plain(b"\0alice\0secret").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "secret")
        );
        assert_eq!(c.authzid, None);
        let c = parse_plain(b"alice\0alice\0secret").unwrap();
        assert_eq!(c.authzid, None, "authzid equal to the user is no request");
        let c = parse_plain(b"bob\0alice\0secret").unwrap();
        assert_eq!(c.authzid.as_deref(), Some("bob"));
    }

    #[test]
    fn plain_refuses_malformed_messages() {
        for bad in [
            &b"alice\0secret"[..],
            b"\0\0secret",
            b"\0alice\0",
            b"\0alice\0secret\0more",
            b"\0al\xffice\0secret",
        ] {
            assert_eq!(parse_plain(bad), Err(ResponseError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn responses_decode_cancel_and_empty() {
        assert_eq!(decode_response("*"), Err(ResponseError::Cancelled));
        assert_eq!(decode_response("="), Ok(Vec::new()));
        assert_eq!(
            decode_response("AGFsaWNlAHNlY3JldA=="),
            Ok(b"\0alice\0secret".to_vec())
        );
        assert_eq!(
            decode_response("not base64!"),
            Err(ResponseError::Malformed)
        );
    }

    #[test]
    fn login_challenges_are_the_customary_words() {
        assert_eq!(
            BASE64.decode(LOGIN_USERNAME_CHALLENGE).unwrap(),
            b"Username:"
        );
        assert_eq!(
            BASE64.decode(LOGIN_PASSWORD_CHALLENGE).unwrap(),
            b"Password:"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = parse_plain(b"\0alice\0hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
