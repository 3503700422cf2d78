//! HTTP error responses in the protocol's own form, built in one place: RFC 6749 §5.2 JSON
//! with `WWW-Authenticate` for `/oauth/*`, GitLab's bearer errors for the API.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;
use serde_json::json;

/// The realm in `WWW-Authenticate` challenges of the OAuth endpoints.
pub const OAUTH_REALM: &str = "Doorward";

/// Which challenge a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic`: the client authenticated (or tried to) with HTTP Basic (RFC 6749 §5.2).
    Basic,
    /// `Bearer` with the error code, as GitLab sends on every token-endpoint error.
    Bearer,
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// The description.
    pub description: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// The challenge scheme.
    pub challenge: Challenge,
    /// `Retry-After` seconds, for rate-limit refusals.
    pub retry_after: Option<u32>,
}

/// `Retry-After` on the 503s auth-web answers itself because token-service is unreachable:
/// a restart or a reconnect takes about this long (RFC 9110 §10.2.3).
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u32 = 1;

/// The status RFC 6749 §5.2 (and doorkeeper) give a code: 401 for client authentication
/// failures, 503/500 for our own trouble, 400 otherwise.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::UnauthorizedClient => StatusCode::UNAUTHORIZED,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A code token-service sent as text. It only sends codes of [`ErrorCode`]; anything else
/// means the two services disagree (a version skew), which is our fault, not the client's.
pub fn wire_code(code: &str) -> ErrorCode {
    ErrorCode::parse(code).unwrap_or_else(|| {
        tracing::warn!(
            code,
            request_id = crate::observe::request_id_field(),
            "token-service sent an unknown error code; answering server_error"
        );
        ErrorCode::ServerError
    })
}

/// What a failed token-service call (a gRPC status, never a refusal carried as data) means
/// to the browser or client: JSON endpoints and pages both decide by this, so that they
/// cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Unreachable, slow or overloaded: it recovers by itself, so 503 with `Retry-After`.
    Unavailable,
    /// It failed inside or we called it wrongly: retrying will not help, so 500.
    Internal,
}

impl UpstreamFailure {
    /// The failure a gRPC status code stands for.
    pub fn of(status: &tonic::Status) -> Self {
        use tonic::Code;
        match status.code() {
            Code::Internal
            | Code::Unimplemented
            | Code::InvalidArgument
            | Code::Unauthenticated => Self::Internal,
            _ => Self::Unavailable,
        }
    }

    /// The OAuth code for it (RFC 6749 §4.1.2.1).
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Unavailable => ErrorCode::TemporarilyUnavailable,
            Self::Internal => ErrorCode::ServerError,
        }
    }

    /// The HTTP status for it.
    pub fn http_status(self) -> StatusCode {
        status_for(self.code())
    }
}

impl OAuthError {
    /// An error with the code's default description.
    pub fn new(code: ErrorCode) -> Self {
        Self::with(code, code.default_description())
    }

    /// An error with a specific description.
    pub fn with(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            status: status_for(code),
            challenge: Challenge::Bearer,
            retry_after: None,
        }
    }

    /// `invalid_request`, for a malformed request.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::with(ErrorCode::InvalidRequest, description)
    }

    /// The error token-service sent as data.
    pub fn from_proto(error: pb::OAuthError) -> Self {
        let code = wire_code(&error.error);
        let mut status = status_for(code);
        let retry_after = (error.retry_after_seconds > 0).then_some(error.retry_after_seconds);
        // A rate limit's refusal is 429; an overload keeps its 503 (RFC 6749 §5.2), both
        // with Retry-After.
        if retry_after.is_some() && status != StatusCode::SERVICE_UNAVAILABLE {
            status = StatusCode::TOO_MANY_REQUESTS;
        }
        Self {
            code,
            description: error.error_description,
            status,
            challenge: Challenge::Bearer,
            retry_after,
        }
    }

    /// An infrastructure failure reaching token-service: 503 when it is unreachable or slow
    /// (it recovers by itself), 500 when it failed inside.
    pub fn from_status(status: &tonic::Status) -> Self {
        tracing::warn!(code = ?status.code(), message = %status.message(), request_id = crate::observe::request_id_field(), "token-service call failed");
        match UpstreamFailure::of(status) {
            UpstreamFailure::Internal => Self::new(ErrorCode::ServerError),
            UpstreamFailure::Unavailable => Self {
                retry_after: Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
                ..Self::new(ErrorCode::TemporarilyUnavailable)
            },
        }
    }

    /// Overrides the status.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Sets the challenge scheme.
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// The response: JSON body, `no-store`, and a `WWW-Authenticate` challenge.
    pub fn response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        no_store(&mut builder);
        let challenge = match self.challenge {
            Challenge::Basic => format!("Basic realm=\"{OAUTH_REALM}\""),
            Challenge::Bearer => format!(
                "Bearer realm=\"{OAUTH_REALM}\", error=\"{}\", error_description=\"{}\"",
                quoted(self.code.as_str()),
                quoted(&self.description)
            ),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            builder.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let Some(seconds) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        builder
            .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
            .body(
                json!({"error": self.code.as_str(), "error_description": self.description})
                    .to_string(),
            )
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1, SEC-SL-04).
pub fn no_store(builder: &mut HttpResponseBuilder) {
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder.insert_header((header::PRAGMA, "no-cache"));
}

/// Makes text safe inside a quoted-string of a header (RFC 7230 §3.2.6): no quotes,
/// backslashes or control characters.
pub fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() || !c.is_ascii() => ' ',
            c => c,
        })
        .collect()
}

impl actix_web::ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc_6749_section_5_2() {
        assert_eq!(
            status_for(ErrorCode::InvalidClient),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_for(ErrorCode::UnauthorizedClient),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status_for(ErrorCode::InvalidGrant), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_for(ErrorCode::TemporarilyUnavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn an_unknown_code_from_token_service_is_a_server_error() {
        let err = OAuthError::from_proto(pb::OAuthError {
            error: "no_such_code".to_owned(),
            error_description: "d".to_owned(),
            retry_after_seconds: 0,
        });
        assert_eq!(err.code, ErrorCode::ServerError);
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn grpc_failures_split_into_unavailable_and_internal() {
        use tonic::{Code, Status};
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Cancelled,
        ] {
            assert_eq!(
                UpstreamFailure::of(&Status::new(code, "")),
                UpstreamFailure::Unavailable,
                "{code:?}"
            );
        }
        for code in [
            Code::Internal,
            Code::Unimplemented,
            Code::InvalidArgument,
            Code::Unauthenticated,
        ] {
            assert_eq!(
                UpstreamFailure::of(&Status::new(code, "")),
                UpstreamFailure::Internal,
                "{code:?}"
            );
        }
    }

    #[actix_web::test]
    async fn json_bodies_carry_the_wire_code() {
        let body = OAuthError::new(ErrorCode::InvalidGrant)
            .response()
            .into_body();
        let bytes = actix_web::body::to_bytes(body).await.unwrap();
        assert!(bytes.starts_with(br#"{"error":"invalid_grant","error_description":"#));
    }

    #[test]
    fn retry_after_makes_refusals_429_but_overloads_stay_503() {
        let answer = |error: &str| {
            OAuthError::from_proto(pb::OAuthError {
                error: error.to_owned(),
                error_description: "d".to_owned(),
                retry_after_seconds: 1,
            })
        };
        for code in ["invalid_grant", "invalid_client"] {
            assert_eq!(answer(code).status, StatusCode::TOO_MANY_REQUESTS, "{code}");
        }
        let overloaded = answer("temporarily_unavailable");
        assert_eq!(overloaded.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            overloaded
                .response()
                .headers()
                .get(header::RETRY_AFTER)
                .unwrap(),
            "1"
        );
    }

    #[test]
    fn header_text_is_sanitised() {
        assert_eq!(quoted("a \"b\"\n\\"), "a 'b' '");
    }
}
