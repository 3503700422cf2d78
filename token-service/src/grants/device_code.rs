//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4-3.5): the
//! device polls until the user decides. Every poll is one write transaction that records
//! it; the answers follow the RFC's state machine (SEC-DV-04): `authorization_pending`
//! while the user has not decided, `slow_down` (and 5 more seconds of interval from then on)
//! for a poll sooner than the interval, `access_denied`, `expired_token`, and the token
//! response exactly once: the approved authorization is claimed with one conditional
//! update, so concurrent polls cannot both win (SEC-DV-03). Another client's device code is
//! `invalid_grant`, as is an unknown or spent one.

use doorward_proto::v1 as pb;
use doorward_shared::{ErrorCode, ScopeSet, Secret};

use crate::clients;
use crate::db::{self, device_grants};
use crate::error::{GrantError, OAuthFailure};
use crate::issuance;
use crate::state::AppState;

/// RFC 8628 §3.5: each `slow_down` adds this to the interval.
pub const SLOW_DOWN_STEP_SECONDS: i64 = 5;

pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let state2 = state.clone();
    state
        .db(move |conn| {
            let now = state2.now();
            let app = clients::authenticate(&state2.clients, conn, request.client.as_ref(), now)?;
            super::require_grant(&app, doorward_shared::GrantType::DeviceCode)?;
            let device_code = request
                .device_code
                .filter(|c| !c.is_empty())
                .map(Secret::new)
                .ok_or_else(|| OAuthFailure::missing("device_code"))?;
            // Ok carries refusals too: the recorded poll and the claim must commit.
            let outcome = db::write_transaction(
                conn,
                |conn| -> Result<
                    Result<issuance::Unsigned, OAuthFailure>,
                    crate::error::ServiceError,
                > {
                    let Some(grant) =
                        device_grants::find_by_device_code_hash(conn, &device_code.sha256())?
                    else {
                        return Ok(Err(super::invalid_grant()));
                    };
                    if grant.application_id != app.id {
                        return Ok(Err(super::invalid_grant()));
                    }
                    if grant.status == device_grants::USED {
                        return Ok(Err(super::invalid_grant()));
                    }
                    if grant.expires_at <= now {
                        return Ok(Err(OAuthFailure::with(
                            ErrorCode::ExpiredToken,
                            "The device code has expired. Start a new device authorization.",
                        )));
                    }
                    if grant.status == device_grants::DENIED {
                        return Ok(Err(OAuthFailure::with(
                            ErrorCode::AccessDenied,
                            "The user denied the authorization request.",
                        )));
                    }
                    if grant.status == device_grants::PENDING {
                        let too_soon = grant
                            .last_polled_at
                            .is_some_and(|at| now - at < grant.polling_interval);
                        if too_soon {
                            let interval = grant.polling_interval + SLOW_DOWN_STEP_SECONDS;
                            device_grants::polled(conn, grant.id, interval, now)?;
                            return Ok(Err(OAuthFailure::with(
                                ErrorCode::SlowDown,
                                format!("Poll at most every {interval} seconds."),
                            )));
                        }
                        device_grants::polled(conn, grant.id, grant.polling_interval, now)?;
                        return Ok(Err(OAuthFailure::with(
                            ErrorCode::AuthorizationPending,
                            "The user has not decided yet.",
                        )));
                    }
                    // Approved: exactly one poll gets the tokens.
                    if !device_grants::claim(conn, grant.id, now)? {
                        return Ok(Err(super::invalid_grant()));
                    }
                    // SEC-TK-09: the user must still be active.
                    let user = match grant.user_id {
                        Some(id) => db::users::find(conn, id)?.filter(|u| u.is_active()),
                        None => None,
                    };
                    let Some(user) = user else {
                        return Ok(Err(super::invalid_grant()));
                    };
                    let scopes = ScopeSet::parse(&grant.scopes).unwrap_or_default();
                    let issue = issuance::Issue {
                        app: &app,
                        user: Some(&user),
                        scopes: &scopes,
                        grant_id: None,
                        nonce: None,
                        auth_time: user.current_sign_in_at,
                    };
                    Ok(Ok(issuance::mint(
                        &state2,
                        conn,
                        &issue,
                        super::refresh_plan_for(&app),
                        now,
                    )?))
                },
            )?;
            Ok(outcome?.sign(&state2)?)
        })
        .await
}
