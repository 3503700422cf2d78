//! Client authentication at the HTTP layer (RFC 6749 §2.3.1): HTTP Basic, whose halves are
//! form-urlencoded (some clients send `-` as `%2D`), or `client_id`/`client_secret` in the
//! body. Using both, or naming two different clients, is `invalid_request` (SEC-TK-01);
//! secrets in the query string are refused.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;

use crate::error::{Challenge, OAuthError};
use crate::params::Params;

/// Parameters that must never travel in a URL (RFC 6749 §2.3.1, RFC 9700 §4.3).
const NEVER_IN_QUERY: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "code",
    "code_verifier",
    "device_code",
];

/// The client credentials of a request, and whether Basic was used (for the challenge).
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// What token-service needs.
    pub client: Option<pb::ClientAuthentication>,
    /// Whether the client used HTTP Basic.
    pub used_basic: bool,
}

fn form_decode(part: &str) -> Option<String> {
    let plus_as_space = part.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn bad_basic() -> OAuthError {
    OAuthError::with(
        ErrorCode::InvalidClient,
        "The Authorization header is not valid HTTP Basic credentials.",
    )
    .challenge(Challenge::Basic)
}

/// Refuses credentials in the query string.
pub fn refuse_secrets_in_query(req: &HttpRequest) -> Result<(), OAuthError> {
    if req.query_string().is_empty() {
        return Ok(());
    }
    let query = Params::parse_query(req.query_string())?;
    if let Some(name) = NEVER_IN_QUERY.iter().find(|name| query.contains(name)) {
        return Err(OAuthError::invalid_request(format!(
            "The parameter {name} must be sent in the request body, not in the URL."
        )));
    }
    Ok(())
}

/// Reads the client credentials of a token-endpoint-style request.
pub fn extract(req: &HttpRequest, params: &Params) -> Result<ClientCredentials, OAuthError> {
    let body_id = params.owned("client_id");
    let body_secret = params.owned("client_secret");
    let Some(authorization) = req.headers().get(header::AUTHORIZATION) else {
        let method = if body_secret.is_some() {
            pb::ClientAuthMethod::ClientSecretPost
        } else {
            pb::ClientAuthMethod::None
        };
        return Ok(ClientCredentials {
            client: body_id.map(|client_id| pb::ClientAuthentication {
                client_id,
                client_secret: body_secret,
                method: method as i32,
            }),
            used_basic: false,
        });
    };
    let value = authorization.to_str().map_err(|_| bad_basic())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(bad_basic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::with(
            ErrorCode::InvalidClient,
            "Clients authenticate with HTTP Basic or with client_id and client_secret in the body.",
        )
        .challenge(Challenge::Basic));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad_basic())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad_basic())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad_basic)?;
    let id = form_decode(id).ok_or_else(bad_basic)?;
    let secret = form_decode(secret).ok_or_else(bad_basic)?;
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "The client authenticated with more than one method (HTTP Basic and client_secret).",
        ));
    }
    if body_id.as_ref().is_some_and(|body| *body != id) {
        return Err(OAuthError::invalid_request(
            "The client_id in the body does not match the one in the Authorization header.",
        ));
    }
    Ok(ClientCredentials {
        client: Some(pb::ClientAuthentication {
            client_id: id,
            client_secret: Some(secret),
            method: pb::ClientAuthMethod::ClientSecretBasic as i32,
        }),
        used_basic: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_halves_are_form_decoded() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, basic("my%2Did:s%2Dcret+x")))
            .to_http_request();
        let creds = extract(&req, &Params::default()).unwrap();
        let client = creds.client.unwrap();
        assert_eq!(client.client_id, "my-id");
        assert_eq!(client.client_secret.as_deref(), Some("s-cret x"));
        assert!(creds.used_basic);
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_a_basic_challenge() {
        for header_value in ["Basic !!!notbase64", &basic("no-colon"), "Basic"] {
            let req = TestRequest::default()
                .insert_header((header::AUTHORIZATION, header_value))
                .to_http_request();
            let err = extract(&req, &Params::default()).unwrap_err();
            assert_eq!(
                err.code,
                doorward_shared::ErrorCode::InvalidClient,
                "{header_value}"
            );
            assert_eq!(err.challenge, Challenge::Basic);
        }
    }
}
