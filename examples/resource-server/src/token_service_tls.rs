//! The TLS settings of the link to token-service: the operator-facing `[token_service_tls]`
//! files, read and checked at start so that a wrong path or a missing CA stops the server
//! with a clear message instead of failing every request.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// How token-service is reached over TLS: the files of the operator-facing
/// `[token_service_tls]` options (`DOORWARD_TOKEN_SERVICE_TLS__CA_FILE`, `__CERT_FILE`,
/// `__KEY_FILE`). All `None` means plaintext, which only an `http://` URL accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenServiceTls {
    /// The CA (PEM) that token-service's certificate is verified against; required for an
    /// `https://` URL. There are no built-in roots: token-service's certificate comes from
    /// the operator's own CA.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) to present, for an operator who requires one. Goes with
    /// `key_file`. Resource servers are otherwise recognised by their application's
    /// credentials, not by a certificate.
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM) of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl TokenServiceTls {
    pub(crate) fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }

    /// The TLS configuration for `url` (an `https://` URL), with every file read now so that
    /// a wrong path stops the start, not the first request.
    pub(crate) fn client_config(&self, url: &str) -> anyhow::Result<ClientTlsConfig> {
        let Some(ca_file) = &self.ca_file else {
            anyhow::bail!(
                "the token-service URL {url:?} is https: set --token-service-ca-file \
                 (DOORWARD_TOKEN_SERVICE_TLS__CA_FILE) to the CA of token-service's certificate"
            );
        };
        let ca = read_pem(ca_file, "--token-service-ca-file")?;
        if !contains_certificate(&ca) {
            anyhow::bail!(
                "--token-service-ca-file {} holds no PEM certificate",
                ca_file.display()
            );
        }
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let cert = read_pem(cert_file, "--token-service-cert-file")?;
                let key = read_pem(key_file, "--token-service-key-file")?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => anyhow::bail!(CERT_AND_KEY_TOGETHER),
        }
        Ok(config)
    }
}

const CERT_AND_KEY_TOGETHER: &str = "--token-service-cert-file and --token-service-key-file \
     (DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE, __KEY_FILE) go together: set both or neither";

fn read_pem(path: &Path, option: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("could not read {option} {}", path.display()))
}

/// tonic accepts a CA file without any certificate and then refuses every server, which
/// would only show as "unavailable" per request; this catches a wrong file at start.
fn contains_certificate(pem: &[u8]) -> bool {
    pem.windows(CERTIFICATE_MARKER.len())
        .any(|w| w == CERTIFICATE_MARKER)
}

const CERTIFICATE_MARKER: &[u8] = b"-----BEGIN CERTIFICATE-----";
