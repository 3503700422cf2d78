//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5): a single-use code,
//! bound to its client, redirect URI and PKCE challenge. The code is claimed with one
//! conditional update before anything else is checked, so every attempt burns it
//! (SEC-PK-03) and concurrent attempts cannot both win (SEC-TK-04); presenting a used code
//! revokes everything it produced (SEC-TK-03).

use doorward_shared::{ErrorCode, Secret};

use crate::db::models::{AccessGrantRow, ApplicationRow, UserRow};
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, Outcome, ServiceError};
use crate::issuance::{self, TokenResponse, Unsigned};
use crate::pkce::{self, Method};
use crate::state::AppState;

use super::granting::Granting;
use super::rules::{self, invalid_grant};

/// `grant_type=authorization_code` and its parameters.
#[derive(Debug)]
pub struct AuthorizationCodeGrant {
    /// `code`.
    pub code: Secret,
    /// `redirect_uri`, which must equal the authorization request's.
    pub redirect_uri: String,
    /// PKCE `code_verifier` (RFC 7636 §4.5), if sent.
    pub code_verifier: Option<Secret>,
}

impl AuthorizationCodeGrant {
    /// Redeems the code: on SQLite the code is read beside the writer first
    /// (`AppState::read_before_write`), on PostgreSQL inside the write transaction.
    pub async fn apply(self, granting: Granting<'_>) -> Result<TokenResponse, GrantError> {
        let Granting { state, app, .. } = granting;
        let now = state.now();
        if !state.read_before_write {
            let state2 = state.clone();
            let outcome = state
                .write(move |conn| redeem(&state2, conn, &app, &self, now))
                .await?;
            return Ok(outcome.into_result()?.sign(state)?);
        }
        let read = read(state, &self.code).await?;
        finish(state, app, self, read, now).await
    }
}

/// A code's row and its user, as read before the writer.
type Read = Option<(AccessGrantRow, Option<UserRow>)>;

/// Reads the code and its user on the pool, beside the writer: only the claim and the
/// insert take the writer's time (`db::writer` serialises every grant's writes).
async fn read(state: &AppState, code: &Secret) -> Result<Read, ServiceError> {
    let hash = code.sha256();
    state
        .db(move |conn| {
            db::grants::find_by_code_hash_with_user(conn, &hash).map_err(ServiceError::from)
        })
        .await
}

/// Decides on what `read` found and redeems in the writer. What can change after the read
/// (the claim, a revocation, the user's state) is checked again there.
async fn finish(
    state: &AppState,
    app: ApplicationRow,
    request: AuthorizationCodeGrant,
    read: Read,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    let Some((grant, user)) = read else {
        return Err(invalid_grant().into());
    };
    // A code its user revoked (authorized-applications page) is simply invalid; a revocation
    // is final, so a read made before the writer cannot be wrong about it.
    if grant.revoked_at.is_some() {
        return Err(invalid_grant().into());
    }
    let state2 = state.clone();
    let outcome = state
        .write(move |conn| {
            if grant.used_at.is_none() && db::grants::consume(conn, grant.id, now)? {
                // Burned by this request. What the read showed cannot have changed since,
                // except the user's state, which is probed again.
                return redeem_burned(&state2, conn, &app, &grant, &request, user.as_ref(), now);
            }
            // Used before, or claimed or revoked since the read: decide on fresh reads.
            redeem(&state2, conn, &app, &request, now)
        })
        .await?;
    Ok(outcome.into_result()?.sign(state)?)
}

/// The code was read before the writer and burned by this request: checks it and mints.
fn redeem_burned(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    grant: &AccessGrantRow,
    request: &AuthorizationCodeGrant,
    user: Option<&UserRow>,
    now: i64,
) -> Result<Outcome<Unsigned>, ServiceError> {
    match check_burned(app, grant, request, user, now) {
        Err(refusal) => Ok(Outcome::Refused(refusal)),
        Ok(user) if db::users::is_active(conn, user.id)? => {
            Ok(Outcome::Done(mint(state, conn, app, grant, user, now)?))
        }
        Ok(_) => Ok(Outcome::Refused(invalid_grant())),
    }
}

/// The whole redemption on fresh reads, inside the writer's transaction.
fn redeem(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    request: &AuthorizationCodeGrant,
    now: i64,
) -> Result<Outcome<Unsigned>, ServiceError> {
    let Some(grant) = db::grants::find_by_code_hash(conn, &request.code.sha256())? else {
        return Ok(Outcome::Refused(invalid_grant()));
    };
    // A code its user revoked (authorized-applications page) is simply invalid.
    if grant.revoked_at.is_some() {
        return Ok(Outcome::Refused(invalid_grant()));
    }
    if !db::grants::consume(conn, grant.id, now)? {
        // RFC 6749 §4.1.2: a second use revokes every token minted from the code.
        let revoked = db::grants::revoke_tokens_of(conn, &state.token_changes, grant.id, now)?;
        crate::metrics::revoked(crate::metrics::RevokeCause::CodeReplay, revoked);
        tracing::warn!(
            target: "audit",
            event = "authorization_code_replay",
            grant_id = grant.id,
            client_id = %app.uid,
            revoked_rows = revoked,
            "a used authorization code was presented again; its tokens are revoked"
        );
        return Ok(Outcome::Refused(invalid_grant()));
    }
    let user = db::users::find(conn, grant.user_id)?;
    match check_burned(app, &grant, request, user.as_ref(), now) {
        Ok(user) => Ok(Outcome::Done(mint(state, conn, app, &grant, user, now)?)),
        Err(refusal) => Ok(Outcome::Refused(refusal)),
    }
}

/// The checks after the code is burned (every refusal from here leaves it burned): client,
/// expiry, redirect URI, PKCE, and an active user, which it returns.
fn check_burned<'u>(
    app: &ApplicationRow,
    grant: &AccessGrantRow,
    request: &AuthorizationCodeGrant,
    user: Option<&'u UserRow>,
    now: i64,
) -> Result<&'u UserRow, OAuthFailure> {
    if grant.application_id != app.id || grant.expires_at <= now {
        return Err(invalid_grant());
    }
    // RFC 6749 §4.1.3: identical to the redirect URI of the authorization request.
    if grant.redirect_uri != request.redirect_uri {
        return Err(invalid_grant());
    }
    let verifier = request.code_verifier.as_ref().map(Secret::expose);
    let challenge = grant.code_challenge.as_deref().zip(
        grant
            .code_challenge_method
            .as_deref()
            .and_then(Method::parse),
    );
    let pkce_ok = match (challenge, verifier) {
        (Some((challenge, method)), Some(verifier)) => pkce::verify(method, challenge, verifier),
        // SEC-PK-03: a challenge was stored, so the verifier is required.
        (Some(_), None) => false,
        // SEC-PK-02: a verifier for a code issued without a challenge is a downgrade.
        (None, Some(_)) => false,
        (None, None) => true,
    };
    if !pkce_ok {
        tracing::warn!(target: "audit", event = "pkce_failure", grant_id = grant.id, client_id = %app.uid, "PKCE verification failed");
        return Err(OAuthFailure::with(
            ErrorCode::InvalidGrant,
            "The code_verifier does not match the code_challenge of the authorization request.",
        ));
    }
    // SEC-TK-09: the user must still be active.
    user.filter(|u| u.is_active()).ok_or_else(invalid_grant)
}

/// Stores the token of a burned, checked code.
fn mint(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    grant: &AccessGrantRow,
    user: &UserRow,
    now: i64,
) -> Result<Unsigned, ServiceError> {
    let scopes = rules::stored_scopes(&grant.scopes, "access_grants", grant.id, "scopes")?;
    let issue = issuance::Issue {
        app,
        user: Some(user),
        scopes: &scopes,
        grant_id: Some(grant.id),
        nonce: grant.nonce.as_deref(),
        auth_time: grant.auth_time,
    };
    issuance::mint(state, conn, &issue, rules::refresh_plan_for(app), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::models::NewAccessGrant;
    use crate::testing::Scratch;
    use doorward_shared::secret::random_token;

    const REDIRECT: &str = "https://app.example/cb";

    /// A fresh code for the scratch user (no PKCE: a confidential client).
    async fn code(scratch: &Scratch) -> Secret {
        let code = random_token();
        let (hash, app, user, now) = (
            code.sha256().to_vec(),
            scratch.app.id,
            scratch.user.id,
            scratch.state.now(),
        );
        scratch
            .run(move |conn| {
                db::grants::insert(
                    conn,
                    &NewAccessGrant {
                        code_hash: hash,
                        application_id: app,
                        user_id: user,
                        scopes: "api",
                        redirect_uri: REDIRECT,
                        code_challenge: None,
                        code_challenge_method: None,
                        nonce: None,
                        auth_time: None,
                        created_at: now,
                        expires_at: now + 600,
                    },
                )
            })
            .await;
        code
    }

    async fn grant_of(scratch: &Scratch, code: &Secret) -> AccessGrantRow {
        let hash = code.sha256();
        scratch
            .run(move |conn| db::grants::find_by_code_hash(conn, &hash))
            .await
            .unwrap()
    }

    /// The code's tokens: (all, live).
    async fn tokens_of(scratch: &Scratch, code: &Secret) -> (i64, i64) {
        let id = grant_of(scratch, code).await.id;
        scratch
            .run(move |conn| {
                use crate::db::schema::access_tokens::dsl::*;
                use diesel::prelude::*;
                let all = access_tokens
                    .filter(grant_id.eq(id))
                    .count()
                    .get_result(conn)?;
                let live = access_tokens
                    .filter(grant_id.eq(id))
                    .filter(revoked_at.is_null())
                    .count()
                    .get_result(conn)?;
                Ok((all, live))
            })
            .await
    }

    async fn exchange_read(
        scratch: &Scratch,
        code: &Secret,
        read: Read,
    ) -> Result<TokenResponse, GrantError> {
        let state = &scratch.state;
        let request = AuthorizationCodeGrant {
            code: code.clone(),
            redirect_uri: REDIRECT.into(),
            code_verifier: None,
        };
        finish(state, scratch.app.clone(), request, read, state.now()).await
    }

    fn refused(result: Result<TokenResponse, GrantError>) -> ErrorCode {
        match result {
            Err(GrantError::OAuth(failure)) => failure.code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sec_tk_09_a_user_blocked_after_the_read_gets_no_token_and_the_code_burns() {
        let scratch = Scratch::new().await;
        let code = code(&scratch).await;
        let read = read(&scratch.state, &code).await.unwrap();
        scratch.block_user().await;
        let result = exchange_read(&scratch, &code, read).await;
        assert_eq!(refused(result), ErrorCode::InvalidGrant);
        assert!(grant_of(&scratch, &code).await.used_at.is_some(), "burned");
        assert_eq!(tokens_of(&scratch, &code).await, (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sec_tk_04_two_requests_that_read_the_same_unused_code_get_one_token() {
        let scratch = Scratch::new().await;
        let code = code(&scratch).await;
        let first_read = read(&scratch.state, &code).await.unwrap();
        let second_read = read(&scratch.state, &code).await.unwrap();
        exchange_read(&scratch, &code, first_read).await.unwrap();
        assert_eq!(tokens_of(&scratch, &code).await, (1, 1));
        // The second read saw the code unused, but the first burned it: a replay, which
        // revokes what the code produced (RFC 6749 §4.1.2, SEC-TK-03).
        let second = exchange_read(&scratch, &code, second_read).await;
        assert_eq!(refused(second), ErrorCode::InvalidGrant);
        assert_eq!(tokens_of(&scratch, &code).await, (1, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_code_revoked_after_the_read_gets_no_token() {
        let scratch = Scratch::new().await;
        let code = code(&scratch).await;
        let read = read(&scratch.state, &code).await.unwrap();
        let (user, app, now) = (scratch.user.id, scratch.app.id, scratch.state.now());
        let changes = scratch.state.token_changes.clone();
        scratch
            .run(move |conn| db::grants::revoke_authorization(conn, &changes, user, app, now))
            .await;
        let result = exchange_read(&scratch, &code, read).await;
        assert_eq!(refused(result), ErrorCode::InvalidGrant);
        assert_eq!(tokens_of(&scratch, &code).await, (0, 0));
    }
}
