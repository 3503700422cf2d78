//! Bearer-token checks for protected resources (`/api/v4/user`, userinfo, token info):
//! signature, expiry, revocation and the user, through the validation cache.

use doorward_proto::v1 as pb;

use crate::error::ServiceError;
use crate::state::AppState;
use crate::validation::{self, reason};

use pb::BearerErrorKind as Kind;

fn refuse(kind: Kind, required_scope: String) -> pb::authenticate_bearer_response::Result {
    pb::authenticate_bearer_response::Result::Error(pb::BearerError {
        kind: kind as i32,
        required_scope,
    })
}

/// Authenticates `request.access_token` for a resource needing one of `any_of_scopes`.
///
/// The token is checked as `TokenValidation.Validate` checks it (`validation::check`): a
/// token checked within `tokens.validation_cache_seconds` costs a hash and a lookup.
pub async fn authenticate(
    state: &AppState,
    request: pb::AuthenticateBearerRequest,
) -> Result<pb::authenticate_bearer_response::Result, ServiceError> {
    let valid = match validation::check(state, &request.access_token).await? {
        Ok(valid) => valid,
        Err(reason::EXPIRED) => return Ok(refuse(Kind::Expired, String::new())),
        Err(reason::REVOKED) => return Ok(refuse(Kind::Revoked, String::new())),
        Err(_) => return Ok(refuse(Kind::Invalid, String::new())),
    };
    if request.require_user && (valid.user.is_none() || !valid.user_active) {
        return Ok(refuse(Kind::NoResourceOwner, String::new()));
    }
    if !request.any_of_scopes.is_empty()
        && !request
            .any_of_scopes
            .iter()
            .any(|s| valid.scopes.contains(s))
    {
        return Ok(refuse(
            Kind::InsufficientScope,
            request.any_of_scopes.join(" "),
        ));
    }
    Ok(pb::authenticate_bearer_response::Result::Grant(
        pb::BearerGrant {
            token: Some(pb::TokenClaims {
                jti: valid.jti.clone(),
                subject: valid.subject.clone(),
                client_id: valid.client_id.clone(),
                scopes: valid.scopes.clone(),
                issued_at: valid.issued_at,
                expires_at: valid.expires_at,
                user_id: valid.user_id,
            }),
            user: valid.user.clone(),
        },
    ))
}
