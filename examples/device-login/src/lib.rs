//! An example command-line login with the OAuth 2.0 device authorization grant (RFC 8628):
//! what a tool that runs in a terminal does to get a Doorward access token for its user.
//! See `docs/device-login.md`.
//!
//! The steps, each one call:
//!
//! 1. [`DeviceLogin::discover`]: the endpoints, from the issuer's metadata
//!    (`<issuer>/.well-known/oauth-authorization-server`, RFC 8414 and RFC 8628 §4), or
//!    Doorward's paths when the document cannot be had.
//! 2. [`DeviceLogin::start`]: `POST` to the device authorization endpoint; the answer holds
//!    the code and the address to show the user.
//! 3. [`DeviceLogin::poll_until_done`]: `POST` to the token endpoint every `interval` seconds
//!    (5 more after each `slow_down`) until the user approves (the token response), denies
//!    ([`Error::AccessDenied`]) or lets the code expire ([`Error::ExpiredToken`]). The
//!    waiting is done by a [`Sleep`], so tests can drive the time.
//! 4. [`DeviceLogin::current_user`]: `GET <issuer>/api/v4/user` with the access token.
//!
//! Nothing here logs, and the `Debug` output of every type leaves out the device code, the
//! tokens and the client secret.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable with a confidential client's secret. There is no flag for it:
/// command lines show up in `ps`. Public clients (the usual case for a CLI) have none.
pub const CLIENT_SECRET_VAR: &str = "DEVICE_LOGIN_CLIENT_SECRET";

/// The `grant_type` of the polling requests (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.5: after a `slow_down`, the interval grows by this for the rest of the flow.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// RFC 8628 §3.2: the interval when the server names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Where the steps send their requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The issuer, without a trailing `/`.
    pub issuer: String,
    /// `device_authorization_endpoint`.
    pub device_authorization: String,
    /// `token_endpoint`.
    pub token: String,
    /// The user resource, `<issuer>/api/v4/user` (not part of the metadata).
    pub user: String,
    /// Whether the two OAuth endpoints came from the metadata document.
    pub discovered: bool,
}

impl Endpoints {
    /// Doorward's paths under `issuer`, used when discovery is not possible.
    pub fn fallback(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/');
        Self {
            issuer: issuer.to_owned(),
            device_authorization: format!("{issuer}/oauth/authorize_device"),
            token: format!("{issuer}/oauth/token"),
            user: format!("{issuer}/api/v4/user"),
            discovered: false,
        }
    }
}

/// What went wrong. `Display` is one line, safe to show the user.
#[derive(Debug)]
pub enum Error {
    /// The user chose *Deny* (`access_denied`).
    AccessDenied,
    /// The codes expired before the user approved (`expired_token`, or `expires_in` passed
    /// while polling).
    ExpiredToken,
    /// Any other OAuth error (RFC 6749 §5.2), or another refusal with a status.
    Refused {
        /// Which step.
        step: &'static str,
        /// The HTTP status.
        status: u16,
        /// The `error` code (or `message` of the API).
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The issuer is not a usable URL, or its metadata names another issuer.
    Config(String),
    /// The request did not get an answer.
    Http {
        /// The URL asked.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// An answer that is not what the protocol says.
    Unexpected {
        /// Which step.
        step: &'static str,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AccessDenied => write!(f, "access_denied: the sign-in was denied"),
            Error::ExpiredToken => write!(
                f,
                "expired_token: the code was not approved in time; run the command again"
            ),
            Error::Refused {
                step,
                status,
                error,
                description,
            } => {
                write!(f, "{step} refused ({status}): {}", clean(error))?;
                if let Some(description) = description {
                    write!(f, ": {}", clean(description))?;
                }
                Ok(())
            }
            Error::Config(message) => write!(f, "{}", clean(message)),
            Error::Http { url, .. } => write!(f, "no answer from {url}"),
            Error::Unexpected {
                step,
                status,
                detail,
            } => write!(f, "{step}: unexpected answer ({status}): {}", clean(detail)),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Http { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Text from the server, without control characters: it goes to a terminal, on one line.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The answer of the device authorization endpoint (RFC 8628 §3.2).
#[derive(Clone, Deserialize)]
pub struct DeviceAuthorization {
    device_code: String,
    /// The code the user types, `XXXX-XXXX` at Doorward.
    pub user_code: String,
    /// Where the user goes to type it.
    pub verification_uri: String,
    /// The same address with the code filled in, if the server gives one.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds until both codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls (5 when absent).
    #[serde(default)]
    pub interval: Option<u64>,
}

impl DeviceAuthorization {
    /// The device code: a secret, sent only to the token endpoint.
    pub fn device_code(&self) -> &str {
        &self.device_code
    }

    /// The first polling interval (at least one second).
    pub fn initial_interval(&self) -> Duration {
        self.interval
            .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.max(1)))
    }
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

/// The token response (RFC 6749 §5.1, with Doorward's `created_at`).
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds the access token lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The refresh token: keep it where only the user can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Unix seconds at issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// With the `openid` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .field("created_at", &self.created_at)
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One poll's answer, when it is not the end of the flow.
#[derive(Debug)]
pub enum Poll {
    /// `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: ask again after the interval plus [`SLOW_DOWN_STEP`], from now on.
    SlowDown,
    /// The user approved.
    Done(TokenResponse),
}

/// How the polling loop waits. [`RealSleep`] sleeps; tests pass one that moves a clock.
pub trait Sleep {
    /// Waits `duration` (or what stands for it).
    fn sleep(&mut self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Real time: `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealSleep;

impl Sleep for RealSleep {
    fn sleep(&mut self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// The metadata fields this client reads (RFC 8414 §2, RFC 8628 §4).
#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    device_authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

/// A device login for one client at one issuer.
#[derive(Clone)]
pub struct DeviceLogin {
    http: reqwest::Client,
    endpoints: Endpoints,
    client_id: String,
    client_secret: Option<String>,
}

impl fmt::Debug for DeviceLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceLogin")
            .field("endpoints", &self.endpoints)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `issuer` as a base URL: http or https, no query or fragment, no trailing `/`.
pub fn normalize_issuer(issuer: &str) -> Result<String, Error> {
    let parsed = url::Url::parse(issuer)
        .map_err(|e| Error::Config(format!("the issuer {issuer:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(Error::Config(format!(
            "the issuer must be an http(s) URL without query or fragment, not {issuer:?}"
        )));
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// Whether `issuer` is plain http to another machine: the codes and tokens would cross the
/// network readable by anyone on the way.
pub fn is_insecure(issuer: &str) -> bool {
    let Ok(parsed) = url::Url::parse(issuer) else {
        return true;
    };
    if parsed.scheme() == "https" {
        return false;
    }
    match parsed.host() {
        Some(url::Host::Domain(name)) => name != "localhost",
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => true,
    }
}

impl DeviceLogin {
    /// A login against known endpoints.
    pub fn new(
        http: reqwest::Client,
        endpoints: Endpoints,
        client_id: impl Into<String>,
        client_secret: Option<String>,
    ) -> Self {
        Self {
            http,
            endpoints,
            client_id: client_id.into(),
            client_secret: client_secret.filter(|s| !s.is_empty()),
        }
    }

    /// Reads the endpoints from `<issuer>/.well-known/oauth-authorization-server`. If the
    /// document is missing or unreadable, or lacks an endpoint, Doorward's paths are used
    /// for what is missing. Metadata that names another issuer is refused (RFC 8414 §3.3).
    pub async fn discover(
        http: reqwest::Client,
        issuer: &str,
        client_id: impl Into<String>,
        client_secret: Option<String>,
    ) -> Result<Self, Error> {
        let issuer = normalize_issuer(issuer)?;
        let mut endpoints = Endpoints::fallback(&issuer);
        let url = format!("{issuer}/.well-known/oauth-authorization-server");
        let response = http
            .get(&url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| Error::Http { url, source })?;
        let metadata = if response.status() == StatusCode::OK {
            response.json::<Metadata>().await.ok()
        } else {
            None
        };
        if let Some(metadata) = metadata {
            if let Some(named) = &metadata.issuer
                && named.trim_end_matches('/') != issuer
            {
                return Err(Error::Config(format!(
                    "the metadata at {issuer} names another issuer, {named}"
                )));
            }
            let usable = |u: &Option<String>| {
                u.as_deref()
                    .filter(|u| normalize_issuer(u).is_ok())
                    .map(str::to_owned)
            };
            if let Some(url) = usable(&metadata.device_authorization_endpoint) {
                endpoints.device_authorization = url;
                endpoints.discovered = true;
            }
            if let Some(url) = usable(&metadata.token_endpoint) {
                endpoints.token = url;
            }
        }
        Ok(Self::new(http, endpoints, client_id, client_secret))
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// A form POST with the client's credentials: HTTP Basic (form-encoded halves, RFC 6749
    /// §2.3.1) for a confidential client, `client_id` in the body for a public one.
    fn post(&self, url: &str, form: &mut Vec<(&str, String)>) -> reqwest::RequestBuilder {
        let request = self.http.post(url).header(ACCEPT, "application/json");
        match &self.client_secret {
            Some(secret) => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request.basic_auth(encode(&self.client_id), Some(encode(secret)))
            }
            None => {
                form.push(("client_id", self.client_id.clone()));
                request
            }
        }
    }

    /// Step 2: asks for the codes (`scope` space separated; `None` for the client's
    /// default).
    pub async fn start(&self, scope: Option<&str>) -> Result<DeviceAuthorization, Error> {
        const STEP: &str = "device authorization";
        let url = &self.endpoints.device_authorization;
        let mut form = Vec::new();
        if let Some(scope) = scope.filter(|s| !s.trim().is_empty()) {
            form.push(("scope", scope.to_owned()));
        }
        let request = self.post(url, &mut form).form(&form);
        let (status, body) = send(request, url).await?;
        if status != StatusCode::OK {
            return Err(refusal(STEP, status, &body));
        }
        let started: DeviceAuthorization =
            serde_json::from_slice(&body).map_err(|e| Error::Unexpected {
                step: STEP,
                status: status.as_u16(),
                detail: e.to_string(),
            })?;
        if started.device_code.is_empty() || started.user_code.is_empty() {
            return Err(Error::Unexpected {
                step: STEP,
                status: status.as_u16(),
                detail: "no device_code or user_code".into(),
            });
        }
        Ok(started)
    }

    /// One poll of the token endpoint. `Err` ends the flow.
    pub async fn poll_once(&self, started: &DeviceAuthorization) -> Result<Poll, Error> {
        let url = &self.endpoints.token;
        let mut form = vec![
            ("grant_type", DEVICE_CODE_GRANT.to_owned()),
            ("device_code", started.device_code.clone()),
        ];
        let request = self.post(url, &mut form).form(&form);
        let (status, body) = send(request, url).await?;
        poll_answer(status.as_u16(), &body)
    }

    /// Step 3: waits the interval, polls, and again, until the flow ends. Each
    /// `slow_down` adds [`SLOW_DOWN_STEP`] to the interval for the rest of the flow. Once
    /// `expires_in` has been waited, it stops with [`Error::ExpiredToken`] without asking
    /// again.
    pub async fn poll_until_done(
        &self,
        started: &DeviceAuthorization,
        sleep: &mut impl Sleep,
    ) -> Result<TokenResponse, Error> {
        let lifetime = Duration::from_secs(started.expires_in);
        let mut interval = started.initial_interval();
        let mut waited = Duration::ZERO;
        loop {
            if waited >= lifetime {
                return Err(Error::ExpiredToken);
            }
            sleep.sleep(interval).await;
            waited += interval;
            match self.poll_once(started).await? {
                Poll::Pending => {}
                Poll::SlowDown => interval += SLOW_DOWN_STEP,
                Poll::Done(tokens) => return Ok(tokens),
            }
        }
    }

    /// Step 4: `GET <issuer>/api/v4/user` with the access token: the user's JSON.
    pub async fn current_user(&self, access_token: &str) -> Result<Value, Error> {
        const STEP: &str = "user";
        let url = &self.endpoints.user;
        let request = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .bearer_auth(access_token);
        let (status, body) = send(request, url).await?;
        if status != StatusCode::OK {
            return Err(refusal(STEP, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| Error::Unexpected {
            step: STEP,
            status: status.as_u16(),
            detail: e.to_string(),
        })
    }
}

async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<(StatusCode, Vec<u8>), Error> {
    let http = |source| Error::Http {
        url: url.to_owned(),
        source,
    };
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    let body = response.bytes().await.map_err(http)?;
    Ok((status, body.to_vec()))
}

/// An error answer: RFC 6749 §5.2 `error`/`error_description`, or the API's `message`.
fn refusal(step: &'static str, status: StatusCode, body: &[u8]) -> Error {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| parsed.get(key).and_then(Value::as_str).map(str::to_owned);
    match text("error").or_else(|| text("message")) {
        Some(error) => Error::Refused {
            step,
            status: status.as_u16(),
            error,
            description: text("error_description"),
        },
        None => Error::Unexpected {
            step,
            status: status.as_u16(),
            detail: "no error code in the body".into(),
        },
    }
}

/// The polling state machine's input: one token-endpoint answer (RFC 8628 §3.5).
pub fn poll_answer(status: u16, body: &[u8]) -> Result<Poll, Error> {
    const STEP: &str = "token";
    if status == 200 {
        let tokens: TokenResponse =
            serde_json::from_slice(body).map_err(|e| Error::Unexpected {
                step: STEP,
                status,
                detail: e.to_string(),
            })?;
        if !tokens.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unexpected {
                step: STEP,
                status,
                detail: format!("token_type {}", tokens.token_type),
            });
        }
        return Ok(Poll::Done(tokens));
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match refusal(STEP, code, body) {
        Error::Refused { error, .. } if error == "authorization_pending" => Ok(Poll::Pending),
        Error::Refused { error, .. } if error == "slow_down" => Ok(Poll::SlowDown),
        Error::Refused { error, .. } if error == "access_denied" => Err(Error::AccessDenied),
        Error::Refused { error, .. } if error == "expired_token" => Err(Error::ExpiredToken),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn error_body(error: &str) -> Vec<u8> {
        format!(r#"{{"error":"{error}","error_description":"Because.\nReally."}}"#).into_bytes()
    }

    #[test]
    fn the_polling_answers_map_to_the_state_machine() {
        assert!(matches!(
            poll_answer(400, &error_body("authorization_pending")),
            Ok(Poll::Pending)
        ));
        assert!(matches!(
            poll_answer(400, &error_body("slow_down")),
            Ok(Poll::SlowDown)
        ));
        assert!(matches!(
            poll_answer(400, &error_body("access_denied")),
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            poll_answer(400, &error_body("expired_token")),
            Err(Error::ExpiredToken)
        ));
        let Err(other) = poll_answer(400, &error_body("invalid_grant")) else {
            panic!("invalid_grant ends the flow");
        };
        // One line, even when the description is not.
        assert_eq!(
            other.to_string(),
            "token refused (400): invalid_grant: Because. Really."
        );
        assert!(matches!(
            poll_answer(503, b"<html>busy</html>"),
            Err(Error::Unexpected { status: 503, .. })
        ));
    }

    #[test]
    fn a_token_response_is_done_and_never_debug_printed() {
        let body = br#"{"access_token":"at-secret","token_type":"Bearer","expires_in":7200,
            "refresh_token":"rt-secret","scope":"read_user","created_at":1}"#;
        let Ok(Poll::Done(tokens)) = poll_answer(200, body) else {
            panic!("a token response");
        };
        assert_eq!(tokens.scope.as_deref(), Some("read_user"));
        let shown = format!("{tokens:?}");
        assert!(
            !shown.contains("at-secret") && !shown.contains("rt-secret"),
            "{shown}"
        );
        // Another token type is not what this client can use.
        let mac = br#"{"access_token":"x","token_type":"mac"}"#;
        assert!(poll_answer(200, mac).is_err());
    }

    #[test]
    fn the_device_code_is_never_debug_printed() {
        let started: DeviceAuthorization = serde_json::from_str(
            r#"{"device_code":"dc-secret","user_code":"BCDF-GHJK",
                "verification_uri":"http://127.0.0.1:3000/oauth/device","expires_in":300}"#,
        )
        .unwrap();
        assert!(!format!("{started:?}").contains("dc-secret"));
        assert_eq!(started.initial_interval(), DEFAULT_INTERVAL);
        let login = DeviceLogin::new(
            reqwest::Client::new(),
            Endpoints::fallback("http://127.0.0.1:3000/"),
            "id",
            Some("cs-secret".into()),
        );
        assert!(!format!("{login:?}").contains("cs-secret"));
        assert_eq!(
            login.endpoints().device_authorization,
            "http://127.0.0.1:3000/oauth/authorize_device"
        );
    }

    #[test]
    fn issuers() {
        assert_eq!(
            normalize_issuer("https://id.example/").unwrap(),
            "https://id.example"
        );
        assert!(normalize_issuer("id.example").is_err());
        assert!(normalize_issuer("ftp://id.example").is_err());
        assert!(normalize_issuer("https://id.example/?x=1").is_err());
        assert!(!is_insecure("https://id.example"));
        assert!(!is_insecure("http://127.0.0.1:3000"));
        assert!(!is_insecure("http://localhost:3000"));
        assert!(!is_insecure("http://[::1]:3000"));
        assert!(is_insecure("http://id.example"));
    }
}
