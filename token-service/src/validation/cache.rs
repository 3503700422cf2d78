//! The bounded in-memory cache of validated and revoked tokens (see the module above for
//! how it bounds staleness). Kept apart so that `AppState` can hold it without a circle of
//! files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::db::models::UserRow;

const SHARDS: usize = 16;

/// What a valid token grants.
#[derive(Debug, Clone)]
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
    pub user: Option<UserRow>,
    /// False when the token's user is blocked: the token does not work while that lasts.
    pub user_active: bool,
}

#[derive(Clone)]
pub(super) enum Cached {
    Active {
        token: Arc<ValidToken>,
        checked_at: i64,
        /// The key set's generation it was verified with.
        generation: u64,
        /// `AppState::token_changes` when its row was read.
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

    pub(super) fn get(&self, key: &[u8; 32]) -> Option<Cached> {
        self.shard(key).get(key).cloned()
    }

    pub(super) fn insert(&self, key: [u8; 32], value: Cached, now: i64) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, cached| cached.expires_at() > now);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(key, value);
    }

    pub(super) fn remove(&self, key: &[u8; 32]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use doorward_shared::secret::sha256;

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
