//! Native TLS (rustls with the ring provider; TLS 1.2 and 1.3): the server certificate and key
//! from PEM files, reloaded without a restart when the files change or on SIGHUP, and the
//! handshake the edge runs on each accepted connection (`edge.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::edge::{Handshake, Io, Transport};

/// The ring provider, the only one built in (no aws-lc-rs: one TLS stack, no C/CMake build).
/// rustls 0.23.48 marks it deprecated for lacking post-quantum key exchange (X25519MLKEM768),
/// which only its aws-lc-rs provider offers; X25519 and the NIST curves remain.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate in force, swapped whole on reload (handshakes under way keep the old one).
pub struct Certificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last loaded.
    seen: Mutex<Option<(FileStamp, FileStamp)>>,
}

type FileStamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// Why the certificate or its key cannot be used. The key file's contents are never quoted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{} is not a PEM certificate chain", .path.display())]
    NotPem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The parser's error is not kept: it could describe what it read of the key.
    #[error("{} holds no PEM private key", .0.display())]
    NoKey(PathBuf),
    #[error("{}: the private key type is not supported", .0.display())]
    UnsupportedKey(PathBuf),
    #[error("{} does not hold the private key of {}", .key_file.display(), .cert_file.display())]
    KeyMismatch {
        key_file: PathBuf,
        cert_file: PathBuf,
    },
    #[error("TLS")]
    Config(#[source] rustls::Error),
}

/// Reads a certificate chain and its private key (PEM; PKCS#8, PKCS#1 or SEC1).
pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let path = || cert_file.to_path_buf();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|source| TlsError::Read {
            path: path(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::NotPem {
            path: path(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|_| TlsError::NoKey(key_file.to_path_buf()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| TlsError::UnsupportedKey(key_file.to_path_buf()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            key_file: key_file.to_path_buf(),
            cert_file: path(),
        })
        .map(|_| Arc::new(certified))
}

impl Certificate {
    pub fn open(cert_file: PathBuf, key_file: PathBuf) -> Result<Arc<Certificate>, TlsError> {
        let seen = stamp(&cert_file).zip(stamp(&key_file));
        let current = load(&cert_file, &key_file)?;
        Ok(Arc::new(Certificate {
            cert_file,
            key_file,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        }))
    }

    /// The end-entity certificate in force (DER).
    pub fn current_der(&self) -> Vec<u8> {
        let current = self.current.read().expect("tls lock");
        current.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }

    /// Loads the files again; on an error the certificate in force stays (and is logged).
    pub fn reload(&self, why: &str) -> bool {
        let seen = stamp(&self.cert_file).zip(stamp(&self.key_file));
        *self.seen.lock().expect("tls lock") = seen;
        match load(&self.cert_file, &self.key_file) {
            Ok(new) => {
                *self.current.write().expect("tls lock") = new;
                tracing::info!(cert_file = %self.cert_file.display(), why, "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %coffer_core::error::Chain(&e), why, "TLS certificate not reloaded; the previous one stays in use");
                false
            }
        }
    }

    /// Reloads when either file changed since it was last read.
    fn reload_if_changed(&self) {
        let now = stamp(&self.cert_file).zip(stamp(&self.key_file));
        if now.is_some() && now != *self.seen.lock().expect("tls lock") {
            self.reload("file changed");
        }
    }

    /// Watches the files (every second) and SIGHUP, reloading on either, until the process ends.
    pub fn watch(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                me.reload_if_changed();
            }
        });
        let me = self.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        me.reload("SIGHUP");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGHUP; certificate files are still watched")
            }
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("tls lock").clone())
    }
}

/// TLS 1.2 and 1.3 with the ring provider, HTTP/1.1 by ALPN.
pub fn server_config(certificate: Arc<Certificate>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The edge's handshake for TLS: a connection whose handshake fails is closed.
pub fn handshake(config: Arc<ServerConfig>) -> Handshake {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    Arc::new(move |stream| {
        let acceptor = acceptor.clone();
        Box::pin(async move {
            match acceptor.accept(stream).await {
                Ok(tls) => Some((Box::new(tls) as Box<dyn Io>, Transport { tls: true })),
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    None
                }
            }
        })
    })
}
