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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use doorward_proto::v1 as pb;
use doorward_shared::secret::sha256;

use crate::db;
use crate::error::ServiceError;
use crate::issuance::subject;
use crate::keys::{JwtRejection, MAX_TOKEN_LEN};
use crate::state::AppState;

const SHARDS: usize = 16;

/// Why a token is not active, as `ValidateResponse.inactive_reason` says it.
pub mod reason {
    /// Malformed, not ours, unknown.
    pub const INVALID: &str = "invalid";
    /// Past its `exp`.
    pub const EXPIRED: &str = "expired";
    /// Revoked, or its user is blocked.
    pub const REVOKED: &str = "revoked";
    /// Valid, but without every required scope.
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// `jti`.
    pub jti: String,
    /// `sub`.
    pub subject: String,
    /// The client's `client_id`.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// `exp`.
    pub expires_at: i64,
    /// `iat`.
    pub issued_at: i64,
    /// The user, unless the client acts for itself.
    pub user_id: Option<i64>,
    /// The user's account as it was read (for `/api/v4/user` and userinfo).
    pub user: Option<pb::User>,
    /// False when the token's user is blocked: the token does not work while that lasts.
    pub user_active: bool,
}

#[derive(Clone)]
enum Cached {
    Active {
        token: Arc<ValidToken>,
        checked_at: i64,
        /// The key set's generation it was verified with.
        generation: u64,
        /// `db::token_state_changes` when its row was read.
        changes: u64,
    },
    Revoked {
        expires_at: i64,
    },
}

impl Cached {
    fn expires_at(&self) -> i64 {
        match self {
            Self::Active { token, .. } => token.expires_at,
            Self::Revoked { expires_at } => *expires_at,
        }
    }
}

/// The bounded in-memory cache of validated and revoked tokens.
pub struct ValidationCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Cached>>>,
    per_shard: usize,
}

impl ValidationCache {
    /// A cache of at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        match shard.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn get(&self, key: &[u8; 32]) -> Option<Cached> {
        self.shard(key).get(key).cloned()
    }

    fn insert(&self, key: [u8; 32], value: Cached, now: i64) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, cached| cached.expires_at() > now);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(key, value);
    }

    fn remove(&self, key: &[u8; 32]) {
        self.shard(key).remove(key);
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(guard) => guard.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Validates `token` and checks that it carries every scope of `required`.
pub async fn validate(
    state: &AppState,
    token: &str,
    required: &[String],
) -> Result<pb::ValidateResponse, ServiceError> {
    let valid = match check(state, token).await? {
        // A blocked user's tokens stop working (and work again if the user is unblocked).
        Ok(valid) if !valid.user_active => return Ok(inactive(reason::REVOKED)),
        Ok(valid) => valid,
        Err(why) => return Ok(inactive(why)),
    };
    if !required.iter().all(|s| valid.scopes.contains(s)) {
        return Ok(inactive(reason::INSUFFICIENT_SCOPE));
    }
    Ok(pb::ValidateResponse {
        active: true,
        subject: valid.subject.clone(),
        client_id: valid.client_id.clone(),
        scopes: valid.scopes.clone(),
        expires_at: valid.expires_at,
        issued_at: valid.issued_at,
        user_id: valid.user_id,
        inactive_reason: String::new(),
    })
}

fn inactive(why: &str) -> pb::ValidateResponse {
    pb::ValidateResponse {
        active: false,
        inactive_reason: why.to_owned(),
        ..Default::default()
    }
}

/// The token, or why it is not active. Shared by `TokenValidation.Validate`, the bearer
/// checks of `/api/v4/user`, userinfo and token info (`bearer`), and introspection.
pub async fn check(
    state: &AppState,
    token: &str,
) -> Result<Result<Arc<ValidToken>, &'static str>, ServiceError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(Err(reason::INVALID));
    }
    let now = state.now();
    let key = sha256(token.as_bytes());
    let generation = state.keys.generation();
    // Read before the row is (see `db::TOKEN_STATE_CHANGES`).
    let changes = db::token_state_changes();
    let fresh_for = state.config.tokens.validation_cache_seconds;
    let cache = &state.validation_cache;
    let known_jti = match cache.get(&key) {
        Some(Cached::Revoked { .. }) => return Ok(Err(reason::REVOKED)),
        Some(Cached::Active {
            token: valid,
            checked_at,
            generation: cached_generation,
            changes: cached_changes,
        }) if cached_generation == generation => {
            if valid.expires_at <= now {
                return Ok(Err(reason::EXPIRED));
            }
            if now - checked_at < fresh_for && cached_changes == changes {
                return Ok(Ok(valid));
            }
            // The signature was verified with today's keys: only the row is read again.
            Some(valid.jti.clone())
        }
        _ => None,
    };
    // The token's own `exp` and `iat`, when it was verified just now: a signed token whose
    // times differ from its row's (only our key could make one) is not taken for it
    // (SEC-JW-05).
    let (jti, times) = match known_jti {
        Some(jti) => (jti, None),
        None => match state.keys.verify_access_token(token, now) {
            Ok(claims) => (claims.jti, Some((claims.exp, claims.iat))),
            Err(JwtRejection::Expired) => return Ok(Err(reason::EXPIRED)),
            Err(JwtRejection::Invalid) => return Ok(Err(reason::INVALID)),
        },
    };
    let found = state
        .db(move |conn| Ok::<_, ServiceError>(db::tokens::find_with_owner(conn, &jti)?))
        .await?;
    let found = found
        .filter(|(row, ..)| times.is_none_or(|times| times == (row.expires_at, row.created_at)));
    let Some((row, client_uid, user)) = found else {
        cache.remove(&key);
        return Ok(Err(reason::INVALID));
    };
    if row.revoked_at.is_some() {
        let revoked = Cached::Revoked {
            expires_at: row.expires_at,
        };
        cache.insert(key, revoked, now);
        return Ok(Err(reason::REVOKED));
    }
    if row.expires_at <= now {
        cache.remove(&key);
        return Ok(Err(reason::EXPIRED));
    }
    let valid = Arc::new(ValidToken {
        user_active: user.as_ref().is_none_or(|u| u.is_active()),
        user: user.as_ref().map(crate::grpc::convert::user),
        subject: subject(row.user_id, &client_uid),
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        jti: row.jti,
        client_id: client_uid,
        expires_at: row.expires_at,
        issued_at: row.created_at,
        user_id: row.user_id,
    });
    let cached = Cached::Active {
        token: valid.clone(),
        checked_at: now,
        generation,
        changes,
    };
    cache.insert(key, cached, now);
    Ok(Ok(valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(exp: i64) -> Cached {
        Cached::Active {
            token: Arc::new(ValidToken {
                jti: "j".into(),
                subject: "1".into(),
                client_id: "c".into(),
                scopes: vec![],
                expires_at: exp,
                issued_at: 0,
                user_id: Some(1),
                user: None,
                user_active: true,
            }),
            checked_at: 0,
            generation: 0,
            changes: 0,
        }
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let cache = ValidationCache::new(64);
        for i in 0..10_000u32 {
            cache.insert(sha256(&i.to_be_bytes()), active(100), 0);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
    }

    #[test]
    fn a_full_shard_drops_expired_entries_first() {
        let cache = ValidationCache::new(SHARDS * 2);
        // Find three keys of one shard.
        let keys: Vec<[u8; 32]> = (0..1_000u32)
            .map(|i| sha256(&i.to_be_bytes()))
            .filter(|k| usize::from(k[0]) % SHARDS == 0)
            .take(3)
            .collect();
        cache.insert(keys[0], active(10), 0);
        cache.insert(keys[1], Cached::Revoked { expires_at: 1_000 }, 0);
        // At 20 the first has expired: it makes room, the revocation stays.
        cache.insert(keys[2], active(1_000), 20);
        assert!(cache.get(&keys[0]).is_none());
        assert!(matches!(cache.get(&keys[1]), Some(Cached::Revoked { .. })));
        assert!(cache.get(&keys[2]).is_some());
    }
}
