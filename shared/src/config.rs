//! Typed, layered configuration: defaults, then a TOML file (`--config FILE`), then
//! environment variables. Loaded once in `main` and passed down; there are no globals.
//!
//! The contract's variables (`DATABASE_URL`, `TOKEN_SERVICE_ADDR`, `TOKEN_SERVICE_URL`,
//! `AUTH_WEB_ADDR`, `PUBLIC_URL`, `DATA_DIR`, `SERVICE_TOKEN`) override the file's top-level
//! keys; any other option is reachable as `DOORWARD_<SECTION>__<KEY>`, for example
//! `DOORWARD_TOKENS__REFRESH_GRACE_SECONDS=10`. Every option is described in
//! `docs/configuration.md`.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::secret::Secret;

/// The environment variables of Doorward's contract (ARCHITECTURE.md, "Contracts"; the table
/// in docs/configuration.md), mapped to top-level keys.
const CONTRACT_VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "TOKEN_SERVICE_ADDR",
    "TOKEN_SERVICE_URL",
    "AUTH_WEB_ADDR",
    "PUBLIC_URL",
    "DATA_DIR",
    "SERVICE_TOKEN",
];

/// The longest `tokens.key_rotation_days` accepted: ten years. Longer is a typo, or a key
/// meant never to change, which is what 0 says.
pub const MAX_KEY_ROTATION_DAYS: u32 = 3650;

/// Everything either service can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Where token-service listens for gRPC.
    pub token_service_addr: String,
    /// Where auth-web finds token-service.
    pub token_service_url: String,
    /// A Unix socket token-service also listens on, for an auth-web on the same host
    /// (`token_service_url = "unix:PATH"`).
    pub token_service_socket: Option<PathBuf>,
    /// Where auth-web listens for HTTP.
    pub auth_web_addr: String,
    /// The issuer and the base of every URL Doorward hands out (no trailing slash).
    pub public_url: String,
    /// Where Doorward keeps its files: the SQLite database (`doorward.db`) when
    /// `database_url` is not set.
    pub data_dir: PathBuf,
    /// When set, token-service accepts internal RPCs only with
    /// `authorization: Bearer <service_token>`, and auth-web sends it.
    pub service_token: Option<Secret>,
    /// Token lifetimes and refresh rotation.
    pub tokens: TokenConfig,
    /// Password hashing.
    pub passwords: PasswordConfig,
    /// Sign-in and password-grant throttling.
    pub sign_in_limits: SignInLimitConfig,
    /// Throttling of failed client authentication (SEC-RL-03): the "account" is the
    /// client_id.
    pub client_auth_limits: ClientAuthLimitConfig,
    /// The device authorization grant (RFC 8628).
    pub device: DeviceConfig,
    /// Database pool.
    pub database: DatabaseConfig,
    /// auth-web's HTTP and upstream settings.
    pub web: WebConfig,
    /// token-service's periodic removal of rows that can no longer be used.
    pub housekeeping: HousekeepingConfig,
    /// TLS on token-service's gRPC port (and mTLS with a client CA).
    pub grpc_tls: Option<GrpcTlsConfig>,
    /// TLS from auth-web to token-service.
    pub token_service_tls: Option<TokenServiceTlsConfig>,
    /// TLS on auth-web's own listener.
    pub web_tls: Option<WebTlsConfig>,
    /// `text` (human-readable lines) or `json` (one object per line).
    pub log_format: LogFormat,
    /// Where token-service serves `/-/metrics`, `/-/liveness` and `/-/readiness` over plain
    /// HTTP (unset: not served; the all-in-one binary shows its metrics on auth-web's
    /// `/-/metrics`).
    pub metrics_addr: Option<String>,
    /// Where `public_url` came from: decided by `load`, said at start-up by
    /// `log_public_url_origin`. Not an option.
    #[serde(skip)]
    pub public_url_origin: PublicUrlOrigin,
}

/// Where `public_url` came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PublicUrlOrigin {
    /// Given in the file or the environment (or built in code, as tests do).
    #[default]
    Configured,
    /// Not given: `http://<auth_web_addr>` (`https://` with `[web_tls]`).
    AuthWebAddr,
    /// Not given, and `auth_web_addr` is no address to hand out (every interface, or port
    /// 0): the built-in default stands, and start-up warns.
    Default,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line: time, level, target, message and the request's fields.
    Json,
}

/// `[grpc_tls]`: token-service's gRPC port speaks only TLS. With `client_ca_file`, a client
/// certificate that CA issued identifies an internal caller (auth-web); a client without one
/// may still connect and call `TokenValidation` with an application's credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// The CA whose client certificates are internal callers (PEM).
    pub client_ca_file: Option<PathBuf>,
}

/// `[token_service_tls]`: how auth-web reaches token-service over TLS
/// (`TOKEN_SERVICE_URL=https://HOST:PORT`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenServiceTlsConfig {
    /// The CA that issued token-service's certificate (PEM).
    pub ca_file: PathBuf,
    /// auth-web's client certificate (mTLS), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<PathBuf>,
}

impl TokenServiceTlsConfig {
    /// The client certificate and key, when both are given.
    pub fn identity(&self) -> Option<(&Path, &Path)> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        }
    }
}

/// `[web_tls]`: auth-web serves HTTPS only, sends HSTS, and marks its session cookie
/// `Secure` with the `__Host-` prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebTlsConfig {
    /// The certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
}

/// Token lifetimes and refresh-token rotation rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Access token lifetime (GitLab: 7200).
    pub access_token_ttl_seconds: i64,
    /// How long after its rotation a refresh token may be retried (30 s by default, at most
    /// 60: SEC-RT-03 in docs/security-model.md).
    pub refresh_grace_seconds: i64,
    /// A refresh token unused for this long no longer works (SEC-RT-06).
    pub refresh_idle_ttl_seconds: i64,
    /// A refresh family older than this no longer refreshes, however often it rotated.
    pub refresh_max_age_seconds: i64,
    /// The `aud` of access tokens; defaults to `public_url`.
    pub access_token_audience: Option<String>,
    /// Authorization code lifetime (RFC 6749 §4.1.2: at most 10 minutes).
    pub authorization_code_ttl_seconds: i64,
    /// How often each token-service re-reads the signing keys, so that `keys rotate`
    /// reaches running processes (0: only at start-up).
    pub key_reload_seconds: u64,
    /// How long `keys rotate` publishes a new key before it signs, so that every replica
    /// and every validator's cached key set know it first (SEC-JW-08). Defaults to two
    /// reload intervals.
    pub key_publish_ahead_seconds: i64,
    /// How long `TokenValidation.Validate` trusts a token it checked before reading its row
    /// again: the bound within which a revocation reaches every replica.
    pub validation_cache_seconds: i64,
    /// Most tokens `TokenValidation.Validate` keeps in memory.
    pub validation_cache_entries: usize,
    /// How long a token-service process uses an application record it read before reading
    /// it again: the bound within which a change made elsewhere (another replica, the CLI)
    /// reaches it. Changes made through this process apply at once. 0: read every time.
    pub client_cache_seconds: i64,
    /// Signing keys older than this many days are rotated by token-service itself, once
    /// across all replicas (0: only by `keys rotate`).
    pub key_rotation_days: u32,
}

/// Argon2id parameters (OWASP: m=19456 KiB, t=2, p=1) and the size of the hashing pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Iterations.
    pub argon2_iterations: u32,
    /// Lanes.
    pub argon2_parallelism: u32,
    /// How many hashes may run at once (defaults to the number of cores).
    pub max_concurrent_hashes: Option<usize>,
    /// How many more may wait for a slot before requests are shed with 503.
    pub max_queued_hashes: usize,
    /// Shortest password accepted for new accounts.
    pub min_length: usize,
    /// Longest password looked at, before any hashing (SEC-DS-02).
    pub max_length: usize,
}

/// Throttling of password checks (SEC-RL-01/02), per account+IP and per IP.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInLimitConfig {
    /// Failures allowed for one account from one IP within the window.
    pub per_account_and_ip: u32,
    /// Failures allowed from one IP, over all accounts, within the window.
    pub per_ip: u32,
    /// The window, in seconds.
    pub window_seconds: i64,
}

/// The device authorization grant (RFC 8628) and the throttle on user-code entry
/// (SEC-DV-02: a user code is short, so wrong guesses are counted).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// How long a device code and its user code are valid (RFC 8628 §6.1: at most 15 min).
    pub code_ttl_seconds: i64,
    /// The minimum polling interval handed to devices (`interval`).
    pub polling_interval_seconds: i64,
    /// Wrong user codes allowed per signed-in user and IP within the window.
    pub user_code_failures_per_user_and_ip: u32,
    /// Wrong user codes allowed per IP within the window, over all users.
    pub user_code_failures_per_ip: u32,
    /// The window of the user-code counters, in seconds.
    pub user_code_window_seconds: i64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            code_ttl_seconds: 300,
            polling_interval_seconds: 5,
            user_code_failures_per_user_and_ip: 5,
            user_code_failures_per_ip: 20,
            user_code_window_seconds: 900,
        }
    }
}

impl From<&DeviceConfig> for SignInLimitConfig {
    fn from(device: &DeviceConfig) -> Self {
        Self {
            per_account_and_ip: device.user_code_failures_per_user_and_ip,
            per_ip: device.user_code_failures_per_ip,
            window_seconds: device.user_code_window_seconds,
        }
    }
}

/// Database connection pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections in the r2d2 pool (defaults to 2 x cores, at least 4).
    pub pool_size: Option<u32>,
    /// How long to wait for a connection, in milliseconds.
    pub connection_timeout_ms: u64,
}

/// Removal of expired and dead rows (`tokens cleanup`, and token-service's periodic task).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HousekeepingConfig {
    /// Seconds between two runs of the periodic task in each token-service (0: never; the
    /// first run is one interval after start).
    pub interval_seconds: u64,
    /// Rows deleted per statement (and per short transaction); at least 1.
    pub batch_size: u32,
}

/// auth-web settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Deadline of every gRPC call to token-service, in milliseconds.
    pub grpc_timeout_ms: u64,
    /// HTTP worker threads (defaults to the number of cores).
    pub workers: Option<usize>,
    /// Peers whose `X-Forwarded-For` is believed (SEC-RL-04).
    pub trusted_proxies: Vec<String>,
    /// The key that signs and encrypts session cookies: 64 bytes, base64 (standard or
    /// URL-safe). Replicas that share it share sessions. Unset: the all-in-one binary keeps
    /// one in `<data_dir>/session.key`; a lone auth-web makes a throwaway one.
    pub session_key: Option<Secret>,
    /// A session unused for this long is over.
    pub session_idle_seconds: i64,
    /// A session is over this long after sign-in, however active.
    pub session_absolute_seconds: i64,
    /// Whether people may create accounts at `/users/sign_up`.
    pub sign_up_enabled: bool,
    /// Who may read `/-/metrics`: addresses or CIDR ranges, matched against the client IP
    /// (the socket peer, or the forwarded one from a trusted proxy).
    pub monitoring_ips: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://./data/doorward.db".into(),
            token_service_addr: "127.0.0.1:50051".into(),
            token_service_url: "http://127.0.0.1:50051".into(),
            token_service_socket: None,
            auth_web_addr: "127.0.0.1:3000".into(),
            public_url: "http://127.0.0.1:3000".into(),
            data_dir: PathBuf::from("./data"),
            service_token: None,
            tokens: TokenConfig::default(),
            passwords: PasswordConfig::default(),
            sign_in_limits: SignInLimitConfig::default(),
            client_auth_limits: ClientAuthLimitConfig::default(),
            device: DeviceConfig::default(),
            database: DatabaseConfig::default(),
            web: WebConfig::default(),
            housekeeping: HousekeepingConfig::default(),
            grpc_tls: None,
            token_service_tls: None,
            web_tls: None,
            log_format: LogFormat::Text,
            metrics_addr: None,
            public_url_origin: PublicUrlOrigin::Configured,
        }
    }
}

impl Default for HousekeepingConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 3600,
            batch_size: 5000,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_seconds: 7200,
            refresh_grace_seconds: 30,
            refresh_idle_ttl_seconds: 30 * 24 * 3600,
            refresh_max_age_seconds: 365 * 24 * 3600,
            access_token_audience: None,
            authorization_code_ttl_seconds: 600,
            key_reload_seconds: 5,
            key_publish_ahead_seconds: 10,
            validation_cache_seconds: 5,
            validation_cache_entries: 50_000,
            client_cache_seconds: 5,
            key_rotation_days: 90,
        }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: None,
            max_queued_hashes: 64,
            min_length: 8,
            max_length: 1024,
        }
    }
}

impl Default for SignInLimitConfig {
    fn default() -> Self {
        Self {
            per_account_and_ip: 5,
            per_ip: 30,
            window_seconds: 300,
        }
    }
}

/// Throttling of failed client authentication (SEC-RL-03), per client_id+IP and per IP.
/// Its own type so that a section giving only some keys gets these defaults for the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAuthLimitConfig {
    /// Failures allowed for one client_id from one IP within the window.
    pub per_account_and_ip: u32,
    /// Failures allowed from one IP, over all clients, within the window.
    pub per_ip: u32,
    /// The window, in seconds.
    pub window_seconds: i64,
}

impl Default for ClientAuthLimitConfig {
    fn default() -> Self {
        Self {
            per_account_and_ip: 20,
            per_ip: 100,
            window_seconds: 300,
        }
    }
}

impl From<&ClientAuthLimitConfig> for SignInLimitConfig {
    fn from(limits: &ClientAuthLimitConfig) -> Self {
        Self {
            per_account_and_ip: limits.per_account_and_ip,
            per_ip: limits.per_ip,
            window_seconds: limits.window_seconds,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            pool_size: None,
            connection_timeout_ms: 5_000,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            grpc_timeout_ms: 5_000,
            workers: None,
            trusted_proxies: Vec::new(),
            session_key: None,
            session_idle_seconds: 8 * 3600,
            session_absolute_seconds: 7 * 24 * 3600,
            sign_up_enabled: true,
            monitoring_ips: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!("{} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        // The contract's variables are taken as plain strings (figment's Env provider would
        // read `SERVICE_TOKEN=12345` as a number).
        for variable in CONTRACT_VARIABLES {
            if let Ok(value) = std::env::var(variable) {
                figment = figment.merge(Serialized::default(&variable.to_lowercase(), value));
            }
        }
        let figment = figment.merge(Env::prefixed("DOORWARD_").split("__"));
        let mut config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        // Without a database URL of its own, the embedded database lives in the data folder.
        if figment.find_value("database_url").is_err() {
            config.database_url =
                format!("sqlite://{}", config.data_dir.join("doorward.db").display());
        }
        if figment.find_value("public_url").is_err() {
            config.follow_auth_web_addr();
        }
        config.validate()?;
        Ok(config)
    }

    /// `public_url` was not given: it follows `auth_web_addr`, so that `AUTH_WEB_ADDR` alone
    /// moves the issuer and every discovered URL with the listener.
    fn follow_auth_web_addr(&mut self) {
        let scheme = if self.web_tls.is_some() {
            "https"
        } else {
            "http"
        };
        match public_url_for(&self.auth_web_addr, scheme) {
            Some(url) => {
                self.public_url = url;
                self.public_url_origin = PublicUrlOrigin::AuthWebAddr;
            }
            None => self.public_url_origin = PublicUrlOrigin::Default,
        }
    }

    /// Says at start-up where `public_url` came from when it was not set; warns when it
    /// could not follow `auth_web_addr`. (`load` runs before logging is set up.)
    pub fn log_public_url_origin(&self) {
        match self.public_url_origin {
            PublicUrlOrigin::Configured => {}
            PublicUrlOrigin::AuthWebAddr => tracing::info!(
                public_url = %self.public_url,
                "PUBLIC_URL is not set: the issuer follows auth_web_addr (give every token-service and auth-web the same PUBLIC_URL when they run apart)"
            ),
            PublicUrlOrigin::Default => tracing::warn!(
                auth_web_addr = %self.auth_web_addr,
                public_url = %self.public_url,
                "PUBLIC_URL must be set: auth_web_addr listens on every interface or on port 0, which is no address to hand out, so the issuer (iss of every token) and every discovered URL (authorization, token, keys) stay on the default {}, which clients may not reach",
                self.public_url
            ),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if url::Url::parse(&self.public_url).is_err() {
            return Err(ConfigError(format!(
                "PUBLIC_URL {:?} is not an absolute URL",
                self.public_url
            )));
        }
        let tokens = &self.tokens;
        if tokens.access_token_ttl_seconds <= 0
            || tokens.refresh_idle_ttl_seconds <= 0
            || tokens.refresh_max_age_seconds <= 0
        {
            return Err(ConfigError(
                "token lifetimes (tokens.*_seconds) must be positive".into(),
            ));
        }
        if !(1..=600).contains(&tokens.authorization_code_ttl_seconds) {
            return Err(ConfigError(
                "tokens.authorization_code_ttl_seconds must be between 1 and 600".into(),
            ));
        }
        // SEC-RT-03: the grace window is for concurrent retries, not a second lifetime.
        if !(0..=60).contains(&tokens.refresh_grace_seconds) {
            return Err(ConfigError(
                "tokens.refresh_grace_seconds must be between 0 and 60".into(),
            ));
        }
        if !(1..=900).contains(&self.device.code_ttl_seconds) {
            return Err(ConfigError(
                "device.code_ttl_seconds must be between 1 and 900 (RFC 8628 §6.1)".into(),
            ));
        }
        if !(1..=60).contains(&self.device.polling_interval_seconds) {
            return Err(ConfigError(
                "device.polling_interval_seconds must be between 1 and 60".into(),
            ));
        }
        let windows = [
            self.sign_in_limits.window_seconds,
            self.client_auth_limits.window_seconds,
            self.device.user_code_window_seconds,
            self.web.session_idle_seconds,
            self.web.session_absolute_seconds,
        ];
        if windows.iter().any(|w| *w <= 0) {
            return Err(ConfigError(
                "throttle windows and session lifetimes must be positive".into(),
            ));
        }
        self.validate_key_rotation()?;
        if self.housekeeping.batch_size == 0 {
            return Err(ConfigError(
                "housekeeping.batch_size must be at least 1".into(),
            ));
        }
        if let Some(token) = &self.service_token
            && token.expose().len() < 16
        {
            return Err(ConfigError(
                "SERVICE_TOKEN must be at least 16 characters (or unset)".into(),
            ));
        }
        if let Some(bad) = self
            .web
            .trusted_proxies
            .iter()
            .find(|p| p.trim().parse::<std::net::IpAddr>().is_err())
        {
            return Err(ConfigError(format!(
                "web.trusted_proxies: {bad:?} is not an IP address (CIDR ranges are not supported)"
            )));
        }
        crate::metrics::MonitoringIps::parse(&self.web.monitoring_ips)
            .map_err(|e| ConfigError(e.to_string()))?;
        if let Some(addr) = &self.metrics_addr
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError(format!(
                "metrics_addr {addr:?} is not an address and port (127.0.0.1:9464)"
            )));
        }
        self.validate_tls()
    }

    /// `tokens.key_rotation_days`: 0 (only `keys rotate`), or a period of at most ten years
    /// that outlasts the publication lead, with a reload that brings the new key into
    /// running processes (the rotation runs on it).
    fn validate_key_rotation(&self) -> Result<(), ConfigError> {
        let tokens = &self.tokens;
        let days = tokens.key_rotation_days;
        if days == 0 {
            return Ok(());
        }
        if days > MAX_KEY_ROTATION_DAYS {
            return Err(ConfigError(format!(
                "tokens.key_rotation_days must be 0 (rotate only with `keys rotate`) or between 1 and {MAX_KEY_ROTATION_DAYS} (ten years); it is {days}"
            )));
        }
        if i64::from(days) * 86_400 <= tokens.key_publish_ahead_seconds {
            return Err(ConfigError(format!(
                "tokens.key_rotation_days ({days} days) must be longer than tokens.key_publish_ahead_seconds ({} s): each key would be replaced before it signs",
                tokens.key_publish_ahead_seconds
            )));
        }
        if tokens.key_reload_seconds == 0 {
            return Err(ConfigError(
                "tokens.key_rotation_days needs tokens.key_reload_seconds above 0: scheduled rotation runs on the key reload, and a process that never re-reads its keys never signs with the new one (set tokens.key_rotation_days = 0 to rotate only with `keys rotate`)".into(),
            ));
        }
        Ok(())
    }

    /// TLS settings that would leave a link in plaintext, or that cannot work, are refused.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        if let Some(tls) = &self.token_service_tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(ConfigError(
                    "token_service_tls: cert_file and key_file go together".into(),
                ));
            }
            if !self.token_service_url.starts_with("https://") {
                return Err(ConfigError(format!(
                    "token_service_tls is set but TOKEN_SERVICE_URL {:?} is not https://HOST:PORT",
                    self.token_service_url
                )));
            }
        } else if self.token_service_url.starts_with("https://") {
            return Err(ConfigError(
                "TOKEN_SERVICE_URL is https: set token_service_tls.ca_file (DOORWARD_TOKEN_SERVICE_TLS__CA_FILE) to the CA of token-service's certificate".into(),
            ));
        }
        if self.web_tls.is_some() && !self.public_url.starts_with("https://") {
            return Err(ConfigError(format!(
                "web_tls is set: PUBLIC_URL must be the https:// address people use (it is {:?})",
                self.public_url
            )));
        }
        Ok(())
    }

    /// The issuer, without a trailing slash.
    pub fn issuer(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The `aud` claim of access tokens.
    pub fn access_token_audience(&self) -> &str {
        self.tokens
            .access_token_audience
            .as_deref()
            .unwrap_or_else(|| self.issuer())
    }
}

/// The public URL an `auth_web_addr` stands for: `None` when it is no address to hand out
/// (an unspecified host such as `0.0.0.0` or `::`, port 0, or no port).
fn public_url_for(auth_web_addr: &str, scheme: &str) -> Option<String> {
    if let Ok(addr) = auth_web_addr.parse::<std::net::SocketAddr>() {
        let usable = !addr.ip().is_unspecified() && addr.port() != 0;
        // `SocketAddr` writes an IPv6 address in brackets, as a URL wants it.
        return usable.then(|| format!("{scheme}://{addr}"));
    }
    // A host name: `localhost:3001`, `auth.internal:8080`.
    let (host, port) = auth_web_addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let url = format!("{scheme}://{host}:{port}");
    (!host.is_empty() && port != 0 && url::Url::parse(&url).is_ok()).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::default();
        assert_eq!(config.token_service_addr, "127.0.0.1:50051");
        assert_eq!(config.auth_web_addr, "127.0.0.1:3000");
        assert_eq!(config.issuer(), "http://127.0.0.1:3000");
        assert_eq!(config.tokens.access_token_ttl_seconds, 7200);
        assert_eq!(config.housekeeping.interval_seconds, 3600);
        assert_eq!(config.housekeeping.batch_size, 5000);
    }

    #[test]
    fn unsafe_settings_are_refused_at_load() {
        let short_token = Config {
            service_token: Some(Secret::new("")),
            ..Config::default()
        };
        assert!(
            short_token.validate().is_err(),
            "an empty service token would accept anyone"
        );
        let mut long_grace = Config::default();
        long_grace.tokens.refresh_grace_seconds = 3600;
        assert!(long_grace.validate().is_err());
        let mut cidr = Config::default();
        cidr.web.trusted_proxies = vec!["10.0.0.0/8".into()];
        assert!(cidr.validate().is_err());
        let json: Config = Figment::new()
            .merge(Toml::string("log_format = \"json\"\n"))
            .extract()
            .unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        assert!(
            Figment::new()
                .merge(Toml::string("log_format = \"xml\"\n"))
                .extract::<Config>()
                .is_err()
        );
        let mut no_batch = Config::default();
        no_batch.housekeeping.batch_size = 0;
        assert!(no_batch.validate().is_err());
        let mut bad_monitoring = Config::default();
        bad_monitoring.web.monitoring_ips = vec!["everyone".into()];
        assert!(bad_monitoring.validate().is_err());
        let bad_metrics = Config {
            metrics_addr: Some("localhost".into()),
            ..Config::default()
        };
        assert!(bad_metrics.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn key_rotation_days_are_checked_against_the_other_key_settings() {
        let with = |days: u32, adjust: fn(&mut TokenConfig)| {
            let mut config = Config::default();
            config.tokens.key_rotation_days = days;
            adjust(&mut config.tokens);
            config.validate().map_err(|e| e.to_string())
        };
        assert!(with(90, |_| {}).is_ok());
        assert!(with(1, |_| {}).is_ok());
        assert!(with(MAX_KEY_ROTATION_DAYS, |_| {}).is_ok());
        let manual = with(0, |t| t.key_reload_seconds = 0);
        assert!(manual.is_ok(), "manual rotation needs no reload");
        let err = with(MAX_KEY_ROTATION_DAYS + 1, |_| {}).unwrap_err();
        assert!(err.contains("between 1 and 3650"), "{err}");
        let err = with(1, |t| t.key_publish_ahead_seconds = 86_400).unwrap_err();
        assert!(err.contains("key_publish_ahead_seconds"), "{err}");
        let err = with(90, |t| t.key_reload_seconds = 0).unwrap_err();
        assert!(err.contains("key_reload_seconds"), "{err}");
    }

    #[test]
    fn a_partial_housekeeping_section_keeps_the_other_defaults() {
        let config: Config = Figment::new()
            .merge(Toml::string("[housekeeping]\nbatch_size = 100\n"))
            .extract()
            .unwrap();
        assert_eq!(config.housekeeping.batch_size, 100);
        assert_eq!(config.housekeeping.interval_seconds, 3600);
        let misspelt = Figment::new()
            .merge(Toml::string("[housekeeping]\nbatch = 100\n"))
            .extract::<Config>();
        assert!(misspelt.is_err(), "unknown keys are refused");
    }

    #[test]
    fn sec_gb_11_tls_settings_that_would_leave_a_link_in_plaintext_are_refused() {
        let tls = TokenServiceTlsConfig {
            ca_file: "/etc/doorward/ca.pem".into(),
            cert_file: None,
            key_file: None,
        };
        let mut http_with_tls = Config {
            token_service_tls: Some(tls.clone()),
            ..Config::default()
        };
        let err = http_with_tls.validate().unwrap_err().to_string();
        assert!(err.contains("not https"), "{err}");
        http_with_tls.token_service_url = "https://10.0.0.2:50051".into();
        assert!(http_with_tls.validate().is_ok());
        let https_without_ca = Config {
            token_service_url: "https://10.0.0.2:50051".into(),
            ..Config::default()
        };
        let err = https_without_ca.validate().unwrap_err().to_string();
        assert!(err.contains("DOORWARD_TOKEN_SERVICE_TLS__CA_FILE"), "{err}");
        let half_identity = Config {
            token_service_url: "https://10.0.0.2:50051".into(),
            token_service_tls: Some(TokenServiceTlsConfig {
                cert_file: Some("/etc/doorward/auth-web.pem".into()),
                ..tls
            }),
            ..Config::default()
        };
        assert!(half_identity.validate().is_err());
        let web_tls_on_http = Config {
            web_tls: Some(WebTlsConfig {
                cert_file: "/etc/doorward/server.pem".into(),
                key_file: "/etc/doorward/server-key.pem".into(),
            }),
            ..Config::default()
        };
        let err = web_tls_on_http.validate().unwrap_err().to_string();
        assert!(err.contains("PUBLIC_URL"), "{err}");
    }

    #[test]
    fn the_tls_sections_read_from_their_environment_names() {
        let config: Config = Figment::new()
            .merge(Toml::string(
                "[grpc_tls]\ncert_file = \"/s.pem\"\nkey_file = \"/k.pem\"\nclient_ca_file = \"/ca.pem\"\n",
            ))
            .extract()
            .unwrap();
        let grpc = config.grpc_tls.unwrap();
        assert_eq!(grpc.client_ca_file.as_deref(), Some(Path::new("/ca.pem")));
        let missing_key = Figment::new()
            .merge(Toml::string("[grpc_tls]\ncert_file = \"/s.pem\"\n"))
            .extract::<Config>();
        assert!(
            missing_key.is_err(),
            "a certificate without its key is refused"
        );
    }

    #[test]
    fn public_url_follows_the_auth_web_address_it_can_hand_out() {
        let follow = |addr: &str| public_url_for(addr, "http");
        assert_eq!(
            follow("127.0.0.1:3001").as_deref(),
            Some("http://127.0.0.1:3001")
        );
        assert_eq!(follow("[::1]:3001").as_deref(), Some("http://[::1]:3001"));
        assert_eq!(
            follow("auth.example.com:8443").as_deref(),
            Some("http://auth.example.com:8443")
        );
        assert_eq!(
            public_url_for("10.0.0.5:443", "https").as_deref(),
            Some("https://10.0.0.5:443")
        );
        for unusable in [
            "0.0.0.0:3000",
            "[::]:3000",
            "127.0.0.1:0",
            "localhost:0",
            ":3000",
        ] {
            assert_eq!(follow(unusable), None, "{unusable}");
        }
        assert_eq!(follow("no port"), None);
    }

    #[test]
    fn an_unset_public_url_is_derived_with_the_scheme_of_web_tls() {
        let mut config = Config {
            auth_web_addr: "127.0.0.1:3001".into(),
            ..Config::default()
        };
        config.follow_auth_web_addr();
        assert_eq!(config.issuer(), "http://127.0.0.1:3001");
        assert_eq!(config.public_url_origin, PublicUrlOrigin::AuthWebAddr);
        let mut tls = Config {
            auth_web_addr: "127.0.0.1:3443".into(),
            web_tls: Some(WebTlsConfig {
                cert_file: "/etc/doorward/server.pem".into(),
                key_file: "/etc/doorward/server-key.pem".into(),
            }),
            ..Config::default()
        };
        tls.follow_auth_web_addr();
        assert_eq!(tls.issuer(), "https://127.0.0.1:3443");
        assert!(
            tls.validate().is_ok(),
            "web_tls with a derived https URL is valid"
        );
        let mut everywhere = Config {
            auth_web_addr: "0.0.0.0:3001".into(),
            ..Config::default()
        };
        everywhere.follow_auth_web_addr();
        assert_eq!(
            everywhere.issuer(),
            "http://127.0.0.1:3000",
            "the default stands"
        );
        assert_eq!(everywhere.public_url_origin, PublicUrlOrigin::Default);
    }

    /// `load` itself, through the file layer (the environment is shared by the test
    /// threads, so the variables' path is the same `find_value` check on another layer).
    #[test]
    fn load_derives_public_url_only_when_it_was_not_given() {
        let set = [
            "PUBLIC_URL",
            "AUTH_WEB_ADDR",
            "DOORWARD_PUBLIC_URL",
            "DOORWARD_AUTH_WEB_ADDR",
        ]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some());
        if let Some(variable) = set {
            eprintln!("skipped: {variable} is set in this environment and would win over the file");
            return;
        }
        let dir = std::env::temp_dir().join(format!("doorward-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            path
        };
        let only_addr = file("addr.toml", "auth_web_addr = \"127.0.0.1:3001\"\n");
        let config = Config::load(Some(&only_addr)).unwrap();
        assert_eq!(config.issuer(), "http://127.0.0.1:3001");
        let both = file(
            "both.toml",
            "auth_web_addr = \"127.0.0.1:3001\"\npublic_url = \"https://id.example.com\"\n",
        );
        let config = Config::load(Some(&both)).unwrap();
        assert_eq!(config.issuer(), "https://id.example.com");
        assert_eq!(config.public_url_origin, PublicUrlOrigin::Configured);
        let everywhere = file("any.toml", "auth_web_addr = \"0.0.0.0:3001\"\n");
        let config = Config::load(Some(&everywhere)).unwrap();
        assert_eq!(config.issuer(), "http://127.0.0.1:3000");
        assert_eq!(config.public_url_origin, PublicUrlOrigin::Default);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/doorward.toml"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
