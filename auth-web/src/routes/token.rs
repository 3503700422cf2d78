//! `POST /oauth/token` (RFC 6749 §3.2): parse the body, authenticate the client at the HTTP
//! layer, make one gRPC call, render the token response or the §5.2 error.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use doorward_proto::v1 as pb;

use crate::back_channel::{back_channel_answer, back_channel_params};
use crate::client_auth;
use crate::error::{OAuthError, no_store};
use crate::state::WebState;

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    // The grant type the client asked for, once the body is read (for the metrics).
    let mut grant_type = None;
    let result = exchange(&req, payload, &state, &mut grant_type).await;
    crate::metrics::token_response(
        grant_type.as_deref(),
        result.as_ref().map(|_| ()).map_err(|err| err.code),
    );
    match result {
        Ok(tokens) => {
            let mut builder = HttpResponse::Ok();
            no_store(&mut builder);
            builder
                .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
                .json(token_json(tokens))
        }
        Err(err) => err.response(),
    }
}

async fn exchange(
    req: &HttpRequest,
    payload: web::Payload,
    state: &WebState,
    grant_type: &mut Option<String>,
) -> Result<pb::TokenSet, OAuthError> {
    let params = back_channel_params(req, payload).await?;
    *grant_type = params.owned("grant_type");
    let credentials = client_auth::extract(req, &params)?;
    let request = pb::ExchangeRequest {
        grant_type: grant_type.clone().unwrap_or_default(),
        client: credentials.client,
        scope: params.owned("scope"),
        code: params.owned("code"),
        redirect_uri: params.owned("redirect_uri"),
        code_verifier: params.owned("code_verifier"),
        refresh_token: params.owned("refresh_token"),
        username: params.owned("username"),
        password: params.owned("password"),
        device_code: params.owned("device_code"),
        nonce: params.owned("nonce"),
        context: Some(state.request_context(req)),
    };
    let response = state
        .upstream
        .tokens
        .clone()
        .exchange(request)
        .await
        .map_err(|status| OAuthError::from_status(&status))?
        .into_inner();
    let answer = response.result.map(|result| match result {
        pb::exchange_response::Result::Tokens(tokens) => Ok(tokens),
        pb::exchange_response::Result::Error(error) => Err(error),
    });
    back_channel_answer(answer, credentials.used_basic)
}

/// RFC 6749 §5.1 plus GitLab's `created_at`; absent optional members are omitted.
fn token_json(tokens: pb::TokenSet) -> serde_json::Value {
    let mut body = serde_json::json!({
        "access_token": tokens.access_token,
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in,
        "scope": tokens.scope,
        "created_at": tokens.created_at,
    });
    if let Some(refresh_token) = tokens.refresh_token {
        body["refresh_token"] = refresh_token.into();
    }
    if let Some(id_token) = tokens.id_token {
        body["id_token"] = id_token.into();
    }
    body
}
