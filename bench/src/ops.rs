//! One request of each kind, as a client of Doorward would send it: keep-alive HTTP
//! (reqwest) to auth-web, and gRPC (the generated client of `doorward-proto`) to
//! token-service. Every operation checks the answer, so a fast wrong answer is an error.

use anyhow::Context;
use base64::Engine;
use doorward_proto::v1 as pb;
use serde::Deserialize;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// The server under test and the credentials that the scenarios use.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://HOST:PORT` of auth-web.
    pub http_base: String,
    /// `http://HOST:PORT` of token-service, or `https://HOST:PORT` when its gRPC port
    /// speaks TLS (then `grpc_ca_file` is needed).
    pub grpc_url: String,
    /// The CA of token-service's certificate (PEM), for an `https://` `grpc_url`. The
    /// harness presents no client certificate: it calls `TokenValidation` as a resource
    /// server would, and identifies itself for internal RPCs with `service_token`.
    pub grpc_ca_file: Option<std::path::PathBuf>,
    /// A confidential application allowed the grants of the scenarios.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// A user (password, refresh, authorization_code, api_user, introspect).
    pub username: String,
    /// Its password.
    pub password: String,
    /// Its id (`None`: learnt from `/api/v4/user`).
    pub user_id: Option<i64>,
    /// Users that only ever get minted codes, one for each run that mints many. The
    /// consent check behind `Authorizations.IssueCode` reads every live token of the user,
    /// so minting for the main user (who holds the tokens of every earlier scenario) slows
    /// down as they pile up: 4,000 codes/s on a fresh user, 300/s with 13,000 tokens.
    /// Empty: the main user.
    pub code_user_ids: Vec<i64>,
    /// A redirect URI registered for the application.
    pub redirect_uri: String,
    /// token-service's `SERVICE_TOKEN`, sent as `authorization: Bearer ...` on internal
    /// RPCs (`GetStats`, `IssueCode`), never on `TokenValidation`.
    pub service_token: Option<String>,
}

/// The TLS settings of the harness's gRPC channels: `None` for `http://`.
fn grpc_tls(target: &Target) -> anyhow::Result<Option<ClientTlsConfig>> {
    if !target.grpc_url.starts_with("https://") {
        return Ok(None);
    }
    let ca_file = target.grpc_ca_file.as_ref().with_context(|| {
        format!(
            "{} is https: the CA of token-service's certificate is needed (--grpc-ca)",
            target.grpc_url
        )
    })?;
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("could not read the CA {}", ca_file.display()))?;
    Ok(Some(
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
    ))
}

/// Why a request did not count as a success; grouped by this text in the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl Failure {
    fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

/// The kind of an HTTP error answer: the status, the OAuth `error` code and
/// `error_description` of a JSON body (RFC 6749 §5.2), and whether `Retry-After` was set,
/// as in `HTTP 429 invalid_grant, Retry-After: "Too many failed sign-in attempts."`.
/// Only fixed parts of the answer go in (not the `Retry-After` seconds), so that equal
/// errors group together.
pub fn describe_http_error(status: u16, retry_after: bool, body: &str) -> String {
    let mut kind = format!("HTTP {status}");
    let json = serde_json::from_str::<serde_json::Value>(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v[name].as_str())
            .map(|s| s.chars().take(120).collect::<String>())
    };
    if let Some(code) = field("error") {
        kind.push(' ');
        kind.push_str(&code);
    }
    if retry_after {
        kind.push_str(", Retry-After");
    }
    match field("error_description") {
        Some(description) => kind.push_str(&format!(": {description:?}")),
        None if json.is_none() && !body.trim().is_empty() => {
            let text: String = body.trim().chars().take(80).collect();
            kind.push_str(&format!(": {text:?}"));
        }
        None => {}
    }
    kind
}

/// Reads an error answer whole and describes it (see [`describe_http_error`]).
async fn http_failure(response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .contains_key(reqwest::header::RETRY_AFTER);
    let body = response.text().await.unwrap_or_default();
    Failure(describe_http_error(status, retry_after, &body))
}

/// The fields of a token response the scenarios use.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
}

/// How long a connection may take to open, on loopback.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The HTTP and gRPC clients of one benchmark.
#[derive(Clone)]
pub struct Clients {
    /// Keep-alive HTTP client (its pool keeps one connection per concurrent worker).
    pub http: reqwest::Client,
    /// gRPC channels (workers share them round-robin).
    pub channels: Vec<Channel>,
    /// `authorization` metadata for `TokenValidation` (the application's Basic).
    pub validate_auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl Clients {
    /// Connects `channels` gRPC channels and builds the HTTP client.
    pub async fn connect(target: &Target, channels: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1_024)
            .tcp_nodelay(true)
            // Requests themselves are bounded by the runner (`--request-timeout`).
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        let tls = grpc_tls(target)?;
        let mut list = Vec::with_capacity(channels.max(1));
        for _ in 0..channels.max(1) {
            let mut endpoint = Channel::from_shared(target.grpc_url.clone())?
                .tcp_nodelay(true)
                .connect_timeout(CONNECT_TIMEOUT);
            if let Some(tls) = &tls {
                endpoint = endpoint.tls_config(tls.clone())?;
            }
            list.push(endpoint.connect().await?);
        }
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", target.client_id, target.client_secret));
        Ok(Self {
            http,
            channels: list,
            validate_auth: format!("Basic {basic}").parse()?,
        })
    }

    /// The channel of worker `i`.
    pub fn channel(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }
}

async fn token_request(
    clients: &Clients,
    target: &Target,
    form: &[(&str, &str)],
) -> Result<TokenResponse, Failure> {
    let response = clients
        .http
        .post(format!("{}/oauth/token", target.http_base))
        .basic_auth(&target.client_id, Some(&target.client_secret))
        .form(form)
        .send()
        .await
        .map_err(|e| Failure::new(format!("transport: {e}")))?;
    if !response.status().is_success() {
        return Err(http_failure(response).await);
    }
    response
        .json::<TokenResponse>()
        .await
        .map_err(|e| Failure::new(format!("bad token response: {e}")))
}

/// `grant_type=client_credentials`.
pub async fn client_credentials(
    clients: &Clients,
    target: &Target,
) -> Result<TokenResponse, Failure> {
    token_request(clients, target, &[("grant_type", "client_credentials")]).await
}

/// `grant_type=password` for the target's user.
pub async fn password(clients: &Clients, target: &Target) -> Result<TokenResponse, Failure> {
    token_request(
        clients,
        target,
        &[
            ("grant_type", "password"),
            ("username", &target.username),
            ("password", &target.password),
            ("scope", "api read_user"),
        ],
    )
    .await
}

/// `grant_type=refresh_token`; the answer must carry the next refresh token.
pub async fn refresh(
    clients: &Clients,
    target: &Target,
    refresh_token: &str,
) -> Result<TokenResponse, Failure> {
    let tokens = token_request(
        clients,
        target,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await?;
    if tokens.refresh_token.is_none() {
        return Err(Failure::new("refresh answer without a refresh_token"));
    }
    Ok(tokens)
}

/// `grant_type=authorization_code` with a code from [`issue_code`].
pub async fn exchange_code(
    clients: &Clients,
    target: &Target,
    code: &str,
) -> Result<TokenResponse, Failure> {
    token_request(
        clients,
        target,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &target.redirect_uri),
        ],
    )
    .await
}

/// `GET /api/v4/user` with a bearer token.
pub async fn api_user(clients: &Clients, target: &Target, token: &str) -> Result<(), Failure> {
    let response = clients
        .http
        .get(format!("{}/api/v4/user", target.http_base))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| Failure::new(format!("transport: {e}")))?;
    if !response.status().is_success() {
        return Err(http_failure(response).await);
    }
    // Read the body whole, as a client would (and so that the connection is reused).
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::new(format!("transport: {e}")))?;
    if body.is_empty() {
        return Err(Failure::new("empty /api/v4/user body"));
    }
    Ok(())
}

/// The user id behind a user access token (`GET /api/v4/user`).
pub async fn user_id(clients: &Clients, target: &Target, token: &str) -> anyhow::Result<i64> {
    let value: serde_json::Value = clients
        .http
        .get(format!("{}/api/v4/user", target.http_base))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    value["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("/api/v4/user gave no id"))
}

/// `POST /oauth/introspect` of `token`, the application authenticating with Basic; the
/// token must come back active.
pub async fn introspect(clients: &Clients, target: &Target, token: &str) -> Result<(), Failure> {
    let response = clients
        .http
        .post(format!("{}/oauth/introspect", target.http_base))
        .basic_auth(&target.client_id, Some(&target.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .map_err(|e| Failure::new(format!("transport: {e}")))?;
    if !response.status().is_success() {
        return Err(http_failure(response).await);
    }
    #[derive(Deserialize)]
    struct Active {
        active: bool,
    }
    match response.json::<Active>().await {
        Ok(Active { active: true }) => Ok(()),
        Ok(_) => Err(Failure::new("introspection: inactive")),
        Err(e) => Err(Failure::new(format!("bad introspection answer: {e}"))),
    }
}

/// `TokenValidation.Validate` of `token` with the application's Basic credentials; the
/// token must be active.
pub async fn grpc_validate(
    clients: &Clients,
    channel: Channel,
    token: &str,
) -> Result<(), Failure> {
    let mut client = pb::token_validation_client::TokenValidationClient::new(channel);
    let mut request = tonic::Request::new(pb::ValidateRequest {
        token: token.to_owned(),
        required_scopes: Vec::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", clients.validate_auth.clone());
    match client.validate(request).await {
        Ok(response) => {
            let response = response.into_inner();
            if response.active {
                Ok(())
            } else {
                Err(Failure::new(format!(
                    "inactive: {}",
                    response.inactive_reason
                )))
            }
        }
        Err(status) => Err(Failure::new(format!(
            "gRPC {:?}: {:?}",
            status.code(),
            status.message()
        ))),
    }
}

/// token-service's count of the SQL statements it has run (`TokenService.GetStats`);
/// `None` when it cannot say (an older build, a refused call).
pub async fn service_statements(channel: Channel, target: &Target) -> Option<u64> {
    let mut client = pb::token_service_client::TokenServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::Empty {});
    request.set_timeout(std::time::Duration::from_secs(5));
    if let Some(token) = &target.service_token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().ok()?);
    }
    let stats = client.get_stats(request).await.ok()?.into_inner();
    Some(stats.database_statements)
}

/// Mints an authorization code for the target's user through token-service's
/// `Authorizations.IssueCode` (what auth-web calls once the user has consented).
pub async fn issue_code(channel: Channel, target: &Target, user_id: i64) -> anyhow::Result<String> {
    let mut client = pb::authorizations_client::AuthorizationsClient::new(channel);
    let mut request = tonic::Request::new(pb::IssueCodeRequest {
        request: Some(pb::AuthorizationRequest {
            client_id: target.client_id.clone(),
            redirect_uri: target.redirect_uri.clone(),
            response_type: "code".into(),
            scope: Some("api read_user".into()),
            ..Default::default()
        }),
        user_id,
        auth_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    });
    if let Some(token) = &target.service_token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    match client.issue_code(request).await?.into_inner().result {
        Some(pb::issue_code_response::Result::Code(code)) => Ok(code),
        Some(pb::issue_code_response::Result::Error(e)) => {
            anyhow::bail!("IssueCode refused: {e:?}")
        }
        None => anyhow::bail!("IssueCode gave no answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_are_grouped_by_status_code_and_description() {
        let throttled = r#"{"error":"invalid_grant","error_description":"Too many failed sign-in attempts. Try again later."}"#;
        assert_eq!(
            describe_http_error(429, true, throttled),
            r#"HTTP 429 invalid_grant, Retry-After: "Too many failed sign-in attempts. Try again later.""#
        );
        assert_eq!(
            describe_http_error(503, false, r#"{"error":"temporarily_unavailable"}"#),
            "HTTP 503 temporarily_unavailable"
        );
        assert_eq!(describe_http_error(502, false, ""), "HTTP 502");
        assert_eq!(
            describe_http_error(500, false, "oops\n"),
            r#"HTTP 500: "oops""#
        );
    }
}
