//! Outgoing authentication: the DKIM keys of our domains, the DKIM signatures of our users'
//! mail and bounces, and ARC seals for mail an alias or a Sieve `redirect` forwards.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Algorithm as SigAlgorithm, DkimKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};
use tracing::warn;

use super::blank_tail::without_blank_tail;
use super::keys::{self, Algorithm, LoadedKey};
use crate::config::Config;

/// Header fields signed, each listed twice: mail-auth signs every instance present and
/// then the name once more, which "over-signs" it, so a copy added later breaks the
/// signature instead of changing what the reader sees.
const SIGNED_HEADERS: [&str; 14] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A key shared by the DKIM signer and the ARC sealer of its domain.
#[derive(Clone)]
struct SharedKey(Arc<DkimKey>);

impl SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> SigAlgorithm {
        self.0.algorithm()
    }
}

/// One key of a domain, as named in DNS.
pub struct DomainKey {
    /// `s=`.
    pub selector: String,
    /// What the DNS must publish.
    pub key: LoadedKey,
}

impl DomainKey {
    /// The key in `path`, published under `selector`; errors name the file.
    pub fn load(selector: &str, path: &Path) -> Result<DomainKey, String> {
        keys::load(path)
            .map(|key| DomainKey {
                selector: selector.to_string(),
                key,
            })
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The keys of every domain we sign for.
#[derive(Default)]
pub struct Keyring {
    domains: HashMap<String, Vec<DomainKey>>,
}

impl Keyring {
    /// The configured keys; for each of `local_domains` without one, the newest key of each
    /// algorithm in `data_dir/dkim/DOMAIN/`, made first when `dkim.generate_keys` is on.
    pub fn load(config: &Config, local_domains: &[String]) -> Result<Keyring, String> {
        let mut domains: HashMap<String, Vec<DomainKey>> = HashMap::new();
        for configured in &config.dkim.keys {
            let key = DomainKey::load(configured.selector.get_ref(), configured.file.get_ref())?;
            domains
                .entry(configured.domain.get_ref().to_ascii_lowercase())
                .or_default()
                .push(key);
        }
        for domain in local_domains {
            let domain = domain.to_ascii_lowercase();
            if domains.contains_key(&domain) {
                continue;
            }
            let folder = keys::domain_folder(&config.server.data_dir, &domain);
            let mut found = newest_per_algorithm(&folder)?;
            if config.dkim.generate_keys {
                for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
                    if found.iter().any(|k| k.key.algorithm == algorithm) {
                        continue;
                    }
                    let selector = algorithm.default_selector(SystemTime::now());
                    let path = keys::create(&folder, &selector, algorithm)?;
                    let made = DomainKey::load(&selector, &path)?;
                    warn!(
                        domain,
                        selector,
                        record = %format!("{selector}._domainkey.{domain}. TXT \"{}\"", made.key.txt_record()),
                        "made a DKIM key; publish its record (posthorn dns-records {domain})"
                    );
                    found.push(made);
                }
            }
            if !found.is_empty() {
                domains.insert(domain, found);
            }
        }
        Ok(Keyring { domains })
    }

    /// The signing domain for mail from `domain` and its keys: the domain itself or the
    /// nearest parent we have keys for (a parent aligns under relaxed DMARC).
    pub fn for_domain(&self, domain: &str) -> Option<(&str, &[DomainKey])> {
        let mut name = domain.trim_end_matches('.').to_ascii_lowercase();
        loop {
            if let Some((domain, keys)) = self.domains.get_key_value(&name) {
                return Some((domain.as_str(), keys.as_slice()));
            }
            let (_, parent) = name.split_once('.')?;
            if !parent.contains('.') {
                return None;
            }
            name = parent.to_string();
        }
    }
}

/// Every key the DNS should publish for `domain`: its configured keys, else every key in
/// its folder (older selectors stay published while a rotation settles).
pub fn published_keys(config: &Config, domain: &str) -> Result<Vec<DomainKey>, String> {
    let configured: Vec<_> = config
        .dkim
        .keys
        .iter()
        .filter(|k| k.domain.get_ref().eq_ignore_ascii_case(domain))
        .collect();
    if !configured.is_empty() {
        return configured
            .into_iter()
            .map(|k| DomainKey::load(k.selector.get_ref(), k.file.get_ref()))
            .collect();
    }
    let folder = keys::domain_folder(&config.server.data_dir, domain);
    keys::in_folder(&folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .into_iter()
        .map(|(selector, path, _)| DomainKey::load(&selector, &path))
        .collect()
}

/// The newest key of each algorithm in a domain folder.
fn newest_per_algorithm(folder: &Path) -> Result<Vec<DomainKey>, String> {
    let listed = keys::in_folder(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let mut keys: Vec<DomainKey> = Vec::new();
    for (selector, path, _) in listed {
        let key = DomainKey::load(&selector, &path)?;
        if !keys.iter().any(|k| k.key.algorithm == key.key.algorithm) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Signs and seals with the keyring's keys.
pub struct Signer {
    dkim: HashMap<String, Vec<DkimSigner<SharedKey, Done>>>,
    arc: HashMap<String, ArcSealer<SharedKey, Done>>,
    keyring: Keyring,
}

impl Signer {
    /// Signers for every key (relaxed/relaxed, over-signed headers) and, per domain, an ARC
    /// sealer with its RSA key (the one algorithm RFC 8617 defines), else its first key.
    pub fn new(keyring: Keyring) -> Signer {
        let mut dkim = HashMap::new();
        let mut arc = HashMap::new();
        for (domain, keys) in &keyring.domains {
            let shared: Vec<(&DomainKey, SharedKey)> = keys
                .iter()
                .map(|k| (k, SharedKey(Arc::clone(&k.key.key))))
                .collect();
            let signers = shared
                .iter()
                .map(|(k, key)| {
                    DkimSigner::from_key(key.clone())
                        .domain(domain.clone())
                        .selector(k.selector.clone())
                        .headers(SIGNED_HEADERS.iter().chain(SIGNED_HEADERS.iter()).copied())
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed)
                })
                .collect();
            dkim.insert(domain.clone(), signers);
            let sealing = shared
                .iter()
                .find(|(k, _)| k.key.algorithm == Algorithm::Rsa)
                .or(shared.first());
            if let Some((k, key)) = sealing {
                let sealer = ArcSealer::from_key(key.clone())
                    .domain(domain.clone())
                    .selector(k.selector.clone())
                    .headers([
                        "From",
                        "To",
                        "Cc",
                        "Subject",
                        "Date",
                        "Message-ID",
                        "DKIM-Signature",
                    ])
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed);
                arc.insert(domain.clone(), sealer);
            }
        }
        Signer { dkim, arc, keyring }
    }

    /// The keys signing for `domain`, if any.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// `DKIM-Signature` header lines for a message (`prepend`, our header lines, then
    /// `content`) whose From address is in a domain we have keys for; empty otherwise.
    /// Whitespace-only lines ending the body are removed from `content` first (see
    /// `blank_tail`), so every verifier computes the body hash we signed.
    pub fn sign(&self, prepend: &[u8], content: &mut Vec<u8>) -> String {
        let Some((signing_domain, signers)) = self.signers_for(content) else {
            return String::new();
        };
        if let Some(len) = without_blank_tail(content) {
            content.truncate(len);
        }
        let parts = [prepend, content.as_slice()];
        let mut headers = String::new();
        for signer in signers {
            match signer.sign_chained(parts.iter().copied()) {
                Ok(signature) => headers.push_str(&signature.to_header()),
                Err(e) => warn!(domain = signing_domain, error = %e, "DKIM signing failed"),
            }
        }
        headers
    }

    /// True when a message with this header section would be signed: we hold keys for
    /// its From domain. Decided from the header alone, so a large message that will not be
    /// signed is not read back for it.
    pub fn signs_for(&self, section: &[u8]) -> bool {
        self.signers_for(section).is_some()
    }

    /// The signing domain and its signers for a message's From domain.
    fn signers_for(&self, message: &[u8]) -> Option<(&str, &[DkimSigner<SharedKey, Done>])> {
        let domain = from_domain(message)?;
        let (signing_domain, _) = self.keyring.for_domain(&domain)?;
        let signers = self.dkim.get(signing_domain)?;
        Some((signing_domain, signers))
    }

    /// An ARC set (three header lines) sealing `message` as `domain`, recording `results`,
    /// when we hold a key for `domain` and the chain so far allows another set.
    pub fn seal(
        &self,
        domain: &str,
        message: &AuthenticatedMessage<'_>,
        results: &AuthenticationResults<'_>,
        arc: &ArcOutput<'_>,
    ) -> Option<String> {
        let (signing_domain, _) = self.keyring.for_domain(domain)?;
        let sealer = self.arc.get(signing_domain)?;
        // ARC headers that mail-auth could not make into as many sets: it would number our
        // set from the sets it has, misstating the chain; better no set than a wrong one.
        let highest = message
            .as_headers
            .iter()
            .map(|h| h.header.i)
            .chain(message.ams_headers.iter().map(|h| h.header.i))
            .chain(message.aar_headers.iter().map(|h| h.header.i))
            .max()
            .unwrap_or(0);
        if highest as usize != arc.sets().len() || !arc.can_be_sealed() {
            return None;
        }
        match sealer.seal(message, results, arc) {
            Ok(set) => Some(set.to_header()),
            Err(e) => {
                warn!(domain = signing_domain, error = %e, "ARC sealing failed");
                None
            }
        }
    }
}

/// The domain of the first From address in the header section of `message`, lower-case.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey as PublishedKey;
    use mail_auth::{DkimResult, Parameters, ResolverCache, Txt};

    use super::*;
    use crate::dns::Dns;

    /// The DKIM key records of the test's domains, by name: all the DNS verification gets.
    #[derive(Default)]
    struct Records(HashMap<Box<str>, Txt>);

    impl ResolverCache<Box<str>, Txt> for Records {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            self.0.get(name).cloned()
        }

        fn remove<Q>(&self, _: &Q) -> Option<Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            None
        }

        fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
    }

    /// A signer for each domain with a new key of each (selector, algorithm), and the
    /// records publishing the keys.
    fn signer(domains: &[(&str, &[(&str, Algorithm)])]) -> (Signer, Records) {
        let mut keyring = Keyring::default();
        let mut records = Records::default();
        for (domain, keys) in domains {
            for (selector, algorithm) in *keys {
                let key = keys::parse(keys::generate(*algorithm).unwrap().as_bytes()).unwrap();
                let published = PublishedKey::parse(key.txt_record().as_bytes()).unwrap();
                records.0.insert(
                    format!("{selector}._domainkey.{domain}.").into(),
                    published.into(),
                );
                keyring
                    .domains
                    .entry(domain.to_string())
                    .or_default()
                    .push(DomainKey {
                        selector: selector.to_string(),
                        key,
                    });
            }
        }
        (Signer::new(keyring), records)
    }

    /// Each DKIM signature's result with its d= and s=, verified against `records` alone
    /// (a cache holding every key; the resolver behind it has no server to ask).
    async fn verify(message: &[u8], records: &Records) -> Vec<(DkimResult, String, String)> {
        let nowhere = "127.0.0.1:9".parse().unwrap();
        let auth = Dns::new(Some(nowhere), Duration::from_millis(200))
            .unwrap()
            .authenticator();
        let message = AuthenticatedMessage::parse(message).expect("a message");
        auth.verify_dkim(Parameters::new(&message).with_txt_cache(records))
            .await
            .into_iter()
            .map(|output| {
                let signature = output.signature().expect("a signature");
                (
                    output.result().clone(),
                    signature.d.clone(),
                    signature.s.clone(),
                )
            })
            .collect()
    }

    const ED25519: &[(&str, Algorithm)] = &[("ed", Algorithm::Ed25519)];

    fn from(address: &str) -> Vec<u8> {
        format!("From: Someone <{address}>\r\nSubject: hi\r\n\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn signs_for_a_from_domain_with_keys_and_its_subdomains_only() {
        let (signer, _) = signer(&[("example.com", ED25519), ("mail.other.test", ED25519)]);
        for (address, signed) in [
            ("a@example.com", true),
            ("a@EXAMPLE.com", true),
            ("a@deep.sub.example.com", true),
            ("a@mail.other.test", true),
            ("a@other.test", false),
            ("a@notexample.com", false),
            ("a@example.com.evil.test", false),
            ("a@com", false),
        ] {
            assert_eq!(signer.signs_for(&from(address)), signed, "{address}");
        }
        assert!(!signer.signs_for(b"Subject: no author\r\n\r\nbody\r\n"));
    }

    #[test]
    fn nothing_is_signed_for_a_domain_without_keys() {
        let (signer, _) = signer(&[("example.com", ED25519)]);
        let mut content = from("a@other.test");
        content.extend_from_slice(b"\r\n\r\n");
        let before = content.clone();
        assert_eq!(signer.sign(b"", &mut content), "");
        assert_eq!(content, before, "the content is left alone");
    }

    #[tokio::test]
    async fn each_key_of_the_domain_adds_a_signature_that_verifies() {
        let (signer, records) = signer(&[(
            "example.com",
            &[("ed", Algorithm::Ed25519), ("rsa", Algorithm::Rsa)],
        )]);
        let prepend = b"Received: from client.test by mx.example.com\r\n";
        // Blank lines ending the body are cut before signing.
        let mut content = from("a@sub.example.com");
        content.extend_from_slice(b"\r\n \r\n");
        let signatures = signer.sign(prepend, &mut content);
        assert_eq!(content, from("a@sub.example.com"));
        let message = [signatures.as_bytes(), prepend, &content].concat();
        let mut results = verify(&message, &records).await;
        results.sort_by(|a, b| a.2.cmp(&b.2));
        assert_eq!(
            results,
            [
                (DkimResult::Pass, "example.com".into(), "ed".into()),
                (DkimResult::Pass, "example.com".into(), "rsa".into()),
            ]
        );
    }

    #[tokio::test]
    async fn a_signed_header_changed_later_fails_verification() {
        let (signer, records) = signer(&[("example.com", ED25519)]);
        let mut content = from("a@example.com");
        let signatures = signer.sign(b"", &mut content);
        let message = [signatures.as_bytes(), &content].concat();
        let changed = String::from_utf8(message)
            .unwrap()
            .replace("Subject: hi", "Subject: changed");
        let results = verify(changed.as_bytes(), &records).await;
        assert_eq!(results.len(), 1);
        assert!(
            matches!(results[0].0, DkimResult::Fail(_)),
            "{:?}",
            results[0]
        );
    }
}
