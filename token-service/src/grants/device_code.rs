//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4-3.5): the
//! device polls until the user decides. Every poll is one write transaction that records
//! it; the answers follow the RFC's state machine (SEC-DV-04): `authorization_pending`
//! while the user has not decided, `slow_down` (and 5 more seconds of interval from then on)
//! for a poll sooner than the interval, `access_denied`, `expired_token`, and the token
//! response exactly once: the approved authorization is claimed with one conditional
//! update, so concurrent polls cannot both win (SEC-DV-03). Another client's device code is
//! `invalid_grant`, as is an unknown or spent one.

use doorward_shared::{ErrorCode, Secret};

use crate::db::device_grants::{self, DeviceStatus};
use crate::db::models::{ApplicationRow, DeviceGrantRow};
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, Outcome, ServiceError};
use crate::issuance::{self, TokenResponse, Unsigned};
use crate::state::AppState;

use super::granting::Granting;
use super::rules::{self, invalid_grant};

/// RFC 8628 §3.5: each `slow_down` adds this to the interval.
pub const SLOW_DOWN_STEP_SECONDS: i64 = 5;

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` and its parameter.
#[derive(Debug)]
pub struct DeviceCodeGrant {
    /// `device_code`.
    pub device_code: Secret,
}

impl DeviceCodeGrant {
    /// One poll: one batched write transaction that records it and answers by the state
    /// machine (every refusal commits the poll it recorded, `Outcome`).
    pub async fn apply(self, granting: Granting<'_>) -> Result<TokenResponse, GrantError> {
        let Granting { state, app, .. } = granting;
        let state2 = state.clone();
        let outcome = state
            .write(move |conn| poll(&state2, conn, &app, &self.device_code))
            .await?;
        Ok(outcome.into_result()?.sign(state)?)
    }
}

/// Records a poll of `device_code` by `app` and decides it.
fn poll(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    device_code: &Secret,
) -> Result<Outcome<Unsigned>, ServiceError> {
    let now = state.now();
    let found = device_grants::find_by_device_code_hash(conn, &device_code.sha256())?;
    let Some(grant) = found.filter(|g| g.application_id == app.id) else {
        return Ok(Outcome::Refused(invalid_grant()));
    };
    if let Some(refusal) = undecided(conn, &grant, now)? {
        return Ok(Outcome::Refused(refusal));
    }
    // Approved: exactly one poll gets the tokens.
    if !device_grants::claim(conn, grant.id, now)? {
        return Ok(Outcome::Refused(invalid_grant()));
    }
    mint_approved(state, conn, app, &grant, now)
}

/// The refusal of a poll while the authorization is not (or no longer) approved, recording
/// the poll of a pending one; `None` when it is approved.
fn undecided(
    conn: &mut DbConnection,
    grant: &DeviceGrantRow,
    now: i64,
) -> Result<Option<OAuthFailure>, ServiceError> {
    let refusal = match grant.status {
        DeviceStatus::Used => invalid_grant(),
        _ if grant.expires_at <= now => OAuthFailure::with(
            ErrorCode::ExpiredToken,
            "The device code has expired. Start a new device authorization.",
        ),
        DeviceStatus::Denied => OAuthFailure::with(
            ErrorCode::AccessDenied,
            "The user denied the authorization request.",
        ),
        DeviceStatus::Pending => pending(conn, grant, now)?,
        DeviceStatus::Approved => return Ok(None),
    };
    Ok(Some(refusal))
}

/// A poll of a pending authorization: `slow_down` (5 more seconds of interval from then
/// on) when it comes sooner than the interval, else `authorization_pending`.
fn pending(
    conn: &mut DbConnection,
    grant: &DeviceGrantRow,
    now: i64,
) -> Result<OAuthFailure, ServiceError> {
    let too_soon = grant
        .last_polled_at
        .is_some_and(|at| now - at < grant.polling_interval);
    if too_soon {
        let interval = grant.polling_interval + SLOW_DOWN_STEP_SECONDS;
        device_grants::polled(conn, grant.id, interval, now)?;
        return Ok(OAuthFailure::with(
            ErrorCode::SlowDown,
            format!("Poll at most every {interval} seconds."),
        ));
    }
    device_grants::polled(conn, grant.id, grant.polling_interval, now)?;
    Ok(OAuthFailure::with(
        ErrorCode::AuthorizationPending,
        "The user has not decided yet.",
    ))
}

/// Stores the tokens of a claimed approval, if its user is still active (SEC-TK-09).
fn mint_approved(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    grant: &DeviceGrantRow,
    now: i64,
) -> Result<Outcome<Unsigned>, ServiceError> {
    let user = match grant.user_id {
        Some(id) => db::users::find(conn, id)?.filter(|u| u.is_active()),
        None => None,
    };
    let Some(user) = user else {
        return Ok(Outcome::Refused(invalid_grant()));
    };
    let scopes = rules::stored_scopes(&grant.scopes, "device_grants", grant.id, "scopes")?;
    let issue = issuance::Issue {
        app,
        user: Some(&user),
        scopes: &scopes,
        grant_id: None,
        nonce: None,
        auth_time: user.current_sign_in_at,
    };
    let unsigned = issuance::mint(state, conn, &issue, rules::refresh_plan_for(app), now)?;
    Ok(Outcome::Done(unsigned))
}
