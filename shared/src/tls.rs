//! TLS for every link, with rustls on the `ring` provider: the configurations of the
//! listeners (token-service's gRPC port, auth-web's HTTPS port) and of the clients (auth-web
//! to token-service), built from PEM files.
//!
//! Certificates, keys and CA bundles are re-read when their files change, so that an
//! operator (or cert-manager, or a renewal timer) rotates them without a restart: each
//! handshake looks at the files' metadata at most once per `CHECK_EVERY`, and a changed set
//! is loaded whole. A set that fails to load is one error line and the previous one stays in
//! use; at start-up a bad file is an error, never a quiet fall back to plaintext.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// How often a handshake may look at the files' metadata.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// ALPN of gRPC (HTTP/2 only).
pub const ALPN_H2: &[&[u8]] = &[b"h2"];
/// ALPN of a web listener: HTTP/2, then HTTP/1.1.
pub const ALPN_WEB: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsError {
    path: String,
    reason: String,
}

impl TlsError {
    fn new(path: &Path, reason: impl fmt::Display) -> Self {
        Self {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The one crypto provider of every configuration.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's configuration: its certificate chain and key, and, when `client_ca` is set,
/// client certificates verified against it. A client may connect without one (resource
/// servers authenticate with an application's credentials instead); one that presents a
/// certificate the CA did not issue fails the handshake.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let certified = Arc::new(CertifiedKeyFiles::load(
        cert_file,
        key_file,
        provider.clone(),
    )?);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(cert_file, e))?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(Arc::new(ClientCaFile::load(ca, provider)?)),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certified);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if client_ca.is_some() {
        // No resumption where a client certificate is an identity: a resumed session keeps
        // the certificate of its first handshake, unchecked, past a rotated CA or its expiry.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// A client's configuration: servers verified against `ca_file`, and a client certificate
/// (mTLS) when `identity` gives one.
pub fn client_config(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(ServerCaFile::load(ca_file, provider.clone())?);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(ca_file, e))?
        .dangerous()
        // Not dangerous: it is WebPkiServerVerifier, rebuilt when the CA file changes.
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_cert_resolver(Arc::new(CertifiedKeyFiles::load(cert, key, provider)?)),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What a file looked like: changed content shows in one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    paths
        .iter()
        .map(|path| {
            // `metadata` follows symbolic links, so a swapped link (Kubernetes secrets) counts.
            std::fs::metadata(path).ok().map(|meta| Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
                inode: meta.ino(),
            })
        })
        .collect()
}

/// A value loaded from files and loaded again when they change.
struct Watched<T> {
    what: &'static str,
    paths: Vec<PathBuf>,
    load: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    seen: Mutex<(Instant, Vec<Option<Stamp>>)>,
    current: RwLock<Arc<T>>,
}

impl<T> Watched<T> {
    fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Self, TlsError> {
        let seen = (Instant::now(), stamps(&paths));
        let value = load()?;
        Ok(Self {
            what,
            paths,
            load: Box::new(load),
            seen: Mutex::new(seen),
            current: RwLock::new(Arc::new(value)),
        })
    }

    /// The value, loaded again first if its files changed since they were last looked at.
    fn get(&self) -> Arc<T> {
        self.reload_if_changed(CHECK_EVERY);
        match self.current.read() {
            Ok(value) => value.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn reload_if_changed(&self, check_every: Duration) {
        // One handshake looks; the others go on with the value they have.
        let Ok(mut seen) = self.seen.try_lock() else {
            return;
        };
        if seen.0.elapsed() < check_every {
            return;
        }
        seen.0 = Instant::now();
        let now = stamps(&self.paths);
        if now == seen.1 {
            return;
        }
        // Remembered either way: a bad file is reported once, not at every handshake.
        seen.1 = now;
        match (self.load)() {
            Ok(value) => {
                let mut current = match self.current.write() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = Arc::new(value);
                tracing::info!(what = self.what, files = ?self.paths, "reloaded TLS files");
            }
            Err(err) => tracing::error!(
                what = self.what,
                error = %err,
                "could not reload TLS files; the ones loaded before stay in use"
            ),
        }
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new(path, pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, pem_error(e)))?;
    if certs.is_empty() {
        return Err(TlsError::new(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn pem_error(err: rustls::pki_types::pem::Error) -> String {
    match err {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        other => format!("not valid PEM ({other:?})"),
    }
}

fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::new(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// A certificate chain and its private key, from two PEM files.
struct CertifiedKeyFiles(Watched<CertifiedKey>);

impl CertifiedKeyFiles {
    fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let (cert, key) = (cert.to_owned(), key.to_owned());
        let paths = vec![cert.clone(), key.clone()];
        let watched = Watched::new("certificate and key", paths, move || {
            let chain = read_certificates(&cert)?;
            let der = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| TlsError::new(&key, pem_error(e)))?;
            CertifiedKey::from_der(chain, der, &provider).map_err(|e| {
                TlsError::new(&key, format!("does not go with {}: {e}", cert.display()))
            })
        })?;
        Ok(Self(watched))
    }
}

impl fmt::Debug for CertifiedKeyFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKeyFiles")
            .field("files", &self.0.paths)
            .finish()
    }
}

impl ResolvesServerCert for CertifiedKeyFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }
}

impl ResolvesClientCert for CertifiedKeyFiles {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The handshake-signature checks of a verifier kept in `self.0` (a `Watched`): the same
/// for client and server certificates.
macro_rules! signature_checks_of_the_current_verifier {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.get().verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.get().verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.get().supported_verify_schemes()
        }
    };
}

/// Client certificates verified against a CA file (webpki), rebuilt when the file changes.
struct ClientCaFile(Watched<Arc<dyn ClientCertVerifier>>);

impl ClientCaFile {
    fn load(ca: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let ca = ca.to_owned();
        let watched = Watched::new("client CA", vec![ca.clone()], move || {
            WebPkiClientVerifier::builder_with_provider(read_roots(&ca)?, provider.clone())
                // A client without a certificate may still call TokenValidation with an
                // application's credentials; token-service decides per RPC.
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::new(&ca, e))
        })?;
        Ok(Self(watched))
    }
}

impl fmt::Debug for ClientCaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCaFile")
            .field("file", &self.0.paths)
            .finish()
    }
}

impl ClientCertVerifier for ClientCaFile {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would borrow from a verifier that a reload may replace; without them a
        // client sends the one certificate it has, which is what Doorward's clients do.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    signature_checks_of_the_current_verifier!();
}

/// Server certificates verified against a CA file (webpki), rebuilt when the file changes.
struct ServerCaFile(Watched<Arc<WebPkiServerVerifier>>);

impl ServerCaFile {
    fn load(ca: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let ca = ca.to_owned();
        let watched = Watched::new("CA", vec![ca.clone()], move || {
            WebPkiServerVerifier::builder_with_provider(read_roots(&ca)?, provider.clone())
                .build()
                .map_err(|e| TlsError::new(&ca, e))
        })?;
        Ok(Self(watched))
    }
}

impl fmt::Debug for ServerCaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCaFile")
            .field("file", &self.0.paths)
            .finish()
    }
}

impl ServerCertVerifier for ServerCaFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .get()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    signature_checks_of_the_current_verifier!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("doorward-tls-{}", crate::secret::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn bad_files_are_one_clear_error_naming_the_file() {
        let dir = scratch();
        let missing = dir.join("missing.pem");
        let err = server_config(&missing, &missing, None, ALPN_H2).unwrap_err();
        assert!(
            err.to_string().starts_with(&missing.display().to_string()),
            "{err}"
        );
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let err = server_config(&garbage, &garbage, None, ALPN_H2).unwrap_err();
        assert!(err.to_string().contains("garbage.pem"), "{err}");
        let err = client_config(&garbage, None, ALPN_H2).unwrap_err();
        assert!(err.to_string().contains("garbage.pem"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_watched_file_is_loaded_again_when_it_changes_and_a_bad_one_keeps_the_old() {
        let dir = scratch();
        let path = dir.join("value");
        std::fs::write(&path, "1").unwrap();
        let read = path.clone();
        let watched = Watched::new("test", vec![path.clone()], move || {
            let text = std::fs::read_to_string(&read).map_err(|e| TlsError::new(&read, e))?;
            text.trim()
                .parse::<u32>()
                .map_err(|e| TlsError::new(&read, e))
        })
        .unwrap();
        assert_eq!(*watched.get(), 1);
        std::fs::write(&path, "22").unwrap();
        watched.reload_if_changed(Duration::ZERO);
        assert_eq!(*watched.get(), 22);
        std::fs::write(&path, "not a number").unwrap();
        watched.reload_if_changed(Duration::ZERO);
        assert_eq!(
            *watched.get(),
            22,
            "a bad file keeps the value loaded before"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
