//! Our TLS certificate for STARTTLS and implicit TLS: loaded from PEM files, or made
//! self-signed on first start so that encryption works out of the box; swapped in place on
//! SIGHUP, so a renewed certificate takes effect without dropping a session.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// A certificate or key that could not be used.
#[derive(Debug, Clone)]
pub struct CertError {
    /// True when the problem is with the key file.
    pub in_key: bool,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CertError {}

/// Where our certificate comes from.
#[derive(Debug, Clone)]
pub struct CertSource {
    /// The chain (PEM).
    pub certificate: PathBuf,
    /// The key (PEM).
    pub key: PathBuf,
}

impl CertSource {
    /// The configured files, or the self-signed pair in `data_dir/tls`, made now for
    /// `hostname` and `addresses` if it does not exist yet.
    pub fn resolve(
        configured: Option<(PathBuf, PathBuf)>,
        data_dir: &Path,
        hostname: &str,
        addresses: &[IpAddr],
    ) -> anyhow::Result<CertSource> {
        if let Some((certificate, key)) = configured {
            return Ok(CertSource { certificate, key });
        }
        let folder = data_dir.join("tls");
        let source = CertSource {
            certificate: folder.join("self-signed.crt"),
            key: folder.join("self-signed.key"),
        };
        if !source.certificate.exists() || !source.key.exists() {
            generate_self_signed(&source, hostname, addresses)?;
        }
        warn!(
            certificate = %source.certificate.display(),
            "no [tls] certificate configured: using a self-signed one; clients that check \
             certificates will refuse it"
        );
        Ok(source)
    }
}

/// Makes a self-signed certificate named for `hostname` (subject CN and a DNS name) and
/// for `addresses` (IP address names, for clients that connect by address); the key file
/// is readable by us only. A client shown it sees whose it is, not rcgen's default name.
fn generate_self_signed(
    source: &CertSource,
    hostname: &str,
    addresses: &[IpAddr],
) -> anyhow::Result<()> {
    let mut names = vec![hostname.to_string()];
    for address in addresses {
        let address = address.to_string();
        if !names.contains(&address) {
            names.push(address);
        }
    }
    let listed = names.join(", ");
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    crate::atomic_file::replace(&source.key, key.serialize_pem().as_bytes(), 0o600)?;
    crate::atomic_file::replace(&source.certificate, certificate.pem().as_bytes(), 0o644)?;
    info!(certificate = %source.certificate.display(), names = %listed, "made a self-signed certificate");
    Ok(())
}

/// Start-up and `check-config`: the configured certificate and key files load and match.
pub fn check_files(config: &crate::config::Config) -> Result<(), crate::config::Invalid> {
    let (Some(certificate), Some(key)) = (&config.tls.certificate, &config.tls.key) else {
        return Ok(());
    };
    load_pem(certificate.get_ref(), key.get_ref()).map_err(|e| {
        let (name, value) = if e.in_key {
            ("tls.key", key)
        } else {
            ("tls.certificate", certificate)
        };
        crate::config::Invalid::at(name, value, e.message)
    })?;
    Ok(())
}

/// Reads a chain and key and checks that they belong together.
pub fn load_pem(certificate: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let cert_error = |message: String| CertError {
        in_key: false,
        message,
    };
    let key_error = |message: String| CertError {
        in_key: true,
        message,
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_error(format!("cannot read {}: {e}", certificate.display())))?;
    if chain.is_empty() {
        return Err(cert_error(format!(
            "no certificate in {}",
            certificate.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| key_error(format!("cannot read {}: {e}", key.display())))?;
    let provider = aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|e| {
        key_error(format!(
            "{} does not fit {}: {e}",
            key.display(),
            certificate.display()
        ))
    })?;
    Ok(certified)
}

/// The certificate in use; `reload` replaces it for every handshake that follows.
#[derive(Debug)]
pub struct Certificates {
    source: CertSource,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the certificate from `source`.
    pub fn load(source: CertSource) -> anyhow::Result<Arc<Certificates>> {
        let certified = load_pem(&source.certificate, &source.key)?;
        Ok(Arc::new(Certificates {
            source,
            current: RwLock::new(Arc::new(certified)),
        }))
    }

    /// Reads the files again (SIGHUP). A broken file leaves the old certificate in use.
    pub fn reload(&self) {
        match load_pem(&self.source.certificate, &self.source.key) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
                info!(certificate = %self.source.certificate.display(), "certificate reloaded");
            }
            Err(e) => warn!(error = %e, "certificate not reloaded, keeping the old one"),
        }
    }

    /// The acceptor for our listeners: TLS 1.2 and 1.3 only (rustls has nothing older).
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let resolver: Arc<dyn ResolvesServerCert> = Arc::new(Resolver(Arc::clone(self)));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map(|builder| builder.with_no_client_auth().with_cert_resolver(resolver));
        match config {
            Ok(config) => TlsAcceptor::from(Arc::new(config)),
            Err(e) => unreachable!("the default provider supports TLS 1.2 and 1.3: {e}"),
        }
    }
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .0
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::resolve(None, dir.path(), "mx.test", &[]).unwrap();
        let first = std::fs::read(&source.certificate).unwrap();
        let certificates = Certificates::load(source.clone()).unwrap();
        let again = CertSource::resolve(None, dir.path(), "mx.test", &[]).unwrap();
        assert_eq!(std::fs::read(&again.certificate).unwrap(), first);
        certificates.reload();
    }

    #[test]
    fn mismatched_key_is_named() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let one = CertSource::resolve(None, a.path(), "a.test", &[]).unwrap();
        let two = CertSource::resolve(None, b.path(), "b.test", &[]).unwrap();
        let error = load_pem(&one.certificate, &two.key).unwrap_err();
        assert!(error.in_key, "{error}");
        let error = load_pem(&a.path().join("missing.pem"), &one.key).unwrap_err();
        assert!(!error.in_key, "{error}");
    }
}
