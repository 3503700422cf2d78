//! Published metadata: the signing keys (`/oauth/discovery/keys`, RFC 7517) and the
//! authorization server's metadata (`/.well-known/oauth-authorization-server`, RFC 8414),
//! built from the running configuration. The OpenID Connect document joins them when
//! id_tokens are issued.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use doorward_proto::v1 as pb;
use doorward_shared::scope::KNOWN_SCOPES;
use serde_json::json;

use crate::error::OAuthError;
use crate::startup::WebState;

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

/// The RFC 8414 document for this server.
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
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256", "plain"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn oauth_metadata(state: web::Data<WebState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(authorization_server_metadata(&state))
}
