//! TLS for outbound connections. Opportunistic TLS (RFC 7435) accepts any certificate, as
//! mail servers must to interoperate, but still checks the chain afterwards so the log says
//! whether it would have passed; `verify` insists on a certificate valid for the host name.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::warn;

/// The two client configurations and the verifier behind them.
#[derive(Debug)]
pub struct TlsClient {
    verifier: Option<Arc<WebPkiServerVerifier>>,
    verifying: Option<Arc<ClientConfig>>,
    accepting: Arc<ClientConfig>,
}

impl TlsClient {
    /// Trusts the system's roots and, if given, the certificates in `extra_ca` (PEM).
    pub fn new(extra_ca: Option<&Path>) -> io::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = extra_ca {
            for cert in CertificateDer::pem_file_iter(path).map_err(io::Error::other)? {
                roots
                    .add(cert.map_err(io::Error::other)?)
                    .map_err(io::Error::other)?;
            }
        }
        let verifier = if roots.is_empty() {
            warn!("no trusted root certificates: deliveries with tls = \"verify\" will fail");
            None
        } else {
            let built =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(io::Error::other)?;
            Some(built)
        };
        let versions = rustls::DEFAULT_VERSIONS;
        let verifying = match &verifier {
            Some(verifier) => Some(Arc::new(
                ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(versions)
                    .map_err(io::Error::other)?
                    .with_webpki_verifier(verifier.clone())
                    .with_no_client_auth(),
            )),
            None => None,
        };
        let accepting = Arc::new(
            ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .map_err(io::Error::other)?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth(),
        );
        Ok(TlsClient {
            verifier,
            verifying,
            accepting,
        })
    }

    /// The configuration for a handshake: verifying, or accepting any certificate. `None`
    /// when verification is asked for but no trust anchor is known.
    pub fn config(&self, verify: bool) -> Option<Arc<ClientConfig>> {
        if verify {
            self.verifying.clone()
        } else {
            Some(self.accepting.clone())
        }
    }

    /// Whether the certificates a server presented are valid for `name`.
    pub fn would_verify(&self, certificates: &[CertificateDer<'_>], name: &ServerName<'_>) -> bool {
        let (Some(verifier), Some((end_entity, intermediates))) =
            (&self.verifier, certificates.split_first())
        else {
            return false;
        };
        verifier
            .verify_server_cert(end_entity, intermediates, name, &[], UnixTime::now())
            .is_ok()
    }
}

/// Accepts any certificate, while still checking the handshake signatures made with it.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
