//! TLS for `https://` peers. The sealed messages are authenticated on their own (the seal and
//! the proof header); TLS adds confidentiality of the metadata and is checked as any client
//! would: a peer's certificate must chain to a CA of `peer_ca_file`, or be exactly this node's
//! own certificate (a node reaches its own Regions through its own URL, which its certificate
//! need not name, e.g. `https://0.0.0.0:443`; presenting that certificate proves holding its
//! key).
//!
//! Set once at start with [`configure`]; a transport made before (or without) it trusts no CA
//! and so reaches only `http://` peers and this node itself.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// This node's certificate as it is now (it may be reloaded), DER.
pub type OwnCertificate = Arc<dyn Fn() -> Option<Vec<u8>> + Send + Sync>;

struct Settings {
    roots: RootCertStore,
    own: Option<OwnCertificate>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Why `peer_ca_file` cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum PeerCaError {
    #[error("peer_ca_file is not PEM")]
    NotPem(#[source] rustls_pki_types::pem::Error),
    #[error("peer_ca_file holds a certificate that is not a CA")]
    NotCa(#[source] rustls::Error),
    #[error("peer_ca_file holds no certificate")]
    Empty,
}

/// The CAs trusted for peers (PEM, any number) and this node's own certificate. Call once,
/// before the replication worker starts; later calls are ignored (returns false).
pub fn configure(ca_pem: Option<&[u8]>, own: Option<OwnCertificate>) -> Result<bool, PeerCaError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(PeerCaError::NotPem)?)
                .map_err(PeerCaError::NotCa)?;
        }
        if roots.is_empty() {
            return Err(PeerCaError::Empty);
        }
    }
    Ok(SETTINGS.set(Settings { roots, own }).is_ok())
}

#[allow(deprecated)] // the ring provider: see coffer_api::tls::provider
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration of the replication transport (TLS 1.2 and 1.3).
pub fn client_config() -> ClientConfig {
    let provider = provider();
    let settings = SETTINGS.get();
    let roots = settings
        .map(|s| s.roots.clone())
        .unwrap_or_else(RootCertStore::empty);
    let webpki = if roots.is_empty() {
        None
    } else {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .ok()
    };
    let verifier = Arc::new(PeerVerifier {
        webpki,
        own: settings.and_then(|s| s.own.clone()),
        provider: provider.clone(),
    });
    // ALPN (http/1.1) is set by hyper-rustls's builder.
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

struct PeerVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    own: Option<OwnCertificate>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerVerifier").finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(own) = self.own.as_ref().and_then(|f| f())
            && own.as_slice() == end_entity.as_ref()
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
