//! Published metadata: the signing keys (`/oauth/discovery/keys`, RFC 7517), the
//! authorization server's metadata (`/.well-known/oauth-authorization-server`, RFC 8414,
//! and `/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §3: one document
//! served at both, as GitLab does), built from the running configuration, and WebFinger
//! issuer discovery (`/.well-known/webfinger`, RFC 7033 and OpenID Connect Discovery §2).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use doorward_proto::v1 as pb;
use doorward_shared::GrantType;
use doorward_shared::scope::KNOWN_SCOPES;
use serde_json::json;

use crate::error::OAuthError;
use crate::state::WebState;

/// How long clients may cache the key set: short, so that a rotated key is seen soon.
const JWKS_MAX_AGE: u32 = 300;

/// `GET /oauth/discovery/keys`: every published key; `kid` is the RFC 7638 thumbprint.
pub async fn jwks(state: web::Data<WebState>) -> HttpResponse {
    match state.upstream.tokens.clone().get_jwks(pb::Empty {}).await {
        Ok(response) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
            .insert_header((
                header::CACHE_CONTROL,
                format!("public, max-age={JWKS_MAX_AGE}"),
            ))
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .body(response.into_inner().json),
        Err(status) => OAuthError::from_status(&status).response(),
    }
}

/// The id_token and userinfo claims Doorward returns (reference §4.3, as far as Doorward
/// has the data).
const CLAIMS_SUPPORTED: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "name",
    "nickname",
    "preferred_username",
    "email",
    "email_verified",
    "profile",
];

/// How long clients may cache the metadata documents.
const METADATA_MAX_AGE: u32 = 3600;

/// The metadata document of this server: RFC 8414 and OpenID Connect Discovery 1.0 §3.
pub fn authorization_server_metadata(state: &WebState) -> serde_json::Value {
    let issuer = state.config.issuer();
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/oauth/discovery/keys"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "scopes_supported": KNOWN_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        // RFC 8414: the values of the grant_type parameter, so the device grant's URN
        // (GitLab lists a short `device_code`, which no client can send).
        "grant_types_supported": GrantType::ALL.map(GrantType::wire_name),
        "device_authorization_endpoint": format!("{issuer}/oauth/authorize_device"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256", "plain"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claim_types_supported": ["normal"],
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": ["none", "login", "consent"],
    })
}

/// `GET /.well-known/oauth-authorization-server` and `GET /.well-known/openid-configuration`.
pub async fn oauth_metadata(state: web::Data<WebState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={METADATA_MAX_AGE}"),
        ))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(authorization_server_metadata(&state))
}

/// The WebFinger relation of an OpenID Connect issuer (Discovery 1.0 §2).
const ISSUER_REL: &str = "http://openid.net/specs/connect/1.0/issuer";

/// `GET /.well-known/webfinger?resource=...[&rel=...]`: every resource points at this
/// issuer (the answer does not depend on whether an account exists, so it reveals none).
/// A missing or empty `resource` is a 400 (RFC 7033 §4.2); `rel` filters the links.
pub async fn webfinger(
    state: web::Data<WebState>,
    request: actix_web::HttpRequest,
) -> HttpResponse {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    let resources: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str())
        .collect();
    let [resource] = resources.as_slice() else {
        return webfinger_error("The resource parameter is required, once.");
    };
    if resource.is_empty() || resource.len() > 2048 {
        return webfinger_error("The resource parameter is required, once.");
    }
    let rels: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "rel")
        .map(|(_, v)| v.as_str())
        .collect();
    let links = if rels.is_empty() || rels.contains(&ISSUER_REL) {
        json!([{ "rel": ISSUER_REL, "href": state.config.issuer() }])
    } else {
        json!([])
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/jrd+json"))
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={METADATA_MAX_AGE}"),
        ))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(json!({ "subject": resource, "links": links }).to_string())
}

fn webfinger_error(description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(json!({ "error": "invalid_request", "error_description": description }))
}
