//! Client authentication (RFC 6749 §2.3): a confidential client proves itself with its
//! secret, compared as SHA-256 in constant time (SEC-TK-02); a public client sends only its
//! `client_id`. Unknown clients take the same path against a dummy hash. Failures count in
//! the client-authentication throttle (SEC-RL-03).

pub mod cache;

use doorward_shared::secret::{constant_time_eq, sha256};
use doorward_shared::{ErrorCode, Secret};

use crate::db::DbConnection;
use crate::db::models::ApplicationRow;
use crate::error::{GrantError, OAuthFailure, ServiceError};
use crate::state::AppState;

pub use cache::{ApplicationCache, CallerCache};

/// The credentials a client sent (HTTP Basic or the request body; auth-web has already
/// refused a request that used both).
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`, if one was sent.
    pub secret: Option<Secret>,
}

/// Compared against when the client is unknown, so that the failure takes as long.
const DUMMY_HASH: [u8; 32] = [0u8; 32];

/// Whether `secret` matches the application's current secret, or its previous one while
/// the rotation grace period lasts.
pub fn secret_matches(app: &ApplicationRow, secret: &str, now: i64) -> bool {
    let presented = sha256(secret.as_bytes());
    let current = app
        .secret_hash
        .as_deref()
        .is_some_and(|stored| constant_time_eq(&presented, stored));
    let previous = app
        .previous_secret_expires_at
        .is_some_and(|until| now < until)
        && app
            .previous_secret_hash
            .as_deref()
            .is_some_and(|stored| constant_time_eq(&presented, stored));
    current | previous
}

fn invalid_client() -> OAuthFailure {
    OAuthFailure::new(ErrorCode::InvalidClient)
}

/// The credentials of `client`, if they could name an application.
fn named(client: Option<&ClientAuth>) -> Result<&ClientAuth, OAuthFailure> {
    // No client id contains NUL (PostgreSQL text cannot even hold one).
    client
        .filter(|c| !c.client_id.is_empty() && !c.client_id.contains('\0'))
        .ok_or_else(invalid_client)
}

/// Authenticates the client of a request, or refuses with `invalid_client`.
///
/// Credentials that a cached record accepts are accepted; credentials it refuses are
/// checked again against the stored record before the refusal, so that a secret rotated
/// by another process works at once (only a retired secret or a deleted application can
/// outlive its change, by at most `tokens.client_cache_seconds`).
pub fn authenticate(
    cache: &ApplicationCache,
    conn: &mut DbConnection,
    client: Option<&ClientAuth>,
    now: i64,
) -> Result<ApplicationRow, GrantError> {
    let client = named(client)?;
    if let Some(app) = cached(cache, client, now) {
        return Ok(app);
    }
    let app = cache.read(conn, &client.client_id, now)?;
    Ok(check(app, client, now)?)
}

/// `authenticate` from an async task: a cached record is checked without leaving the
/// task; otherwise the record is read on the blocking pool.
pub async fn authenticate_async(
    state: &AppState,
    client: Option<&ClientAuth>,
    now: i64,
) -> Result<ApplicationRow, GrantError> {
    let client = named(client)?;
    if let Some(app) = cached(&state.clients, client, now) {
        return Ok(app);
    }
    let state2 = state.clone();
    let uid = client.client_id.clone();
    let app = state
        .db(move |conn| Ok::<_, ServiceError>(state2.clients.read(conn, &uid, now)?))
        .await?;
    Ok(check(app, client, now)?)
}

/// Runs `work` (which authenticates `client`) under the client-authentication throttle
/// (SEC-RL-03): a client that presents a secret and failed too often from `client_ip` is
/// refused with 429 before `work` runs, and a failure of `work` with `invalid_client` is
/// counted. Only failures count, so a busy client with many requests in flight is never
/// throttled (parallel guesses can overshoot the limit by the number in flight; with
/// 256-bit secrets this is defence in depth). Used by the token endpoint and the device
/// authorization endpoint.
pub async fn throttled<T>(
    state: &AppState,
    client: Option<&ClientAuth>,
    client_ip: &str,
    work: impl std::future::Future<Output = Result<T, GrantError>>,
) -> Result<T, GrantError> {
    let secret_holder = client
        .filter(|c| c.secret.is_some())
        .map(|c| throttle_account(&c.client_id));
    if let Some(holder) = &secret_holder
        && let Err(retry_after) = state.client_throttle.check(holder, client_ip, state.now())
    {
        crate::metrics::throttled(crate::metrics::Throttle::ClientAuth);
        tracing::warn!(target: "audit", event = "client_authentication_throttled", client_ip = %client_ip, "too many failed client authentications");
        let mut failure = OAuthFailure::with(
            ErrorCode::InvalidClient,
            "Too many failed client authentications. Try again later.",
        );
        failure.retry_after_seconds = retry_after;
        return Err(failure.into());
    }
    let result = work.await;
    if let Some(holder) = &secret_holder
        && matches!(&result, Err(GrantError::OAuth(f)) if f.code == ErrorCode::InvalidClient)
    {
        state
            .client_throttle
            .record_failure(holder, client_ip, state.now());
    }
    result
}

/// The client-authentication throttle's "account" for a client_id.
pub fn throttle_account(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// A token insert that failed because its application is gone (deleted by another process
/// while this one still had its record cached) is the client's failure, not the server's.
pub fn application_gone(state: &AppState, uid: &str, err: ServiceError) -> GrantError {
    use diesel::result::{DatabaseErrorKind, Error};
    match err {
        ServiceError::Db(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
            state.clients.forget(uid);
            invalid_client().into()
        }
        err => err.into(),
    }
}

/// The cached record of `client`'s application, if it accepts `client`'s credentials.
fn cached(cache: &ApplicationCache, client: &ClientAuth, now: i64) -> Option<ApplicationRow> {
    let found = cache
        .get(&client.client_id, now)
        .and_then(|app| check(Some(app), client, now).ok());
    let counter = match found {
        Some(_) => &crate::metrics::CACHE.client_hit,
        None => &crate::metrics::CACHE.client_miss,
    };
    counter.inc();
    found
}

/// Checks `client`'s credentials against its application's record (`None`: unknown).
fn check(
    app: Option<ApplicationRow>,
    client: &ClientAuth,
    now: i64,
) -> Result<ApplicationRow, OAuthFailure> {
    let Some(app) = app else {
        if let Some(secret) = &client.secret {
            let _ = constant_time_eq(&sha256(secret.expose().as_bytes()), &DUMMY_HASH);
        }
        return Err(invalid_client());
    };
    // A blank secret is no secret: public clients that send `id:` in Basic are accepted.
    let secret = client
        .secret
        .as_ref()
        .map(Secret::expose)
        .filter(|s| !s.is_empty());
    match (secret, app.confidential) {
        (Some(secret), true) if secret_matches(&app, secret, now) => Ok(app),
        // A public client authenticates with its client_id alone; one that sends a secret
        // sends a wrong one (it has none), as doorkeeper rules.
        (None, false) => Ok(app),
        _ => Err(invalid_client()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doorward_shared::secret::sha256;

    fn app(secret: &str, previous: Option<(&str, i64)>) -> ApplicationRow {
        ApplicationRow {
            id: 1,
            uid: "c".into(),
            name: "n".into(),
            secret_hash: Some(sha256(secret.as_bytes()).to_vec()),
            previous_secret_hash: previous.map(|(s, _)| sha256(s.as_bytes()).to_vec()),
            previous_secret_expires_at: previous.map(|(_, until)| until),
            redirect_uris: String::new(),
            scopes: "api".into(),
            confidential: true,
            trusted: false,
            grant_types: crate::db::models::RegisteredGrants(vec![
                doorward_shared::GrantType::Password,
            ]),
            owner_id: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn sec_tk_02_secrets_are_compared_as_hashes_in_constant_time() {
        // The comparison goes through `subtle` (via `constant_time_eq`); no `==` on hashes.
        let source = include_str!("mod.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        assert!(code.contains("constant_time_eq(&presented, stored)"));
        assert!(!code.contains("== stored") && !code.contains("secret_hash =="));
        let app = app("new", Some(("old", 100)));
        assert!(secret_matches(&app, "new", 50));
        assert!(
            secret_matches(&app, "old", 50),
            "the previous secret works during its grace"
        );
        assert!(!secret_matches(&app, "old", 100), "and not after");
        assert!(!secret_matches(&app, "wrong", 50));
    }
}
