//! What the back-channel endpoints (`/oauth/token`, `/oauth/revoke`, `/oauth/introspect`,
//! `/oauth/authorize_device`) share: reading their POST, and turning a gRPC answer into the
//! value or the RFC 6749 §5.2 error.

use actix_web::{HttpRequest, web};
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;

use crate::client_auth;
use crate::error::{Challenge, OAuthError};
use crate::params::{Params, read_body};

/// The answer of a back-channel RPC: its value, or its OAuth error (with the Basic challenge
/// of RFC 6749 §5.2 when the client authenticated with Basic); an empty answer is a 500.
pub fn back_channel_answer<T>(
    answer: Option<Result<T, pb::OAuthError>>,
    used_basic: bool,
) -> Result<T, OAuthError> {
    match answer {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => {
            let mut err = OAuthError::from_proto(error);
            if err.code == ErrorCode::InvalidClient && used_basic {
                err = err.challenge(Challenge::Basic);
            }
            Err(err)
        }
        None => Err(OAuthError::from_status(&tonic::Status::internal(
            "empty response",
        ))),
    }
}

/// The parameters of a back-channel POST (`/oauth/token`, `/oauth/revoke`,
/// `/oauth/introspect`): no secrets in the URL, a capped body, every parameter once.
pub async fn back_channel_params(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Params, OAuthError> {
    client_auth::refuse_secrets_in_query(req)?;
    let body = read_body(payload).await?;
    Params::parse(req, &body)
}
