//! Password hashes: argon2id (the PHC string format), made by `posthorn user` and checked
//! at AUTH. Checking costs tens of milliseconds of CPU on purpose, so it runs on a
//! blocking thread, and an unknown user costs the same as a wrong password.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// A hash of a password nobody has, checked for unknown users so that their answer takes
/// as long as a wrong password's.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$yiVvp9QDDVCjxGoxnpUG1m0D4TywOozIiF5tvGQh3Lo";

/// The argon2id hash of `password`, with a fresh salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// True when `text` is an argon2 PHC string.
pub fn is_hash(text: &str) -> bool {
    text.starts_with("$argon2") && PasswordHash::new(text).is_ok()
}

/// Checks `password` against `hash`; with no hash (unknown user, no password set) it
/// spends the same effort and says no.
pub fn verify(password: &str, hash: Option<&str>) -> bool {
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), hash.unwrap_or(DECOY))
        .is_ok();
    matches && hash.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hashed = hash("correct horse").unwrap();
        assert!(is_hash(&hashed), "{hashed}");
        assert!(verify("correct horse", Some(&hashed)));
        assert!(!verify("wrong horse", Some(&hashed)));
        assert!(!verify("correct horse", None));
        assert!(!is_hash("plain text"));
    }

    #[test]
    fn decoy_is_a_valid_hash() {
        assert!(is_hash(DECOY));
    }
}
