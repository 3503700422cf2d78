//! Reading the bearer token from a request (RFC 6750 §2.1) and answering a refusal in
//! RFC 6750 §3 form.
//!
//! Only the `Authorization` header is read. The `access_token` query parameter (§2.3) is
//! not accepted: URLs end up in logs and browser histories.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};

/// The realm in every `WWW-Authenticate` challenge.
pub const REALM: &str = "example";

/// Longer `Authorization` values are refused without looking further.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why no usable bearer token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header, or one with another scheme (`Basic ...`): the request
    /// carried no bearer token at all.
    Missing,
    /// A bearer token was presented but it is not a `b64token`, or the header is repeated
    /// or not ASCII.
    Malformed,
}

/// The bearer token of a request's headers.
pub fn extract(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(BearerError::Malformed);
    }
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    parse_authorization(value)
}

/// The token of one `Authorization` value: `Bearer 1*SP b64token`, the scheme in any case.
pub fn parse_authorization(value: &str) -> Result<&str, BearerError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = match value.split_once(' ') {
        Some(parts) => parts,
        None if value.eq_ignore_ascii_case("bearer") => return Err(BearerError::Malformed),
        None => return Err(BearerError::Missing),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = rest.trim_start_matches(' ');
    if token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A refusal of a protected resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401 with a bare challenge: the request carried no bearer token.
    NoToken,
    /// 401 `invalid_token`: malformed, badly signed, expired, revoked or unknown.
    InvalidToken,
    /// 403 `insufficient_scope`, naming the scopes the resource needs (space separated).
    InsufficientScope(String),
    /// 503: the resource server cannot validate tokens right now (Doorward unreachable, or
    /// this server's own credentials refused). Not the caller's fault.
    Unavailable,
}

impl From<BearerError> for Refusal {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Missing => Refusal::NoToken,
            BearerError::Malformed => Refusal::InvalidToken,
        }
    }
}

impl Refusal {
    /// The `WWW-Authenticate` value, if the refusal has one.
    pub fn challenge(&self) -> Option<String> {
        match self {
            Refusal::NoToken => Some(format!("Bearer realm=\"{REALM}\"")),
            Refusal::InvalidToken => {
                Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""))
            }
            Refusal::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                quoted_safe(scope)
            )),
            Refusal::Unavailable => None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoToken | Refusal::InvalidToken => StatusCode::UNAUTHORIZED,
            Refusal::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response: status, challenge and a small JSON body.
    pub fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge() {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let body = match self {
            Refusal::NoToken => serde_json::json!({"error": "unauthorized"}),
            Refusal::InvalidToken => serde_json::json!({"error": "invalid_token"}),
            Refusal::InsufficientScope(scope) => {
                serde_json::json!({"error": "insufficient_scope", "scope": scope})
            }
            Refusal::Unavailable => {
                response.insert_header((header::RETRY_AFTER, "5"));
                serde_json::json!({
                    "error": "temporarily_unavailable",
                    "error_description": "The token cannot be validated right now."
                })
            }
        };
        response.json(body)
    }
}

/// Scope tokens never hold `"` or `\` (RFC 6749 §3.3), but configuration might.
fn quoted_safe(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn a_bearer_token_is_read_whatever_the_case_of_the_scheme() {
        assert_eq!(
            parse_authorization("Bearer abc.def-_~+/=="),
            Ok("abc.def-_~+/==")
        );
        assert_eq!(parse_authorization("bearer abc"), Ok("abc"));
        assert_eq!(parse_authorization("BEARER   abc"), Ok("abc"));
        assert_eq!(parse_authorization("  Bearer abc  "), Ok("abc"));
    }

    #[test]
    fn other_schemes_count_as_no_bearer_token() {
        assert_eq!(
            parse_authorization("Basic dXNlcjpwYXNz"),
            Err(BearerError::Missing)
        );
        assert_eq!(parse_authorization(""), Err(BearerError::Missing));
        assert_eq!(parse_authorization("Token"), Err(BearerError::Missing));
        assert_eq!(parse_authorization("Bearerabc"), Err(BearerError::Missing));
    }

    #[test]
    fn a_bearer_header_without_a_proper_b64token_is_malformed() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer a=b",
            "Bearer \"abc\"",
            "Bearer abc\u{e9}",
        ] {
            assert_eq!(
                parse_authorization(value),
                Err(BearerError::Malformed),
                "{value:?}"
            );
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(parse_authorization(&huge), Err(BearerError::Malformed));
    }

    #[test]
    fn headers_missing_repeated_or_not_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(extract(&headers), Err(BearerError::Missing));

        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(extract(&headers), Ok("abc"));

        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer def"),
        );
        assert_eq!(extract(&headers), Err(BearerError::Malformed));

        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer ab\xffc").unwrap(),
        );
        assert_eq!(extract(&headers), Err(BearerError::Malformed));
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            Refusal::NoToken.challenge().unwrap(),
            "Bearer realm=\"example\""
        );
        assert_eq!(
            Refusal::InvalidToken.challenge().unwrap(),
            "Bearer realm=\"example\", error=\"invalid_token\""
        );
        assert_eq!(
            Refusal::InsufficientScope("read_user api".into())
                .challenge()
                .unwrap(),
            "Bearer realm=\"example\", error=\"insufficient_scope\", scope=\"read_user api\""
        );
        assert_eq!(Refusal::Unavailable.challenge(), None);
        assert_eq!(Refusal::from(BearerError::Missing), Refusal::NoToken);
        assert_eq!(Refusal::from(BearerError::Malformed), Refusal::InvalidToken);
    }

    #[test]
    fn statuses() {
        assert_eq!(Refusal::NoToken.status(), 401);
        assert_eq!(Refusal::InvalidToken.status(), 401);
        assert_eq!(Refusal::InsufficientScope(String::new()).status(), 403);
        assert_eq!(Refusal::Unavailable.status(), 503);
    }
}
