//! `tls init`: a small certificate authority and the certificates for trying TLS and mutual
//! TLS between Doorward's services on one machine. The CA's key lies beside what it signed,
//! so this is for local trials; production certificates come from the operator's own PKI.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use doorward_shared::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::ServerName;
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// The name in auth-web's client certificate. Any certificate this CA signs for a client is
/// an internal caller of token-service (`grpc_tls.client_ca_file`), so `tls init` makes
/// none for resource servers: they use TLS without one, and their application's
/// credentials.
pub const AUTH_WEB_NAME: &str = "auth-web";

/// The CA's subject common name.
pub const CA_NAME: &str = "Doorward local CA";

/// The names of one certificate file and its key file.
#[derive(Debug, Clone, Copy)]
struct FileNames {
    cert: &'static str,
    key: &'static str,
}

const CA_FILES: FileNames = FileNames {
    cert: "ca.pem",
    key: "ca-key.pem",
};
const SERVER_FILES: FileNames = FileNames {
    cert: "server.pem",
    key: "server-key.pem",
};
const AUTH_WEB_FILES: FileNames = FileNames {
    cert: "auth-web.pem",
    key: "auth-web-key.pem",
};
const ALL_FILES: [FileNames; 3] = [CA_FILES, SERVER_FILES, AUTH_WEB_FILES];

/// The listeners' default ports (`token_service_addr`, `auth_web_addr`), for the printed
/// configuration.
const GRPC_PORT: u16 = 50051;
const WEB_PORT: u16 = 3000;

/// What `tls init` is asked to write.
#[derive(Debug, Clone)]
pub struct TlsInitRequest {
    /// The folder to write into; created with mode 0700 if missing.
    pub dir: PathBuf,
    /// The server certificate's names, IP addresses or DNS names; the first is also its CN.
    pub hosts: Vec<String>,
    /// Replace existing files instead of refusing.
    pub force: bool,
    /// Days the certificates stay valid.
    pub days: u32,
}

/// A certificate file and its key file, as written (absolute paths).
#[derive(Debug, Clone)]
pub struct CertAndKey {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PKCS#8 PEM, mode 0600.
    pub key: PathBuf,
}

/// What `tls init` wrote.
#[derive(Debug, Clone)]
pub struct TlsInitOutcome {
    /// The folder, absolute.
    pub dir: PathBuf,
    /// The CA certificate and the key that signed every other certificate.
    pub ca: CertAndKey,
    /// token-service's gRPC and auth-web's HTTPS listeners.
    pub server: CertAndKey,
    /// The server certificate's names.
    pub hosts: Vec<String>,
    /// auth-web's client certificate (an internal caller).
    pub auth_web: CertAndKey,
    /// When every certificate expires.
    pub not_after: OffsetDateTime,
}

/// Why `tls init` wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TlsInitError {
    /// No `--host`: a server certificate without a name verifies for nobody.
    #[error("at least one --host is needed")]
    NoHost,
    /// A host that is neither an IP address nor a DNS name.
    #[error("--host {0:?} is neither an IP address nor a DNS name")]
    InvalidHost(String),
    /// A file to be written exists and `--force` was not given.
    #[error("{} already exists (--force replaces it)", .0.display())]
    Exists(PathBuf),
    /// Creating the folder or writing a file failed.
    #[error("could not write {}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not make a key or a certificate.
    #[error("could not make the certificates")]
    Certificate(#[from] rcgen::Error),
}

/// One file to write. `Secret` because half of them are private keys; redacting a
/// certificate in `Debug` costs nothing.
struct PemFile {
    name: &'static str,
    pem: Secret,
    mode: u32,
}

/// The certificates' validity. It starts an hour ago so that a peer whose clock is a little
/// behind does not reject them as not yet valid.
#[derive(Debug, Clone, Copy)]
struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    fn starting(now: OffsetDateTime, days: u32) -> Self {
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    fn apply(self, params: &mut CertificateParams) {
        params.not_before = self.not_before;
        params.not_after = self.not_after;
    }
}

/// Makes the CA and the certificates and writes them into `request.dir`. Without
/// `request.force` it refuses, before writing anything, when one of the files exists.
pub fn init(request: &TlsInitRequest, now: OffsetDateTime) -> Result<TlsInitOutcome, TlsInitError> {
    check_hosts(&request.hosts)?;
    let dir = create_dir(&request.dir)?;
    if !request.force {
        refuse_existing(&dir)?;
    }
    let validity = Validity::starting(now, request.days);
    // Everything is made in memory first, so that a failure leaves no half-written set.
    let files = issue(&request.hosts, validity)?;
    for file in &files {
        write_file(&dir, file, request.force)?;
    }
    let paths = |names: FileNames| CertAndKey {
        cert: dir.join(names.cert),
        key: dir.join(names.key),
    };
    Ok(TlsInitOutcome {
        ca: paths(CA_FILES),
        server: paths(SERVER_FILES),
        hosts: request.hosts.clone(),
        auth_web: paths(AUTH_WEB_FILES),
        not_after: validity.not_after,
        dir,
    })
}

fn check_hosts(hosts: &[String]) -> Result<(), TlsInitError> {
    if hosts.is_empty() {
        return Err(TlsInitError::NoHost);
    }
    // rustls checks names as a TLS client will, so a name it refuses here would never
    // verify later.
    match hosts
        .iter()
        .find(|host| ServerName::try_from(host.as_str()).is_err())
    {
        Some(bad) => Err(TlsInitError::InvalidHost(bad.clone())),
        None => Ok(()),
    }
}

/// Creates the folder (and its parents) with mode 0700 when missing, and returns its
/// absolute path, which the printed configuration needs.
fn create_dir(dir: &Path) -> Result<PathBuf, TlsInitError> {
    let io = |source| TlsInitError::Io {
        path: dir.to_owned(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    dir.canonicalize().map_err(io)
}

fn refuse_existing(dir: &Path) -> Result<(), TlsInitError> {
    let existing = ALL_FILES
        .iter()
        .flat_map(|names| [names.cert, names.key])
        .map(|name| dir.join(name))
        .find(|path| path.symlink_metadata().is_ok());
    match existing {
        Some(path) => Err(TlsInitError::Exists(path)),
        None => Ok(()),
    }
}

/// The CA, then the server and auth-web certificates with their keys, both signed by the
/// CA's key.
fn issue(hosts: &[String], validity: Validity) -> Result<Vec<PemFile>, rcgen::Error> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_params = ca_params(validity);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_key_pem = Secret::new(ca_key.serialize_pem());
    let issuer = Issuer::new(ca_params, ca_key);
    let leaves = [
        (
            SERVER_FILES,
            hosts.to_vec(),
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            AUTH_WEB_FILES,
            vec![AUTH_WEB_NAME.to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ];
    let mut files = vec![
        PemFile::certificate(CA_FILES.cert, ca_cert.pem()),
        PemFile::key(CA_FILES.key, ca_key_pem),
    ];
    for (names, subject_names, usage) in leaves {
        let (cert, key) = leaf(&issuer, subject_names, usage, validity)?;
        files.push(PemFile::certificate(names.cert, cert));
        files.push(PemFile::key(names.key, key));
    }
    Ok(files)
}

fn ca_params(validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_NAME);
    // Path length 0: this CA signs end-entity certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity.apply(&mut params);
    params
}

/// An end-entity certificate for `names` (the first is also its CN) and its new key.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    validity: Validity,
) -> Result<(String, Secret), rcgen::Error> {
    let cn = names.first().cloned().unwrap_or_default();
    // `new` makes an IP address an IP SAN and anything else a DNS SAN.
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = common_name(&cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

impl PemFile {
    fn certificate(name: &'static str, pem: String) -> Self {
        Self {
            name,
            pem: Secret::new(pem),
            mode: 0o644,
        }
    }

    fn key(name: &'static str, pem: Secret) -> Self {
        Self {
            name,
            pem,
            mode: 0o600,
        }
    }
}

/// Writes one file with its mode. A replaced file is removed first: `mode` applies only to a
/// file being created, and a key must not inherit a looser mode from the file it replaces.
fn write_file(dir: &Path, file: &PemFile, force: bool) -> Result<(), TlsInitError> {
    let path = dir.join(file.name);
    let io = |source| TlsInitError::Io {
        path: path.clone(),
        source,
    };
    if force {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    let mut out = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.mode)
        .open(&path)
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(TlsInitError::Exists(path));
        }
        Err(e) => return Err(io(e)),
    };
    out.write_all(file.pem.expose().as_bytes()).map_err(io)
}

impl TlsInitOutcome {
    /// The `--json` output.
    pub fn to_json(&self) -> serde_json::Value {
        let pair = |p: &CertAndKey| json!({"cert": p.cert, "key": p.key});
        let mut server = pair(&self.server);
        server["hosts"] = json!(self.hosts);
        json!({
            "dir": self.dir,
            "ca": self.ca.cert,
            "ca_key": self.ca.key,
            "server": server,
            "auth_web": pair(&self.auth_web),
            "not_after": self.not_after.unix_timestamp(),
        })
    }

    /// The first host as it goes into a URL (an IPv6 address in brackets).
    fn url_host(&self) -> String {
        let host = self
            .hosts
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => host.to_owned(),
        }
    }
}

/// The human output: the files and a configuration to paste into a shell.
impl fmt::Display for TlsInitOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |p: &Path| shell_word(&p.display().to_string());
        let (ca, server, web) = (&self.ca, &self.server, &self.auth_web);
        writeln!(f, "Wrote to {}:", path(&self.dir))?;
        writeln!(
            f,
            "  {:<45} the CA (its key signs the others)",
            both(CA_FILES)
        )?;
        let hosts = self.hosts.join(", ");
        writeln!(
            f,
            "  {:<45} token-service (gRPC), auth-web (HTTPS): {hosts}",
            both(SERVER_FILES)
        )?;
        writeln!(
            f,
            "  {:<45} auth-web's client certificate (internal caller)",
            both(AUTH_WEB_FILES)
        )?;
        writeln!(f, "Valid until {}. Configuration:", self.not_after.date())?;
        let host = self.url_host();
        writeln!(
            f,
            "token-service:  DOORWARD_GRPC_TLS__CERT_FILE={} DOORWARD_GRPC_TLS__KEY_FILE={} DOORWARD_GRPC_TLS__CLIENT_CA_FILE={}",
            path(&server.cert),
            path(&server.key),
            path(&ca.cert)
        )?;
        writeln!(
            f,
            "auth-web:       TOKEN_SERVICE_URL=https://{host}:{GRPC_PORT} DOORWARD_TOKEN_SERVICE_TLS__CA_FILE={} DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE={} DOORWARD_TOKEN_SERVICE_TLS__KEY_FILE={}",
            path(&ca.cert),
            path(&web.cert),
            path(&web.key)
        )?;
        write!(
            f,
            "                DOORWARD_WEB_TLS__CERT_FILE={} DOORWARD_WEB_TLS__KEY_FILE={} PUBLIC_URL=https://{host}:{WEB_PORT}",
            path(&server.cert),
            path(&server.key)
        )
    }
}

fn both(names: FileNames) -> String {
    format!("{}, {}", names.cert, names.key)
}

/// `word` quoted for a POSIX shell when it holds anything but plain path characters, so that
/// the printed configuration pastes as it is.
fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        std::env::temp_dir().join(format!(
            "doorward-tls-{name}-{}-{nanos}",
            std::process::id()
        ))
    }

    fn request(dir: &Path, force: bool) -> TlsInitRequest {
        TlsInitRequest {
            dir: dir.to_owned(),
            hosts: vec!["localhost".into()],
            force,
            days: 1,
        }
    }

    #[test]
    fn one_existing_file_stops_init_before_anything_is_written() {
        let dir = temp_dir("exists");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("auth-web-key.pem"), "mine").unwrap();
        let refused = init(&request(&dir, false), OffsetDateTime::now_utc());
        assert!(matches!(refused, Err(TlsInitError::Exists(p)) if p.ends_with("auth-web-key.pem")));
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "nothing else was written");
        init(&request(&dir, true), OffsetDateTime::now_utc()).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_host_that_is_no_name_is_refused() {
        let dir = temp_dir("host");
        let mut bad = request(&dir, false);
        bad.hosts = vec!["not a name".into()];
        assert!(matches!(
            init(&bad, OffsetDateTime::now_utc()),
            Err(TlsInitError::InvalidHost(_))
        ));
        bad.hosts.clear();
        assert!(matches!(
            init(&bad, OffsetDateTime::now_utc()),
            Err(TlsInitError::NoHost)
        ));
        assert!(!dir.exists(), "a refused request creates no folder");
    }

    #[test]
    fn the_configuration_quotes_paths_a_shell_would_split() {
        assert_eq!(shell_word("/tmp/certs"), "/tmp/certs");
        assert_eq!(shell_word("/tmp/my certs"), "'/tmp/my certs'");
        assert_eq!(shell_word("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}
