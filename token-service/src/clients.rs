//! Client authentication (RFC 6749 §2.3): a confidential client proves itself with its
//! secret, compared as SHA-256 in constant time (SEC-TK-02); a public client sends only its
//! `client_id`. Unknown clients take the same path against a dummy hash.

use std::collections::HashMap;
use std::sync::Mutex;

use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;
use doorward_shared::secret::{constant_time_eq, sha256};

use crate::db::models::ApplicationRow;
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, ServiceError};
use crate::state::AppState;

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

/// Application records recently read, by client id: cached in-process with bounded
/// staleness, so that the hot path need not read the application on every request
/// (ARCHITECTURE.md, `clients.rs`; `client_cache_seconds` in docs/configuration.md). A
/// record is used for `tokens.client_cache_seconds` after it was read; this process
/// forgets a record at once when it changes or deletes it (`forget`), other processes'
/// changes arrive within that time. The secret is still checked on every request, against the cached hashes.
pub struct ApplicationCache {
    ttl: i64,
    entries: Mutex<HashMap<String, (ApplicationRow, i64)>>,
}

/// Most records kept; past it the cache starts over (client ids are few; this bounds a
/// flood of distinct valid ids).
const CACHE_ENTRIES: usize = 10_000;

impl ApplicationCache {
    /// A cache that keeps records `ttl` seconds (0: none).
    pub fn new(ttl: i64) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ApplicationRow, i64)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record of `uid` if it was read less than `ttl` seconds ago.
    pub fn get(&self, uid: &str, now: i64) -> Option<ApplicationRow> {
        let entries = self.entries();
        let (row, read_at) = entries.get(uid)?;
        (now >= *read_at && now - *read_at < self.ttl).then(|| row.clone())
    }

    fn put(&self, row: &ApplicationRow, now: i64) {
        if self.ttl <= 0 {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(row.uid.clone(), (row.clone(), now));
    }

    /// Forgets `uid` (its record changed or is gone).
    pub fn forget(&self, uid: &str) {
        self.entries().remove(uid);
    }

    /// Reads the record of `uid` and keeps it.
    pub fn read(
        &self,
        conn: &mut DbConnection,
        uid: &str,
        now: i64,
    ) -> diesel::QueryResult<Option<ApplicationRow>> {
        let row = db::applications::find_by_uid(conn, uid)?;
        if let Some(row) = &row {
            self.put(row, now);
        }
        Ok(row)
    }
}

/// The client id of `client`, if it could name an application.
fn client_id(
    client: Option<&pb::ClientAuthentication>,
) -> Result<&pb::ClientAuthentication, OAuthFailure> {
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
    client: Option<&pb::ClientAuthentication>,
    now: i64,
) -> Result<ApplicationRow, GrantError> {
    let client = client_id(client)?;
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
    client: Option<&pb::ClientAuthentication>,
    now: i64,
) -> Result<ApplicationRow, GrantError> {
    let client = client_id(client)?;
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
fn cached(
    cache: &ApplicationCache,
    client: &pb::ClientAuthentication,
    now: i64,
) -> Option<ApplicationRow> {
    check(Some(cache.get(&client.client_id, now)?), client, now).ok()
}

/// Checks `client`'s credentials against its application's record (`None`: unknown).
fn check(
    app: Option<ApplicationRow>,
    client: &pb::ClientAuthentication,
    now: i64,
) -> Result<ApplicationRow, OAuthFailure> {
    let Some(app) = app else {
        if let Some(secret) = &client.client_secret {
            let _ = constant_time_eq(&sha256(secret.as_bytes()), &DUMMY_HASH);
        }
        return Err(invalid_client());
    };
    // A blank secret is no secret: public clients that send `id:` in Basic are accepted.
    let secret = client.client_secret.as_deref().filter(|s| !s.is_empty());
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
            grant_types: "password".into(),
            owner_id: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn sec_tk_02_secrets_are_compared_as_hashes_in_constant_time() {
        // The comparison goes through `subtle` (via `constant_time_eq`); no `==` on hashes.
        let source = include_str!("clients.rs");
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
