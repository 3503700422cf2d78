//! Token validation for resource servers (`TokenValidation.Validate`): signature, expiry and
//! revocation, with the hot path in memory.
//!
//! A validated token is cached under the SHA-256 of its text: a repeat within
//! `tokens.validation_cache_seconds` costs one hash and one map lookup; after that the
//! token's row is read again (signature and claims are not re-verified while the key set is
//! unchanged). That re-read is how a revocation made anywhere (this replica, another one,
//! a family revocation, a blocked user, a deleted application) reaches every replica: within
//! `validation_cache_seconds`, the documented bound. A revoked token is remembered as
//! revoked until it expires (revocation is final), and a change of the published keys (a
//! revoked signing key) empties the cache at once. The cache is bounded: each shard drops
//! expired entries when full, and starts over if that is not enough.

pub mod cache;

use std::sync::Arc;

use doorward_shared::secret::sha256;

use crate::db;
use crate::db::models::{AccessTokenRow, UserRow};
use crate::error::{Outcome, ServiceError};
use crate::issuance::subject;
use crate::keys::{JwtRejection, MAX_TOKEN_LEN};
use crate::state::AppState;

use cache::Cached;
pub use cache::ValidToken;

/// Why a token is not active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactive {
    /// Malformed, not ours, unknown.
    Invalid,
    /// Past its `exp`.
    Expired,
    /// Revoked, or its user is blocked.
    Revoked,
    /// Valid, but without every required scope.
    InsufficientScope,
}

impl Inactive {
    /// As `ValidateResponse.inactive_reason` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

/// Validates `token` and checks that it carries every scope of `required`.
pub async fn validate(
    state: &AppState,
    token: &str,
    required: &[String],
) -> Result<Outcome<Arc<ValidToken>, Inactive>, ServiceError> {
    let valid = match check(state, token).await? {
        // A blocked user's tokens stop working (and work again if the user is unblocked).
        Outcome::Done(valid) if !valid.user_active => {
            return Ok(Outcome::Refused(Inactive::Revoked));
        }
        Outcome::Done(valid) => valid,
        refused => return Ok(refused),
    };
    if !required.iter().all(|s| valid.scopes.contains(s)) {
        return Ok(Outcome::Refused(Inactive::InsufficientScope));
    }
    Ok(Outcome::Done(valid))
}

/// The token, or why it is not active. Shared by `TokenValidation.Validate`, the bearer
/// checks of `/api/v4/user`, userinfo and token info (`bearer`), and introspection.
pub async fn check(
    state: &AppState,
    token: &str,
) -> Result<Outcome<Arc<ValidToken>, Inactive>, ServiceError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(Outcome::Refused(Inactive::Invalid));
    }
    let now = state.now();
    let seen = Seen {
        key: sha256(token.as_bytes()),
        now,
        generation: state.keys.generation(),
        // Read before the row is (see `db::TokenChanges`).
        changes: state.token_changes.current(),
    };
    // The token's own `exp` and `iat`, when it was verified just now: a signed token whose
    // times differ from its row's (only our key could make one) is not taken for it
    // (SEC-JW-05).
    let (jti, times) = match cached(state, &seen) {
        Known::Answer(answer) => return Ok(answer),
        Known::Verified(jti) => (jti, None),
        Known::Unknown => match state.keys.verify_access_token(token, now) {
            Ok(claims) => (claims.jti, Some((claims.exp, claims.iat))),
            Err(JwtRejection::Expired) => return Ok(Outcome::Refused(Inactive::Expired)),
            Err(JwtRejection::Invalid) => return Ok(Outcome::Refused(Inactive::Invalid)),
        },
    };
    let found = state
        .db(move |conn| Ok::<_, ServiceError>(db::tokens::find_with_owner(conn, &jti)?))
        .await?;
    let found = found
        .filter(|(row, ..)| times.is_none_or(|times| times == (row.expires_at, row.created_at)));
    Ok(remember(state, &seen, found))
}

/// When and under which key set and change count a token was looked at.
struct Seen {
    key: [u8; 32],
    now: i64,
    generation: u64,
    changes: u64,
}

/// What the cache knows of a token.
enum Known {
    /// Enough to answer.
    Answer(Outcome<Arc<ValidToken>, Inactive>),
    /// Its signature was verified with today's keys: only its row is to be read again.
    Verified(String),
    /// Nothing.
    Unknown,
}

fn cached(state: &AppState, seen: &Seen) -> Known {
    let known = lookup(state, seen);
    let counter = match known {
        Known::Answer(_) => &crate::metrics::CACHE.validation_hit,
        Known::Verified(_) | Known::Unknown => &crate::metrics::CACHE.validation_miss,
    };
    counter.inc();
    known
}

fn lookup(state: &AppState, seen: &Seen) -> Known {
    let fresh_for = state.config.tokens.validation_cache_seconds;
    match state.validation_cache.get(&seen.key) {
        Some(Cached::Revoked { .. }) => Known::Answer(Outcome::Refused(Inactive::Revoked)),
        Some(Cached::Active {
            token: valid,
            checked_at,
            generation,
            changes,
        }) if generation == seen.generation => {
            if valid.expires_at <= seen.now {
                Known::Answer(Outcome::Refused(Inactive::Expired))
            } else if seen.now - checked_at < fresh_for && changes == seen.changes {
                Known::Answer(Outcome::Done(valid))
            } else {
                Known::Verified(valid.jti.clone())
            }
        }
        _ => Known::Unknown,
    }
}

/// Decides on the token's row (with its client's id and its user) and caches the answer: a
/// revocation until the token expires, a valid token for `validation_cache_seconds`.
fn remember(
    state: &AppState,
    seen: &Seen,
    found: Option<(AccessTokenRow, String, Option<UserRow>)>,
) -> Outcome<Arc<ValidToken>, Inactive> {
    let (cache, key, now) = (&state.validation_cache, seen.key, seen.now);
    let Some((row, client_uid, user)) = found else {
        cache.remove(&key);
        return Outcome::Refused(Inactive::Invalid);
    };
    if row.revoked_at.is_some() {
        let revoked = Cached::Revoked {
            expires_at: row.expires_at,
        };
        cache.insert(key, revoked, now);
        return Outcome::Refused(Inactive::Revoked);
    }
    if row.expires_at <= now {
        cache.remove(&key);
        return Outcome::Refused(Inactive::Expired);
    }
    let valid = Arc::new(ValidToken {
        user_active: user.as_ref().is_none_or(|u| u.is_active()),
        subject: subject(row.user_id, &client_uid),
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        jti: row.jti,
        client_id: client_uid,
        expires_at: row.expires_at,
        issued_at: row.created_at,
        user_id: row.user_id,
        user,
    });
    let cached = Cached::Active {
        token: valid.clone(),
        checked_at: now,
        generation: seen.generation,
        changes: seen.changes,
    };
    cache.insert(key, cached, now);
    Outcome::Done(valid)
}
