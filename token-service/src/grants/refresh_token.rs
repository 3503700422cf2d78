//! `grant_type=refresh_token` (RFC 6749 §6) with rotation, reuse detection and a grace
//! window (SEC-RT-01..06 in `docs/security-model.md`; `docs/tokens-and-security.md`,
//! "Refresh tokens").
//!
//! - Each refresh token works once. It is claimed with one conditional update in the same
//!   transaction that mints its successor, so concurrent uses never fork the family.
//! - The successor's value is derived from the presented token with a server key
//!   (HMAC-SHA-256), so that only its hash is stored and yet a retry of the just-rotated
//!   token within the grace window (two processes of one client refreshing at once) gets
//!   the very same successor pair: one live branch, and both processes keep working.
//! - Presenting a rotated token outside that rule (after the window, or after its successor
//!   was itself used, or an older generation) revokes the whole family.

use doorward_shared::secret::base64url;
use doorward_shared::{ErrorCode, ScopeSet, Secret};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::db::models::{AccessTokenRow, ApplicationRow, UserRow};
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, Outcome, ServiceError};
use crate::issuance::{self, RefreshPlan, TokenResponse, Unsigned};
use crate::state::AppState;

use super::granting::Granting;
use super::rules::{self, invalid_grant};

/// `grant_type=refresh_token` and its parameters.
#[derive(Debug)]
pub struct RefreshTokenGrant {
    /// `refresh_token`.
    pub refresh_token: Secret,
    /// `scope`, as sent: at most the refresh token's own (RFC 6749 §6).
    pub scope: Option<String>,
}

/// The successor of refresh token `presented`: HMAC-SHA-256 under the server's derivation
/// key. Deterministic, so a retry within the grace window yields the same value.
pub fn derive_successor_refresh_token(key: &[u8], presented: &str) -> Secret {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(b"doorward refresh successor v1\0");
    mac.update(presented.as_bytes());
    Secret::new(base64url(&mac.finalize().into_bytes()))
}

impl RefreshTokenGrant {
    /// Rotates the refresh token: on SQLite its row is read beside the writer first
    /// (`AppState::read_before_write`), on PostgreSQL inside the write transaction.
    pub async fn apply(self, granting: Granting<'_>) -> Result<TokenResponse, GrantError> {
        let Granting { state, app, .. } = granting;
        let now = state.now();
        let Self {
            refresh_token: presented,
            scope,
        } = self;
        if !state.read_before_write {
            let state2 = state.clone();
            let outcome = state
                .write(move |conn| rotate(&state2, conn, &app, &presented, scope.as_deref(), now))
                .await?;
            return Ok(outcome.into_result()?.sign(state)?);
        }
        let read = read(state, &presented).await?;
        finish(state, app, presented, scope, read, now).await
    }
}

/// A refresh token's row and its user, as read before the writer.
type Read = Option<(AccessTokenRow, Option<UserRow>)>;

/// Reads the row of `presented` and its user on the pool, beside the writer: only the claim
/// and the insert take the writer's time (`db::writer` serialises every grant's writes).
async fn read(state: &AppState, presented: &Secret) -> Result<Read, ServiceError> {
    let hash = presented.sha256();
    state
        .db(move |conn| {
            db::tokens::find_by_refresh_hash_with_user(conn, &hash).map_err(ServiceError::from)
        })
        .await
}

/// Decides on what `read` found and rotates in the writer. What can change after the read
/// (the claim, a revocation, the user's state) is checked again there.
async fn finish(
    state: &AppState,
    app: ApplicationRow,
    presented: Secret,
    requested_scope: Option<String>,
    read: Read,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    // No row: nothing to claim or revoke.
    let Some((row, user)) = read else {
        return Err(invalid_grant().into());
    };
    let assessment = assess(
        state,
        &app,
        &row,
        user.as_ref(),
        requested_scope.as_deref(),
        now,
    )?;
    let rotation = match assessment.into_result()? {
        Assessment::Rotate(rotation) => Some(rotation),
        Assessment::Rotated => None,
    };
    let state2 = state.clone();
    // A reuse refusal commits the family revocation it made (`Outcome`).
    let outcome = state
        .write(move |conn| match rotation {
            Some(rotation) => rotate_as_read(
                &state2,
                conn,
                &app,
                &row,
                user.as_ref(),
                rotation,
                &presented,
                requested_scope.as_deref(),
                now,
            ),
            None => rotate(
                &state2,
                conn,
                &app,
                &presented,
                requested_scope.as_deref(),
                now,
            ),
        })
        .await?;
    Ok(outcome.into_result()?.sign(state)?)
}

/// What a refresh token's row allows.
enum Assessment {
    /// Unused: rotate it into a successor with these scopes.
    Rotate(Rotation),
    /// Already rotated: a retry within the grace window, or a reuse.
    Rotated,
}

struct Rotation {
    scopes: ScopeSet,
    refresh_scopes: String,
    family_id: String,
    family_created_at: i64,
}

/// The checks on a refresh token's row and user, in doorkeeper's order. Reads nothing and
/// writes nothing; a stored scope that does not parse is the service's failure.
fn assess(
    state: &AppState,
    app: &ApplicationRow,
    row: &AccessTokenRow,
    user: Option<&UserRow>,
    requested_scope: Option<&str>,
    now: i64,
) -> Result<Outcome<Assessment>, ServiceError> {
    let refused = |failure| Ok(Outcome::Refused(failure));
    let tokens = &state.config.tokens;
    // RFC 6749 §6 / SEC-RT-05: bound to the client it was issued to.
    if row.application_id != app.id || row.revoked_at.is_some() {
        return refused(invalid_grant());
    }
    let (Some(family_id), Some(family_created_at)) = (row.family_id.clone(), row.family_created_at)
    else {
        return refused(invalid_grant());
    };
    // SEC-TK-09: the user must still be active.
    if row.user_id.is_some() && !user.is_some_and(UserRow::is_active) {
        return refused(invalid_grant());
    }
    // SEC-RT-06: the family's absolute age, which rotation does not extend.
    if now - family_created_at >= tokens.refresh_max_age_seconds {
        return refused(expired());
    }
    if row.refresh_rotated_at.is_some() {
        return Ok(Outcome::Done(Assessment::Rotated));
    }
    // SEC-RT-06: idle expiry of an unused refresh token.
    if now - row.created_at >= tokens.refresh_idle_ttl_seconds {
        return refused(expired());
    }
    // RFC 6749 §6: the refresh token's own scope bounds the request, and passes on
    // unchanged to the successor even when this access token is narrower.
    let refresh_scopes = row
        .refresh_scopes
        .clone()
        .unwrap_or_else(|| row.scopes.clone());
    let granted =
        rules::stored_scopes(&refresh_scopes, "access_tokens", &row.jti, "refresh_scopes")?;
    let scopes = match narrowed(requested_scope, granted) {
        Ok(scopes) => scopes,
        Err(failure) => return refused(failure),
    };
    Ok(Outcome::Done(Assessment::Rotate(Rotation {
        scopes,
        refresh_scopes,
        family_id,
        family_created_at,
    })))
}

/// The scopes a refresh asks for: all of the refresh token's (`granted`) when it names
/// none; narrowing is allowed, widening is not (RFC 6749 §6).
fn narrowed(requested: Option<&str>, granted: ScopeSet) -> Result<ScopeSet, OAuthFailure> {
    let Some(value) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(granted);
    };
    match ScopeSet::parse(value) {
        Ok(requested) if !requested.is_empty() && requested.is_subset_of(&granted) => Ok(requested),
        Ok(_) => Err(OAuthFailure::new(ErrorCode::InvalidScope)),
        Err(e) => Err(rules::scope_failure(e)),
    }
}

fn expired() -> OAuthFailure {
    OAuthFailure::with(ErrorCode::InvalidGrant, "The refresh token has expired.")
}

/// The common case, on a row read before the writer: claims it and mints the successor.
/// If the user was blocked or the token claimed or revoked since that read, it starts over
/// on fresh reads (`rotate`).
#[allow(clippy::too_many_arguments)]
fn rotate_as_read(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    row: &AccessTokenRow,
    user: Option<&UserRow>,
    rotation: Rotation,
    presented: &Secret,
    requested_scope: Option<&str>,
    now: i64,
) -> Result<Outcome<Unsigned>, ServiceError> {
    db::tokens::lock_family(conn, &rotation.family_id)?;
    let still_active = match row.user_id {
        Some(id) => db::users::is_active(conn, id)?,
        None => true,
    };
    let successor_jti = doorward_shared::secret::time_ordered_id();
    if still_active && db::tokens::claim_refresh(conn, &row.jti, &successor_jti, now)? {
        return Ok(Outcome::Done(mint_successor(
            state,
            conn,
            app,
            row,
            user,
            rotation,
            successor_jti,
            presented,
            now,
        )?));
    }
    rotate(state, conn, app, presented, requested_scope, now)
}

/// The whole rotation on fresh reads, inside the writer's transaction: the path of a
/// rotated token (grace retry or reuse) and of a row that changed after it was read.
fn rotate(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    presented: &Secret,
    requested_scope: Option<&str>,
    now: i64,
) -> Result<Outcome<Unsigned>, ServiceError> {
    let Some(found) = db::tokens::find_by_refresh_hash(conn, &presented.sha256())? else {
        return Ok(Outcome::Refused(invalid_grant()));
    };
    // Everything below runs with the family locked, on a fresh read of the row.
    if let Some(family_id) = &found.family_id {
        db::tokens::lock_family(conn, family_id)?;
    }
    let Some(mut row) = db::tokens::find(conn, &found.jti)? else {
        return Ok(Outcome::Refused(invalid_grant()));
    };
    let user = match row.user_id {
        Some(id) => db::users::find(conn, id)?,
        None => None,
    };
    let assessment = match assess(state, app, &row, user.as_ref(), requested_scope, now)? {
        Outcome::Done(assessment) => assessment,
        Outcome::Refused(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    if let Assessment::Rotate(rotation) = assessment {
        let successor_jti = doorward_shared::secret::time_ordered_id();
        if db::tokens::claim_refresh(conn, &row.jti, &successor_jti, now)? {
            return Ok(Outcome::Done(mint_successor(
                state,
                conn,
                app,
                &row,
                user.as_ref(),
                rotation,
                successor_jti,
                presented,
                now,
            )?));
        }
        // Another transaction rotated it between our read and our claim (PostgreSQL):
        // read what it did and continue as a retry.
        match db::tokens::find(conn, &row.jti)? {
            // Revoked meanwhile (not rotated): nothing was reused.
            Some(current) if current.revoked_at.is_some() => {
                return Ok(Outcome::Refused(invalid_grant()));
            }
            Some(current) => row = current,
            None => return Ok(Outcome::Refused(invalid_grant())),
        }
    }
    let Some(family_id) = row.family_id.clone() else {
        return Ok(Outcome::Refused(invalid_grant()));
    };

    if let Some(again) = grace_retry(state, conn, app, &row, presented, now)? {
        return Ok(Outcome::Done(again));
    }
    // SEC-RT-02: reuse of a rotated token revokes the family.
    let revoked = db::tokens::revoke_family(conn, &state.token_changes, &family_id, now)?;
    crate::metrics::revoked(crate::metrics::RevokeCause::RefreshReuse, revoked);
    tracing::warn!(
        target: "audit",
        event = "refresh_token_reuse",
        family_id = %family_id,
        client_id = %app.uid,
        revoked_rows = revoked,
        "a rotated refresh token was presented again; its family is revoked"
    );
    Ok(Outcome::Refused(invalid_grant()))
}

/// Stores the successor of `row`, which this transaction has just claimed.
#[allow(clippy::too_many_arguments)]
fn mint_successor(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    row: &AccessTokenRow,
    user: Option<&UserRow>,
    rotation: Rotation,
    successor_jti: String,
    presented: &Secret,
    now: i64,
) -> Result<Unsigned, ServiceError> {
    let refresh_token =
        derive_successor_refresh_token(&state.refresh_derivation_key, presented.expose());
    // The successor descends from the same code, if any (RFC 6749 §4.1.2 replay).
    let issue = issuance::Issue {
        app,
        user,
        scopes: &rotation.scopes,
        grant_id: row.grant_id,
        // OpenID Connect Core §12.2: no nonce on refresh; the user's last sign-in.
        nonce: None,
        auth_time: user.and_then(|u| u.current_sign_in_at),
    };
    issuance::mint(
        state,
        conn,
        &issue,
        RefreshPlan::Successor {
            family_id: rotation.family_id,
            family_created_at: rotation.family_created_at,
            refresh_token,
            jti: successor_jti,
            refresh_scopes: rotation.refresh_scopes,
        },
        now,
    )
}

/// SEC-RT-03: within the grace window, a retry of the token that was just rotated gets its
/// successor again, as long as that successor is still live and unused.
fn grace_retry(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    row: &AccessTokenRow,
    presented: &Secret,
    now: i64,
) -> Result<Option<Unsigned>, ServiceError> {
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
    Ok(Some(Unsigned::stored(
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
    use crate::testing::Scratch;

    /// A user's token with a refresh token, stored; returns the refresh token.
    async fn refreshable(scratch: &Scratch) -> Secret {
        let (state, app, user) = (
            scratch.state.clone(),
            scratch.app.clone(),
            scratch.user.clone(),
        );
        let now = state.now();
        let st = state.clone();
        let unsigned = state
            .write(move |conn| {
                let scopes = ScopeSet::parse("api").unwrap();
                let issue = issuance::Issue {
                    app: &app,
                    user: Some(&user),
                    scopes: &scopes,
                    grant_id: None,
                    nonce: None,
                    auth_time: None,
                };
                issuance::mint(&st, conn, &issue, RefreshPlan::NewFamily, now)
            })
            .await
            .unwrap();
        unsigned.sign(&state).unwrap().refresh_token.unwrap()
    }

    async fn stored(scratch: &Scratch, presented: &Secret) -> AccessTokenRow {
        let hash = presented.sha256();
        scratch
            .run(move |conn| db::tokens::find_by_refresh_hash(conn, &hash))
            .await
            .unwrap()
    }

    async fn family_rows(scratch: &Scratch, presented: &Secret) -> usize {
        let family = stored(scratch, presented).await.family_id.unwrap();
        scratch
            .run(move |conn| {
                use crate::db::schema::access_tokens::dsl::*;
                use diesel::prelude::*;
                access_tokens
                    .filter(family_id.eq(family))
                    .count()
                    .get_result::<i64>(conn)
            })
            .await as usize
    }

    fn refused(result: Result<TokenResponse, GrantError>) -> ErrorCode {
        match result {
            Err(GrantError::OAuth(failure)) => failure.code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sec_tk_09_a_user_blocked_after_the_read_gets_no_successor() {
        let scratch = Scratch::new().await;
        let presented = refreshable(&scratch).await;
        let state = &scratch.state;
        let read = read(state, &presented).await.unwrap();
        // The read saw an active user; the block lands before the writer runs.
        scratch.block_user().await;
        let result = finish(
            state,
            scratch.app.clone(),
            presented.clone(),
            None,
            read,
            state.now(),
        )
        .await;
        assert_eq!(refused(result), ErrorCode::InvalidGrant);
        let row = stored(&scratch, &presented).await;
        assert!(
            row.refresh_rotated_at.is_none(),
            "the token was not claimed"
        );
        assert!(
            row.revoked_at.is_none(),
            "nor its family revoked as a reuse"
        );
        assert_eq!(family_rows(&scratch, &presented).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sec_rt_04_two_requests_that_read_the_same_unused_token_make_one_successor() {
        let scratch = Scratch::new().await;
        let presented = refreshable(&scratch).await;
        let state = &scratch.state;
        // Both read the token unused; the first claims it, the second finds it claimed.
        let first_read = read(state, &presented).await.unwrap();
        let second_read = read(state, &presented).await.unwrap();
        let app = scratch.app.clone();
        let first = finish(
            state,
            app.clone(),
            presented.clone(),
            None,
            first_read,
            state.now(),
        )
        .await
        .unwrap();
        let second = finish(
            state,
            app,
            presented.clone(),
            None,
            second_read,
            state.now(),
        )
        .await
        .unwrap();
        // SEC-RT-03: the second is a retry within the grace window: the same successor.
        assert_eq!(first.refresh_token, second.refresh_token);
        assert_eq!(
            family_rows(&scratch, &presented).await,
            2,
            "one successor, not two"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_revoked_after_the_read_is_refused_and_nothing_is_stored() {
        let scratch = Scratch::new().await;
        let presented = refreshable(&scratch).await;
        let state = &scratch.state;
        let read = read(state, &presented).await.unwrap();
        let jti = stored(&scratch, &presented).await.jti;
        let now = state.now();
        let changes = state.token_changes.clone();
        scratch
            .run(move |conn| db::tokens::revoke(conn, &changes, &jti, now))
            .await;
        let result = finish(
            state,
            scratch.app.clone(),
            presented.clone(),
            None,
            read,
            now,
        )
        .await;
        assert_eq!(refused(result), ErrorCode::InvalidGrant);
        assert_eq!(family_rows(&scratch, &presented).await, 1);
    }

    #[test]
    fn successors_are_deterministic_per_key_and_token() {
        let a = derive_successor_refresh_token(b"key-1", "r1");
        assert_eq!(a, derive_successor_refresh_token(b"key-1", "r1"));
        assert_ne!(a, derive_successor_refresh_token(b"key-2", "r1"));
        assert_ne!(a, derive_successor_refresh_token(b"key-1", "r2"));
        assert_eq!(a.expose().len(), 43);
    }
}
