//! The Sender Rewriting Scheme (SRS, Shevek's "Sender Rewriting Scheme" paper, as
//! libsrs2 and postsrsd implement it): mail an alias or a Sieve `redirect` forwards to
//! another server leaves with a MAIL FROM of our own domain, so the next hop's SPF check
//! (RFC 7208) sees our address, which our SPF record covers, instead of a sender whose
//! domain never authorised us. A bounce to that address comes back to us, and we send it
//! on to the original sender.
//!
//! `user@example.org` forwarded by `ours.test` becomes
//! `SRS0=HHHHHH=TT=example.org=user@ours.test`: `TT` is the day (mod 1024, base32) so the
//! address expires, `HHHHHH` a keyed hash of the rest so nobody can make us relay to an
//! address of their choosing. A sender that is already `SRS0=…@hop1` becomes
//! `SRS1=HHHHHH=hop1==…@ours.test` (the paper's §4.3): a bounce goes straight back to the
//! first forwarder, which alone can check its own hash.
//!
//! The hash is six base32 characters (30 bits) of a keyed BLAKE2b, not libsrs2's four of
//! base64 HMAC-SHA1: only we check it, and base32 survives the next hop folding the
//! local part's case, which base64 does not.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};
use posthorn_proto::Mailbox;
use tracing::warn;

/// Base32 digits (RFC 4648 §6), as libsrs2 writes the timestamp.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The timestamp counts days modulo this (two base32 digits).
const DAYS_WRAP: u64 = 1024;
/// Characters of hash.
const HASH_LEN: usize = 6;
/// The file, in the data folder, that holds the key.
const KEY_FILE: &str = "srs.key";

/// Why a rewritten address is not taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not an SRS address of the form we write.
    Malformed,
    /// The hash does not match: not ours, or altered.
    BadHash,
    /// Older than the configured age.
    Expired,
    /// No key could be read or made.
    NoKey,
}

/// Rewrites senders and takes rewritten addresses back, with the key kept in the data
/// folder (made on first use, so a server that never forwards never writes it).
pub struct Srs {
    key_path: PathBuf,
    key: OnceLock<Option<[u8; 32]>>,
    max_age_days: u64,
}

impl fmt::Debug for Srs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Srs")
            .field("key_path", &self.key_path)
            .field("max_age_days", &self.max_age_days)
            .finish_non_exhaustive()
    }
}

impl Srs {
    /// SRS with its key in `data_dir`, accepting addresses up to `max_age_days` old.
    pub fn new(data_dir: &std::path::Path, max_age_days: u64) -> Srs {
        Srs {
            key_path: data_dir.join(KEY_FILE),
            key: OnceLock::new(),
            max_age_days: max_age_days.min(DAYS_WRAP - 1),
        }
    }

    fn key(&self) -> Option<&[u8; 32]> {
        self.key
            .get_or_init(|| match load_or_make_key(&self.key_path) {
                Ok(key) => Some(key),
                Err(e) => {
                    warn!(file = %self.key_path.display(), error = %e, "cannot read or make the SRS key; forwarded mail keeps its sender");
                    None
                }
            })
            .as_ref()
    }

    /// `sender` as it leaves when `domain` (ours) forwards it on day `day` (days since
    /// the epoch); unchanged when no key can be had.
    pub fn forward(&self, sender: &Mailbox, domain: &str, day: u64) -> Mailbox {
        let Some(key) = self.key() else {
            return sender.clone();
        };
        let local = match split_prefix(&sender.local) {
            // SRS0 of another forwarder: point back at it (the paper's SRS1).
            Some((Kind::Zero, rest)) => {
                let first_hop = &sender.domain;
                format!("SRS1={}={first_hop}=={rest}", hash(key, &[first_hop, rest]))
            }
            // SRS1 already: keep its first hop and opaque part, vouch for them ourselves.
            Some((Kind::One, rest)) => match parse_srs1(rest) {
                Some((_, first_hop, opaque)) => {
                    format!(
                        "SRS1={}={first_hop}=={opaque}",
                        hash(key, &[first_hop, opaque])
                    )
                }
                None => srs0(key, sender, day),
            },
            None => srs0(key, sender, day),
        };
        Mailbox {
            local,
            domain: domain.to_string(),
        }
    }

    /// The address `local` (at one of our domains) stands for, if it is an SRS address
    /// we wrote no more than the configured age ago (today is `day`); `None` when it is
    /// no SRS address at all.
    pub fn reverse(&self, local: &str, day: u64) -> Option<Result<Mailbox, Refused>> {
        let (kind, rest) = split_prefix(local)?;
        let Some(key) = self.key() else {
            return Some(Err(Refused::NoKey));
        };
        Some(match kind {
            Kind::Zero => self.reverse_srs0(key, rest, day),
            Kind::One => match parse_srs1(rest) {
                Some((given, first_hop, opaque)) => {
                    if hash_matches(key, given, &[first_hop, opaque]) {
                        Ok(Mailbox {
                            local: format!("SRS0={opaque}"),
                            domain: first_hop.to_string(),
                        })
                    } else {
                        Err(Refused::BadHash)
                    }
                }
                None => Err(Refused::Malformed),
            },
        })
    }

    fn reverse_srs0(&self, key: &[u8; 32], rest: &str, day: u64) -> Result<Mailbox, Refused> {
        let mut parts = rest.splitn(4, '=');
        let (Some(given), Some(stamp), Some(domain), Some(local)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed);
        };
        if domain.is_empty() || local.is_empty() {
            return Err(Refused::Malformed);
        }
        let Some(stamped) = decode_stamp(stamp) else {
            return Err(Refused::Malformed);
        };
        if !hash_matches(key, given, &[stamp, domain, local]) {
            return Err(Refused::BadHash);
        }
        let age = (day % DAYS_WRAP + DAYS_WRAP - stamped) % DAYS_WRAP;
        if age > self.max_age_days {
            return Err(Refused::Expired);
        }
        Ok(Mailbox {
            local: local.to_string(),
            domain: domain.to_string(),
        })
    }
}

/// Which SRS form a local part has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zero,
    One,
}

/// `SRS0=rest` or `SRS1=rest` (any case; `=`, `+` or `-` after the tag, as the paper
/// allows) → the kind and `rest`.
fn split_prefix(local: &str) -> Option<(Kind, &str)> {
    let tag = local.get(..4)?;
    let kind = if tag.eq_ignore_ascii_case("SRS0") {
        Kind::Zero
    } else if tag.eq_ignore_ascii_case("SRS1") {
        Kind::One
    } else {
        return None;
    };
    let rest = local.get(4..)?;
    let rest = rest.strip_prefix(['=', '+', '-'])?;
    Some((kind, rest))
}

/// `HHH=first-hop=<sep>opaque` (the rest of an SRS1 local part) → its parts; the
/// separator of the original SRS0 is dropped, as we write `=` again.
fn parse_srs1(rest: &str) -> Option<(&str, &str, &str)> {
    let mut parts = rest.splitn(3, '=');
    let given = parts.next()?;
    let first_hop = parts.next()?;
    let opaque = parts.next()?;
    let opaque = opaque.strip_prefix(['=', '+', '-']).unwrap_or(opaque);
    (!first_hop.is_empty() && !opaque.is_empty()).then_some((given, first_hop, opaque))
}

fn srs0(key: &[u8; 32], sender: &Mailbox, day: u64) -> String {
    let stamp = encode_stamp(day);
    format!(
        "SRS0={}={stamp}={}={}",
        hash(key, &[&stamp, &sender.domain, &sender.local]),
        sender.domain,
        sender.local
    )
}

fn encode_stamp(day: u64) -> String {
    let day = day % DAYS_WRAP;
    let digit = |v: u64| char::from(BASE32[(v & 31) as usize]);
    [digit(day >> 5), digit(day)].iter().collect()
}

fn decode_stamp(stamp: &str) -> Option<u64> {
    let bytes = stamp.as_bytes();
    if bytes.len() != 2 {
        return None;
    }
    let value = |b: u8| {
        BASE32
            .iter()
            .position(|c| *c == b.to_ascii_uppercase())
            .map(|p| p as u64)
    };
    Some(value(bytes[0])? << 5 | value(bytes[1])?)
}

/// The keyed hash of `parts`, case-folded (the next hop may fold the local part) and each
/// length-prefixed so no two splits of one string hash alike.
fn hash(key: &[u8; 32], parts: &[&str]) -> String {
    let Ok(mut mac) = Blake2bMac512::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        let folded = part.to_lowercase();
        mac.update(&(folded.len() as u64).to_be_bytes());
        mac.update(folded.as_bytes());
    }
    let digest = mac.finalize().into_bytes();
    let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (0..HASH_LEN)
        .map(|i| char::from(BASE32[((bits >> (27 - 5 * i)) & 31) as usize]))
        .collect()
}

fn hash_matches(key: &[u8; 32], given: &str, parts: &[&str]) -> bool {
    let expected = hash(key, parts);
    !expected.is_empty() && given.eq_ignore_ascii_case(&expected)
}

/// Reads the key, or makes it under a lock so two writers never make two keys.
fn load_or_make_key(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    let read = |path: &std::path::Path| -> std::io::Result<Option<[u8; 32]>> {
        match std::fs::read(path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                .map(Some)
                .map_err(|_| std::io::Error::other("the key file is not 32 octets")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    let _lock = crate::atomic_file::lock_beside(path)?;
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    crate::atomic_file::replace(path, &key, 0o600)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Mailbox {
        posthorn_proto::address::parse_mailbox(text).unwrap()
    }

    fn srs(dir: &tempfile::TempDir) -> Srs {
        Srs::new(dir.path(), 21)
    }

    #[test]
    fn a_forwarded_sender_comes_back_within_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let srs = srs(&dir);
        let day = 20_000;
        let out = srs.forward(&mailbox("Joe.Bloggs@Example.org"), "ours.test", day);
        assert_eq!(out.domain, "ours.test");
        assert!(out.local.starts_with("SRS0="), "{out}");
        assert!(out.local.ends_with("=Example.org=Joe.Bloggs"), "{out}");
        for later in [day, day + 21] {
            assert_eq!(
                srs.reverse(&out.local, later),
                Some(Ok(mailbox("Joe.Bloggs@Example.org")))
            );
        }
        assert_eq!(
            srs.reverse(&out.local.to_lowercase(), day),
            Some(Ok(mailbox("joe.bloggs@example.org"))),
            "the next hop may fold case"
        );
        assert_eq!(
            srs.reverse(&out.local, day + 22),
            Some(Err(Refused::Expired))
        );
    }

    #[test]
    fn the_timestamp_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        let srs = srs(&dir);
        let out = srs.forward(&mailbox("a@b.example"), "ours.test", 1023);
        assert!(matches!(srs.reverse(&out.local, 1024 + 3), Some(Ok(_))));
        assert_eq!(decode_stamp(&encode_stamp(1023)), Some(1023));
    }

    #[test]
    fn an_altered_or_foreign_address_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let srs = srs(&dir);
        let out = srs.forward(&mailbox("joe@example.org"), "ours.test", 5);
        let altered = out.local.replace("=joe", "=eve");
        assert_eq!(srs.reverse(&altered, 5), Some(Err(Refused::BadHash)));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(
            Srs::new(other.path(), 21).reverse(&out.local, 5),
            Some(Err(Refused::BadHash))
        );
        for bad in ["SRS0=", "SRS0=abc", "SRS0=AAAAAA=Z!=x=y", "SRS1=AAAAAA=hop"] {
            assert_eq!(srs.reverse(bad, 5), Some(Err(Refused::Malformed)), "{bad}");
        }
        assert_eq!(srs.reverse("joe", 5), None);
        assert_eq!(srs.reverse("srs", 5), None);
    }

    #[test]
    fn a_forwarder_after_another_points_back_at_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = srs(&dir);
        let once = first.forward(&mailbox("joe@example.org"), "hop1.test", 7);
        let other = tempfile::tempdir().unwrap();
        let second = Srs::new(other.path(), 21);
        let twice = second.forward(&once, "hop2.test", 7);
        assert!(twice.local.starts_with("SRS1="), "{twice}");
        let back = second.reverse(&twice.local, 7).unwrap().unwrap();
        assert_eq!(back.domain, "hop1.test");
        assert_eq!(
            first.reverse(&back.local, 7),
            Some(Ok(mailbox("joe@example.org")))
        );
        let third_dir = tempfile::tempdir().unwrap();
        let third = Srs::new(third_dir.path(), 21);
        let thrice = third.forward(&twice, "hop3.test", 7);
        let back = third.reverse(&thrice.local, 7).unwrap().unwrap();
        assert_eq!(back.domain, "hop1.test");
        assert!(matches!(first.reverse(&back.local, 7), Some(Ok(_))));
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = srs(&dir).forward(&mailbox("joe@example.org"), "ours.test", 9);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(srs(&dir).reverse(&out.local, 9), Some(Ok(_))));
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let broken = srs(&dir);
        assert_eq!(
            broken.forward(&mailbox("joe@example.org"), "ours.test", 9),
            mailbox("joe@example.org")
        );
        assert_eq!(broken.reverse(&out.local, 9), Some(Err(Refused::NoKey)));
    }
}
