//! `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662) and
//! `GET /oauth/token/info` (GitLab's token metadata). token-service applies the caller rules;
//! this file speaks their HTTP.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;
use serde_json::json;

use crate::back_channel::back_channel_params;
use crate::client_auth;
use crate::error::{Challenge, OAuthError, no_store};
use crate::state::WebState;

fn json_no_store(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    no_store(&mut builder);
    builder
        .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
        .body(body.to_string())
}

fn bearer_of(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// `POST /oauth/revoke`: 200 `{}` whether or not the token existed (RFC 7009 §2.2).
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    let result = async {
        let params = back_channel_params(&req, payload).await?;
        let credentials = client_auth::extract(&req, &params)?;
        let token = params
            .owned("token")
            .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: token."))?;
        let response = state
            .upstream
            .tokens
            .clone()
            .revoke(pb::RevokeRequest {
                client: credentials.client,
                token,
                token_type_hint: params.owned("token_type_hint"),
                context: Some(state.request_context(&req)),
            })
            .await
            .map_err(|status| OAuthError::from_status(&status))?
            .into_inner();
        match response.result {
            Some(pb::revoke_response::Result::Revoked(_)) => Ok(()),
            Some(pb::revoke_response::Result::Error(error)) => {
                let mut err = OAuthError::from_proto(error);
                if err.code == ErrorCode::UnauthorizedClient {
                    // GitLab's answer to a revocation without client authentication.
                    err = err.status(StatusCode::FORBIDDEN);
                }
                if err.code == ErrorCode::InvalidClient && credentials.used_basic {
                    err = err.challenge(Challenge::Basic);
                }
                Err(err)
            }
            None => Err(OAuthError::from_status(&tonic::Status::internal(
                "empty response",
            ))),
        }
    }
    .await;
    match result {
        Ok(()) => json_no_store(StatusCode::OK, json!({})),
        Err(err) => err.response(),
    }
}

/// `POST /oauth/introspect`: the token's metadata for its own client, else
/// `{"active":false}`; the caller authenticates as a client or with a bearer token.
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    let result = async {
        let params = back_channel_params(&req, payload).await?;
        let caller_bearer = bearer_of(&req);
        let client = if caller_bearer.is_some() {
            None
        } else {
            client_auth::extract(&req, &params)?.client
        };
        let token = params
            .owned("token")
            .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: token."))?;
        let response = state
            .upstream
            .tokens
            .clone()
            .introspect(pb::IntrospectRequest {
                client,
                caller_bearer_token: caller_bearer,
                token,
                token_type_hint: params.owned("token_type_hint"),
                context: Some(state.request_context(&req)),
            })
            .await
            .map_err(|status| OAuthError::from_status(&status))?
            .into_inner();
        match response.result {
            Some(pb::introspect_response::Result::Introspection(i)) => Ok(i),
            Some(pb::introspect_response::Result::Error(error)) => {
                Err(OAuthError::from_proto(error))
            }
            None => Err(OAuthError::from_status(&tonic::Status::internal(
                "empty response",
            ))),
        }
    }
    .await;
    match result {
        Ok(i) if !i.active => json_no_store(StatusCode::OK, json!({"active": false})),
        Ok(i) => {
            let mut body = json!({
                "active": true,
                "scope": i.scope,
                "client_id": i.client_id,
                "token_type": i.token_type,
                "exp": i.exp,
                "iat": i.iat,
                "sub": i.sub,
                "aud": i.aud,
                "iss": i.iss,
                "jti": i.jti,
            });
            if !i.username.is_empty() {
                body["username"] = i.username.into();
            }
            json_no_store(StatusCode::OK, body)
        }
        Err(err) => err.response(),
    }
}

/// `GET /oauth/token/info`: GitLab's metadata of the presented token (header or
/// `?access_token=`), 401 `invalid_token` when it is not valid.
pub async fn token_info(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    let query = crate::params::Params::parse_query(req.query_string()).unwrap_or_default();
    let token = bearer_of(&req).or_else(|| query.owned("access_token"));
    let invalid = |description: &str| {
        OAuthError::with(ErrorCode::InvalidToken, description)
            .status(StatusCode::UNAUTHORIZED)
            .response()
    };
    let Some(token) = token else {
        return invalid("The access token is invalid");
    };
    let response = state
        .upstream
        .tokens
        .clone()
        .authenticate_bearer(pb::AuthenticateBearerRequest {
            access_token: token,
            any_of_scopes: Vec::new(),
            require_user: false,
        })
        .await;
    let result = match response {
        Ok(r) => r.into_inner().result,
        Err(status) => return OAuthError::from_status(&status).response(),
    };
    match result {
        Some(pb::authenticate_bearer_response::Result::Grant(grant)) => {
            let Some(token) = grant.token else {
                return invalid("The access token is invalid");
            };
            let expires_in = (token.expires_at - state.now()).max(0);
            json_no_store(
                StatusCode::OK,
                json!({
                    "resource_owner_id": token.user_id,
                    "scope": token.scopes,
                    "expires_in": expires_in,
                    "application": {"uid": token.client_id},
                    "created_at": token.issued_at,
                    "scopes": token.scopes,
                    "expires_in_seconds": expires_in,
                }),
            )
        }
        Some(pb::authenticate_bearer_response::Result::Error(error)) => {
            use pb::BearerErrorKind as Kind;
            match Kind::try_from(error.kind).unwrap_or(Kind::Invalid) {
                Kind::Expired => invalid("The access token expired"),
                Kind::Revoked => invalid("The access token was revoked"),
                _ => invalid("The access token is invalid"),
            }
        }
        None => invalid("The access token is invalid"),
    }
}
