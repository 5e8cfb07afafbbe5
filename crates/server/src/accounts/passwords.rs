//! Password hashes: argon2id (the PHC string format), made by `posthorn user` and checked
//! at AUTH. Checking costs tens of milliseconds of CPU on purpose, so it runs on a
//! blocking thread, and an unknown user costs the same as a wrong password.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};

use super::check_memory::CheckMemory;

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
    let matches = matches(password.as_bytes(), hash.unwrap_or(DECOY)).unwrap_or(false);
    matches && hash.is_some()
}

/// The argon2 check of `password` against the PHC string `hash`, working in
/// [`CheckMemory`]; `None` when `hash` is no argon2 hash we can check.
fn matches(password: &[u8], hash: &str) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt?, parsed.hash?);
    let mut memory = CheckMemory::new(params.block_count());
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut computed, &mut memory)
        .ok()?;
    // Output compares in constant time.
    Some(Output::new(&computed).ok()? == expected)
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
    fn hashes_of_other_makers_and_parameters_verify() {
        // Dovecot's `doveadm pw -s ARGON2ID` (m=64 MiB, t=3) for "secret", and an argon2i.
        let dovecot = "$argon2id$v=19$m=65536,t=3,p=1$idFXQ/9YEZYQiL/SrkXb2Q$ih+0KT6r/3HelMG0WM6kTa/0EAj9+uUG/pJ5JH7Ru+g";
        assert!(is_hash(dovecot));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::default())
            .hash_password(b"secret")
            .unwrap()
            .to_string();
        for hash in [dovecot, &argon2i] {
            assert!(verify("secret", Some(hash)), "{hash}");
            assert!(!verify("Secret", Some(hash)), "{hash}");
        }
        assert!(!verify(
            "secret",
            Some("$argon2id$v=19$m=19456,t=2,p=1$bm90aGluZw")
        ));
    }

    #[test]
    fn decoy_is_a_valid_hash() {
        assert!(is_hash(DECOY));
    }
}
