//! DKIM keys: PEM files holding an Ed25519 or RSA private key, made here (`posthorn dkim
//! generate`, or at start for a local domain without one) or by openssl, and the TXT record
//! that publishes each.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// The signature algorithms we make keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    /// Ed25519-SHA256 (RFC 8463): short keys and signatures, not yet verified everywhere.
    Ed25519,
    /// RSA-SHA256 with 2048-bit keys: verified everywhere.
    Rsa,
}

impl Algorithm {
    /// The `k=` value of the key record.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    /// The selector `posthorn dkim generate` and start-up use when none is given: the
    /// month the key was made and the algorithm, so a rotated key gets a new name.
    pub fn default_selector(self, now: SystemTime) -> String {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = mail_parser::DateTime::from_timestamp(secs as i64);
        let (year, month) = (date.year, date.month);
        let suffix = match self {
            Algorithm::Ed25519 => 'e',
            Algorithm::Rsa => 'r',
        };
        format!("{year}{month:02}{suffix}")
    }
}

/// A private key read from its file, with what the DNS must publish for it.
pub struct LoadedKey {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The signing key, shared with the signers.
    pub key: Arc<DkimKey>,
    /// The `p=` value: the raw key for Ed25519, the SubjectPublicKeyInfo for RSA.
    pub public: Vec<u8>,
}

impl LoadedKey {
    /// The TXT record text to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn txt_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.key_type(),
            base64::engine::general_purpose::STANDARD.encode(&self.public)
        )
    }
}

/// Start-up and `check-config`: every configured DKIM key file loads.
pub fn check_files(config: &crate::config::Config) -> Result<(), crate::config::Invalid> {
    for (i, key) in config.dkim.keys.iter().enumerate() {
        load(key.file.get_ref())
            .map_err(|e| crate::config::Invalid::at(format!("dkim.key[{i}].file"), &key.file, e))?;
    }
    Ok(())
}

/// Reads a PEM private key: PKCS#8 (Ed25519 or RSA) or PKCS#1 (RSA).
pub fn load(path: &Path) -> Result<LoadedKey, String> {
    let pem = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    parse(&pem)
}

/// Parses a PEM private key.
pub fn parse(pem: &[u8]) -> Result<LoadedKey, String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("not a PEM key: {e}"))?;
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der())
    {
        return Ok(LoadedKey {
            algorithm: Algorithm::Ed25519,
            public: key.public_key(),
            key: Arc::new(DkimKey::Ed25519(key)),
        });
    }
    let key = RsaKey::from_key_der(der).map_err(|e| format!("neither Ed25519 nor RSA: {e}"))?;
    Ok(LoadedKey {
        algorithm: Algorithm::Rsa,
        public: rsa_spki(&key.public_key()),
        key: Arc::new(DkimKey::Rsa(key)),
    })
}

/// Makes a new private key as PKCS#8 PEM.
pub fn generate(algorithm: Algorithm) -> Result<String, String> {
    let pair = match algorithm {
        Algorithm::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
        Algorithm::Rsa => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
    };
    pair.map(|p| p.serialize_pem())
        .map_err(|e| format!("cannot generate a key: {e}"))
}

/// Where generated keys of `domain` live.
pub fn domain_folder(data_dir: &Path, domain: &str) -> PathBuf {
    data_dir.join("dkim").join(domain)
}

/// Writes a new key of `algorithm` as `SELECTOR.pem` in `folder` (mode 0600), refusing to
/// replace an existing key: the DNS may still publish its public half.
pub fn create(folder: &Path, selector: &str, algorithm: Algorithm) -> Result<PathBuf, String> {
    let path = folder.join(format!("{selector}.pem"));
    if path.exists() {
        return Err(format!("{} exists already", path.display()));
    }
    let pem = generate(algorithm)?;
    fs::create_dir_all(folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    crate::atomic_file::replace(&path, pem.as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The keys in a domain's folder as (selector, path, modified), newest first.
pub fn in_folder(folder: &Path) -> io::Result<Vec<(String, PathBuf, SystemTime)>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(selector) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pem"))
        else {
            continue;
        };
        let modified = fs::metadata(&path)?.modified()?;
        found.push((selector.to_string(), path, modified));
    }
    found.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| b.0.cmp(&a.0)));
    Ok(found)
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280), the form DKIM records
/// carry and every verifier reads.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }.
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der(0x03, &bit_string));
    der(0x30, &body)
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn generated_keys_load_with_their_algorithm() {
        for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
            let pem = generate(algorithm).expect("generate");
            let key = parse(pem.as_bytes()).expect("parse");
            assert_eq!(key.algorithm, algorithm);
            let record = key.txt_record();
            assert!(record.starts_with(&format!("v=DKIM1; k={}; p=", algorithm.key_type())));
        }
    }

    #[test]
    fn rsa_public_key_is_the_subject_public_key_info() {
        let pem = generate(Algorithm::Rsa).unwrap();
        let key = parse(pem.as_bytes()).unwrap();
        let spki_pem = rcgen::KeyPair::from_pem(&pem).unwrap().public_key_pem();
        let spki =
            rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(spki_pem.as_bytes()).unwrap();
        assert_eq!(key.public, spki.as_ref());
    }

    #[test]
    fn ed25519_public_key_is_raw() {
        let key = parse(generate(Algorithm::Ed25519).unwrap().as_bytes()).unwrap();
        assert_eq!(key.public.len(), 32);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse(b"not a key").is_err());
    }

    #[test]
    fn default_selectors_name_the_month() {
        // 2026-11-23T00:00:00Z
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_392_000);
        assert_eq!(Algorithm::Ed25519.default_selector(when), "202611e");
        assert_eq!(Algorithm::Rsa.default_selector(when), "202611r");
        let new_year = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(Algorithm::Rsa.default_selector(new_year), "202601r");
    }
}
