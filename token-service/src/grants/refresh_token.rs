//! `grant_type=refresh_token` (RFC 6749 §6) with rotation, reuse detection and a grace
//! window (DESIGN.md "Protocol rules"; SEC-RT-01..06).
//!
//! - Each refresh token works once. It is claimed with one conditional update in the same
//!   transaction that mints its successor, so concurrent uses never fork the family.
//! - The successor's value is derived from the presented token with a server key
//!   (HMAC-SHA-256), so that only its hash is stored and yet a retry of the just-rotated
//!   token within the grace window (two processes of one client refreshing at once) gets
//!   the very same successor pair: one live branch, and both processes keep working.
//! - Presenting a rotated token outside that rule (after the window, or after its successor
//!   was itself used, or an older generation) revokes the whole family.

use doorward_proto::v1 as pb;
use doorward_shared::secret::base64url;
use doorward_shared::{ErrorCode, ScopeSet, Secret};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clients;
use crate::db::models::AccessTokenRow;
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, ServiceError};
use crate::issuance::{self, RefreshPlan};
use crate::state::AppState;

/// The successor of refresh token `presented`: HMAC-SHA-256 under the server's derivation
/// key. Deterministic, so a retry within the grace window yields the same value.
pub fn derive_successor_refresh_token(key: &[u8], presented: &str) -> Secret {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(b"doorward refresh successor v1\0");
    mac.update(presented.as_bytes());
    Secret::new(base64url(&mac.finalize().into_bytes()))
}

pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let now = state.now();
    let app = clients::authenticate_async(state, request.client.as_ref(), now).await?;
    super::require_grant(&app, "refresh_token")?;
    let presented = request
        .refresh_token
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| OAuthFailure::missing("refresh_token"))?;
    let requested_scope = request.scope;
    let state2 = state.clone();
    // The closure's Ok carries refusals too: a reuse refusal must commit the family
    // revocation it made.
    let outcome = state
        .write(move |conn| {
            rotate(
                &state2,
                conn,
                &app,
                &presented,
                requested_scope.as_deref(),
                now,
            )
        })
        .await?;
    Ok(outcome?.sign(state)?)
}

fn rotate(
    state: &AppState,
    conn: &mut DbConnection,
    app: &crate::db::models::ApplicationRow,
    presented: &Secret,
    requested_scope: Option<&str>,
    now: i64,
) -> Result<Result<issuance::Unsigned, OAuthFailure>, ServiceError> {
    let tokens = &state.config.tokens;
    let Some(found) = db::tokens::find_by_refresh_hash(conn, &presented.sha256())? else {
        return Ok(Err(super::invalid_grant()));
    };
    // Everything below runs with the family locked, on a fresh read of the row.
    if let Some(family_id) = &found.family_id {
        db::tokens::lock_family(conn, family_id)?;
    }
    let Some(mut row) = db::tokens::find(conn, &found.jti)? else {
        return Ok(Err(super::invalid_grant()));
    };
    // RFC 6749 §6 / SEC-RT-05: bound to the client it was issued to.
    if row.application_id != app.id || row.revoked_at.is_some() {
        return Ok(Err(super::invalid_grant()));
    }
    let (Some(family_id), Some(family_created_at)) = (row.family_id.clone(), row.family_created_at)
    else {
        return Ok(Err(super::invalid_grant()));
    };
    // SEC-TK-09: the user must still be active.
    let user = match row.user_id {
        Some(id) => match db::users::find(conn, id)? {
            Some(user) if user.is_active() => Some(user),
            _ => return Ok(Err(super::invalid_grant())),
        },
        None => None,
    };
    // SEC-RT-06: the family's absolute age, which rotation does not extend.
    if now - family_created_at >= tokens.refresh_max_age_seconds {
        return Ok(Err(OAuthFailure::with(
            ErrorCode::InvalidGrant,
            "The refresh token has expired.",
        )));
    }

    if row.refresh_rotated_at.is_none() {
        // SEC-RT-06: idle expiry of an unused refresh token.
        if now - row.created_at >= tokens.refresh_idle_ttl_seconds {
            return Ok(Err(OAuthFailure::with(
                ErrorCode::InvalidGrant,
                "The refresh token has expired.",
            )));
        }
        // RFC 6749 §6: the refresh token's own scope bounds the request, and passes on
        // unchanged to the successor even when this access token is narrower.
        let refresh_scopes = row
            .refresh_scopes
            .clone()
            .unwrap_or_else(|| row.scopes.clone());
        let granted = ScopeSet::parse(&refresh_scopes).unwrap_or_default();
        let scopes = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => granted,
            // Narrowing is allowed, widening is not (RFC 6749 §6).
            Some(value) => match ScopeSet::parse(value) {
                Ok(requested) if !requested.is_empty() && requested.is_subset_of(&granted) => {
                    requested
                }
                Ok(_) => return Ok(Err(OAuthFailure::new(ErrorCode::InvalidScope))),
                Err(e) => return Ok(Err(super::scope_failure(e))),
            },
        };
        let successor_jti = doorward_shared::secret::random_id();
        if db::tokens::claim_refresh(conn, &row.jti, &successor_jti, now)? {
            let refresh_token =
                derive_successor_refresh_token(&state.refresh_derivation_key, presented.expose());
            // The successor descends from the same code, if any (RFC 6749 §4.1.2 replay).
            let issue = issuance::Issue {
                app,
                user: user.as_ref(),
                scopes: &scopes,
                grant_id: row.grant_id,
                // OpenID Connect Core §12.2: no nonce on refresh; the user's last sign-in.
                nonce: None,
                auth_time: user.as_ref().and_then(|u| u.current_sign_in_at),
            };
            let unsigned = issuance::mint(
                state,
                conn,
                &issue,
                RefreshPlan::Successor {
                    family_id,
                    family_created_at,
                    refresh_token,
                    jti: successor_jti,
                    refresh_scopes,
                },
                now,
            )?;
            return Ok(Ok(unsigned));
        }
        // Another transaction rotated it between our read and our claim (PostgreSQL):
        // read what it did and continue as a retry.
        match db::tokens::find(conn, &row.jti)? {
            // Revoked meanwhile (not rotated): nothing was reused.
            Some(current) if current.revoked_at.is_some() => {
                return Ok(Err(super::invalid_grant()));
            }
            Some(current) => row = current,
            None => return Ok(Err(super::invalid_grant())),
        }
    }

    if let Some(again) = grace_retry(state, conn, app, &row, presented, now)? {
        return Ok(Ok(again));
    }
    // SEC-RT-02: reuse of a rotated token revokes the family.
    let revoked = db::tokens::revoke_family(conn, &family_id, now)?;
    tracing::warn!(
        target: "audit",
        event = "refresh_token_reuse",
        family_id = %family_id,
        client_id = %app.uid,
        revoked_rows = revoked,
        "a rotated refresh token was presented again; its family is revoked"
    );
    Ok(Err(super::invalid_grant()))
}

/// SEC-RT-03: within the grace window, a retry of the token that was just rotated gets its
/// successor again, as long as that successor is still live and unused.
fn grace_retry(
    state: &AppState,
    conn: &mut DbConnection,
    app: &crate::db::models::ApplicationRow,
    row: &AccessTokenRow,
    presented: &Secret,
    now: i64,
) -> Result<Option<issuance::Unsigned>, ServiceError> {
    let Some(rotated_at) = row.refresh_rotated_at else {
        return Ok(None);
    };
    if now - rotated_at > state.config.tokens.refresh_grace_seconds {
        return Ok(None);
    }
    let Some(successor_jti) = row.successor_jti.as_deref() else {
        return Ok(None);
    };
    let Some(successor) = db::tokens::find(conn, successor_jti)? else {
        return Ok(None);
    };
    if successor.revoked_at.is_some() || successor.refresh_rotated_at.is_some() {
        return Ok(None);
    }
    let refresh_token =
        derive_successor_refresh_token(&state.refresh_derivation_key, presented.expose());
    let user = match successor.user_id {
        Some(id) => db::users::find(conn, id)?,
        None => None,
    };
    Ok(Some(issuance::Unsigned::stored(
        successor,
        &app.uid,
        refresh_token,
        user,
        now,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_deterministic_per_key_and_token() {
        let a = derive_successor_refresh_token(b"key-1", "r1");
        assert_eq!(a, derive_successor_refresh_token(b"key-1", "r1"));
        assert_ne!(a, derive_successor_refresh_token(b"key-2", "r1"));
        assert_ne!(a, derive_successor_refresh_token(b"key-1", "r2"));
        assert_eq!(a.expose().len(), 43);
    }
}
