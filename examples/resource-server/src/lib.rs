//! An example resource server (an API) that accepts Doorward access tokens.
//!
//! `GET /api/whoami` needs a bearer token with the configured scopes and answers who the
//! token speaks for; `GET /health` is open. Tokens are validated in one of two ways, chosen
//! at start (see `docs/resource-servers.md`):
//!
//! - [`Mode::Grpc`]: one `doorward.v1.TokenValidation/Validate` call per request. Doorward
//!   checks the token against its database, so revocations are seen within the bound it
//!   documents.
//! - [`Mode::Jwks`]: the JWT is verified here against Doorward's JWK Set. No call per
//!   request, but **a revoked token keeps working until its `exp`**.
//!
//! Refusals are in RFC 6750 form: 401 with `WWW-Authenticate: Bearer realm="example"`
//! (plus `error="invalid_token"` when a token was presented but is bad), 403
//! `insufficient_scope`, and 503 when tokens cannot be validated at all. The token is never
//! logged: the request log prints the path without its query string.

pub mod bearer;
mod grpc;
mod jwks;
#[cfg(test)]
mod test_tls;
mod token_service_tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::middleware::Logger;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde::Serialize;

pub use bearer::{BearerError, Refusal};
pub use grpc::GrpcValidator;
pub use jwks::JwksValidator;
pub use token_service_tls::TokenServiceTls;

/// The environment variable with this server's application secret (grpc mode). There is
/// no flag for it: command lines show up in `ps`.
pub const CLIENT_SECRET_VAR: &str = "RESOURCE_SERVER_CLIENT_SECRET";

/// The contract's name for token-service's URL (`https://HOST:PORT` over TLS), used when
/// neither `--token-service` nor `RESOURCE_SERVER_TOKEN_SERVICE` is given.
pub const TOKEN_SERVICE_URL_VAR: &str = "TOKEN_SERVICE_URL";

/// How tokens are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `TokenValidation.Validate` on token-service, per request (sees revocations).
    Grpc,
    /// Offline against the JWK Set (a revoked token works until it expires).
    Jwks,
}

/// The configuration: flags, each with an environment fallback.
#[derive(Clone, clap::Parser)]
#[command(
    name = "resource-server",
    about = "An example API protected by Doorward access tokens"
)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "RESOURCE_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How tokens are validated.
    #[arg(long, env = "RESOURCE_SERVER_MODE", value_enum, default_value = "grpc")]
    pub mode: Mode,
    /// Doorward's issuer (its public URL); `iss` must equal it (a trailing `/` is ignored).
    #[arg(
        long,
        env = "RESOURCE_SERVER_ISSUER",
        default_value = "http://127.0.0.1:3000"
    )]
    pub issuer: String,
    /// The `aud` tokens must carry (jwks mode); defaults to the issuer, Doorward's default.
    #[arg(long, env = "RESOURCE_SERVER_AUDIENCE")]
    pub audience: Option<String>,
    /// Where the JWK Set is fetched (jwks mode); defaults to
    /// `<issuer>/oauth/discovery/keys`.
    #[arg(long, env = "RESOURCE_SERVER_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// An extra root CA (PEM) for fetching the JWK Set over https from an auth-web whose
    /// certificate comes from a private CA (jwks mode). This example has no built-in roots,
    /// so an https JWK Set URL needs it.
    #[arg(long, env = "RESOURCE_SERVER_JWKS_CA_FILE", value_name = "PATH")]
    pub jwks_ca_file: Option<PathBuf>,
    /// How often the JWK Set is refreshed besides unknown `kid`s (jwks mode).
    #[arg(
        long,
        env = "RESOURCE_SERVER_JWKS_REFRESH_SECONDS",
        default_value_t = 300
    )]
    pub jwks_refresh_seconds: u64,
    /// token-service's gRPC URL, `https://HOST:PORT` over TLS (grpc mode). Without the flag
    /// and `RESOURCE_SERVER_TOKEN_SERVICE`, `TOKEN_SERVICE_URL` is used when set.
    #[arg(
        long,
        env = "RESOURCE_SERVER_TOKEN_SERVICE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub token_service: String,
    /// The CA (PEM) of token-service's certificate; required when the token-service URL is
    /// https (grpc mode).
    #[arg(long, env = "DOORWARD_TOKEN_SERVICE_TLS__CA_FILE", value_name = "PATH")]
    pub token_service_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) to present to token-service, only where the operator
    /// requires one; goes with `--token-service-key-file` (grpc mode).
    #[arg(
        long,
        env = "DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE",
        value_name = "PATH"
    )]
    pub token_service_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `--token-service-cert-file` (grpc mode).
    #[arg(
        long,
        env = "DOORWARD_TOKEN_SERVICE_TLS__KEY_FILE",
        value_name = "PATH"
    )]
    pub token_service_key_file: Option<PathBuf>,
    /// This resource server's own application in Doorward (grpc mode).
    #[arg(long, env = "RESOURCE_SERVER_CLIENT_ID", default_value = "")]
    pub client_id: String,
    /// Its secret: read from `RESOURCE_SERVER_CLIENT_SECRET` only.
    #[arg(skip)]
    pub client_secret: String,
    /// The deadline of each `Validate` call, in milliseconds (grpc mode).
    #[arg(long, env = "RESOURCE_SERVER_GRPC_TIMEOUT_MS", default_value_t = 2_000)]
    pub grpc_timeout_ms: u64,
    /// A scope `/api/whoami` requires (repeatable; all are required). The environment
    /// variable takes them space separated.
    #[arg(
        long = "required-scope",
        env = "RESOURCE_SERVER_REQUIRED_SCOPES",
        value_delimiter = ' ',
        default_value = "read_user"
    )]
    pub required_scopes: Vec<String>,
    /// HTTP worker threads.
    #[arg(long, env = "RESOURCE_SERVER_WORKERS", default_value_t = 2)]
    pub workers: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("mode", &self.mode)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_ca_file", &self.jwks_ca_file)
            .field("jwks_refresh_seconds", &self.jwks_refresh_seconds)
            .field("token_service", &self.token_service)
            .field("token_service_ca_file", &self.token_service_ca_file)
            .field("token_service_cert_file", &self.token_service_cert_file)
            .field("token_service_key_file", &self.token_service_key_file)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("grpc_timeout_ms", &self.grpc_timeout_ms)
            .field("required_scopes", &self.required_scopes)
            .field("workers", &self.workers)
            .finish()
    }
}

impl Config {
    /// Defaults for `mode`, as if started with no flags and no environment.
    pub fn new(mode: Mode) -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            mode,
            issuer: "http://127.0.0.1:3000".into(),
            audience: None,
            jwks_url: None,
            jwks_ca_file: None,
            jwks_refresh_seconds: 300,
            token_service: "http://127.0.0.1:50051".into(),
            token_service_ca_file: None,
            token_service_cert_file: None,
            token_service_key_file: None,
            client_id: String::new(),
            client_secret: String::new(),
            grpc_timeout_ms: 2_000,
            required_scopes: vec!["read_user".into()],
            workers: 2,
        }
    }

    /// The issuer without a trailing slash, as Doorward writes it in `iss`.
    pub fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// The `[token_service_tls]` files, as [`GrpcValidator::with_tls`] takes them.
    pub fn token_service_tls(&self) -> TokenServiceTls {
        TokenServiceTls {
            ca_file: self.token_service_ca_file.clone(),
            cert_file: self.token_service_cert_file.clone(),
            key_file: self.token_service_key_file.clone(),
        }
    }
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The user's id, or `client:<client_id>` for a client-credentials token.
    pub sub: String,
    /// The application the token was issued to.
    pub client_id: String,
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

/// The configured way of validating tokens.
pub enum Validator {
    /// Online, through token-service.
    Grpc(Box<GrpcValidator>),
    /// Offline, against the JWK Set.
    Jwks(Arc<JwksValidator>),
}

impl Validator {
    /// Builds the validator for `config`. In jwks mode the set is fetched once now (a
    /// failure is logged, and requests retry), then refreshed periodically.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let required = config
            .required_scopes
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>();
        match config.mode {
            Mode::Grpc => Ok(Validator::Grpc(Box::new(GrpcValidator::with_tls(
                &config.token_service,
                &config.token_service_tls(),
                &config.client_id,
                &config.client_secret,
                required,
                Duration::from_millis(config.grpc_timeout_ms.max(1)),
            )?))),
            Mode::Jwks => {
                let issuer = config.issuer();
                let audience = config.audience.as_deref().unwrap_or(issuer);
                let jwks_url = config
                    .jwks_url
                    .clone()
                    .unwrap_or_else(|| format!("{issuer}/oauth/discovery/keys"));
                let validator = Arc::new(JwksValidator::with_root_ca(
                    issuer,
                    audience,
                    jwks_url,
                    required,
                    config.jwks_ca_file.as_deref(),
                )?);
                match validator.refresh().await {
                    Ok(n) => tracing::info!(keys = n, "fetched the JWK Set"),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not fetch the JWK Set at start; requests will retry"
                    ),
                }
                validator.spawn_periodic_refresh(Duration::from_secs(
                    config.jwks_refresh_seconds.max(1),
                ));
                Ok(Validator::Jwks(validator))
            }
        }
    }

    /// Validates `token` (already read from the `Authorization` header).
    pub async fn validate(&self, token: &str) -> Result<Principal, Refusal> {
        match self {
            Validator::Grpc(v) => v.validate(token).await,
            Validator::Jwks(v) => v.validate(token).await,
        }
    }
}

async fn whoami(req: HttpRequest, validator: web::Data<Validator>) -> HttpResponse {
    let token = match bearer::extract(req.headers()) {
        Ok(token) => token,
        Err(e) => return Refusal::from(e).response(),
    };
    match validator.validate(token).await {
        Ok(principal) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(principal),
        Err(refusal) => refusal.response(),
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"error": "not_found"}))
}

/// Builds the validator, binds `config.listen` (port 0 works) and serves in the background
/// of the current tokio runtime. Returns the bound address and a handle that stops it.
pub async fn start(config: Config) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let validator = web::Data::new(Validator::build(&config).await?);
    let listener = std::net::TcpListener::bind(&config.listen)
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(validator.clone())
            // `%U` is the path without the query string, and no header is logged: a token
            // never reaches the log.
            .wrap(
                Logger::new("%a %{method}xi %U %s %Dms")
                    .custom_request_replace("method", |req| req.method().to_string()),
            )
            .route("/health", web::get().to(health))
            .route("/api/whoami", web::get().to(whoami))
            .default_service(web::to(not_found))
    })
    .workers(config.workers.max(1))
    .client_request_timeout(Duration::from_secs(10))
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the HTTP server stopped with an error");
        }
    });
    tracing::info!(%addr, mode = ?config.mode, "resource server listening");
    Ok((addr, handle))
}
