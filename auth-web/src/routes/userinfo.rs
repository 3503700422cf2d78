//! `GET|POST /oauth/userinfo` (OIDC Core §5.3): the claims of the token's user that its
//! scopes allow. Needs `openid` (403 `insufficient_scope` without it, as GitLab answers);
//! a bad, expired or revoked token gets 401 with a `WWW-Authenticate` challenge.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use doorward_proto::v1 as pb;
use serde_json::json;

use crate::error::{OAuthError, no_store};
use crate::params::{Params, read_body};
use crate::state::WebState;

fn invalid_token(description: &str) -> HttpResponse {
    OAuthError::with(doorward_shared::ErrorCode::InvalidToken, description)
        .status(StatusCode::UNAUTHORIZED)
        .response()
}

/// The token: the `Authorization: Bearer` header (preferred), or an `access_token` form or
/// query parameter (RFC 6750 §2.2, §2.3).
async fn presented(req: &HttpRequest, payload: web::Payload) -> Option<String> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if let Some(token) = Params::parse_query(req.query_string())
        .ok()?
        .owned("access_token")
    {
        return Some(token);
    }
    if req.method() == actix_web::http::Method::POST {
        let body = read_body(payload).await.ok()?;
        return Params::parse(req, &body).ok()?.owned("access_token");
    }
    None
}

/// `GET|POST /oauth/userinfo`.
pub async fn userinfo(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    let Some(token) = presented(&req, payload).await else {
        return invalid_token("The access token is invalid");
    };
    let response = state
        .upstream
        .tokens
        .clone()
        .authenticate_bearer(pb::AuthenticateBearerRequest {
            access_token: token,
            any_of_scopes: vec!["openid".into()],
            require_user: true,
        })
        .await;
    let result = match response {
        Ok(r) => r.into_inner().result,
        Err(status) => return OAuthError::from_status(&status).response(),
    };
    use pb::BearerErrorKind as Kind;
    match result {
        Some(pb::authenticate_bearer_response::Result::Grant(pb::BearerGrant {
            token: Some(token),
            user: Some(user),
        })) => {
            let mut claims = json!({
                "sub": user.id.to_string(),
                "name": user.name,
                "nickname": user.username,
                "preferred_username": user.username,
                "profile": format!("{}/{}", state.public_url(), user.username),
            });
            if token.scopes.iter().any(|s| s == "email") {
                claims["email"] = user.email.into();
                claims["email_verified"] = true.into();
            }
            let mut builder = HttpResponse::Ok();
            no_store(&mut builder);
            builder.json(claims)
        }
        Some(pb::authenticate_bearer_response::Result::Error(error)) => {
            match Kind::try_from(error.kind).unwrap_or(Kind::Invalid) {
                Kind::InsufficientScope => {
                    let mut builder = HttpResponse::Forbidden();
                    no_store(&mut builder);
                    builder.json(json!({
                        "error": "insufficient_scope",
                        "error_description": "Access to this resource requires scope \"openid\".",
                    }))
                }
                Kind::Expired => invalid_token("The access token expired"),
                Kind::Revoked => invalid_token("The access token was revoked"),
                _ => invalid_token("The access token is invalid"),
            }
        }
        _ => invalid_token("The access token is invalid"),
    }
}
