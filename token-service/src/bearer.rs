//! Bearer-token checks for protected resources: signature and expiry in memory, then one
//! query for revocation, the client and the user.

use doorward_proto::v1 as pb;
use doorward_shared::ScopeSet;

use crate::db;
use crate::error::ServiceError;
use crate::issuance::subject;
use crate::keys::JwtRejection;
use crate::state::AppState;

use pb::BearerErrorKind as Kind;

fn refuse(kind: Kind, required_scope: String) -> pb::authenticate_bearer_response::Result {
    pb::authenticate_bearer_response::Result::Error(pb::BearerError {
        kind: kind as i32,
        required_scope,
    })
}

/// Authenticates `request.access_token` for a resource needing one of `any_of_scopes`.
pub async fn authenticate(
    state: &AppState,
    request: pb::AuthenticateBearerRequest,
) -> Result<pb::authenticate_bearer_response::Result, ServiceError> {
    let now = state.now();
    let claims = match state.keys.verify_access_token(&request.access_token, now) {
        Ok(claims) => claims,
        Err(JwtRejection::Expired) => return Ok(refuse(Kind::Expired, String::new())),
        Err(JwtRejection::Invalid) => return Ok(refuse(Kind::Invalid, String::new())),
    };
    let jti = claims.jti.clone();
    let Some((row, client_uid, user)) = state
        .db(move |conn| Ok::<_, ServiceError>(db::tokens::find_with_owner(conn, &jti)?))
        .await?
    else {
        return Ok(refuse(Kind::Invalid, String::new()));
    };
    if row.revoked_at.is_some() {
        return Ok(refuse(Kind::Revoked, String::new()));
    }
    if row.expires_at <= now {
        return Ok(refuse(Kind::Expired, String::new()));
    }
    if request.require_user && user.as_ref().is_none_or(|u| !u.is_active()) {
        return Ok(refuse(Kind::NoResourceOwner, String::new()));
    }
    let scopes = ScopeSet::parse(&row.scopes).unwrap_or_default();
    if !request.any_of_scopes.is_empty()
        && !request
            .any_of_scopes
            .iter()
            .any(|s| scopes.contains_name(s))
    {
        return Ok(refuse(
            Kind::InsufficientScope,
            request.any_of_scopes.join(" "),
        ));
    }
    Ok(pb::authenticate_bearer_response::Result::Grant(
        pb::BearerGrant {
            token: Some(pb::TokenClaims {
                jti: row.jti.clone(),
                subject: subject(row.user_id, &client_uid),
                client_id: client_uid,
                scopes: scopes.names(),
                issued_at: row.created_at,
                expires_at: row.expires_at,
                user_id: row.user_id,
            }),
            user: user.as_ref().map(crate::grpc::convert::user),
        },
    ))
}
