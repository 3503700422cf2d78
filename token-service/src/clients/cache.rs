//! The application records a process read recently, so that the hot path need not read
//! the application on every request. Kept apart from the authentication that uses it, so
//! that `AppState` can hold it without a circle of files.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::models::ApplicationRow;
use crate::db::{self, DbConnection};

/// Application records recently read, by client id: cached in-process with bounded
/// staleness, so that the hot path need not read the application on every request
/// (`client_cache_seconds` in docs/configuration.md). A
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

/// Most callers remembered at once (resource servers are few; the bound is for attackers).
const CALLER_CACHE_ENTRIES: usize = 1_024;

/// Resource servers that authenticated recently: SHA-256 of the presented credential ->
/// when it was checked.
#[derive(Default)]
pub struct CallerCache {
    callers: Mutex<HashMap<[u8; 32], i64>>,
}

impl CallerCache {
    /// Whether the credential hashed to `key` was accepted less than `fresh_for` seconds ago.
    pub fn fresh(&self, key: &[u8; 32], now: i64, fresh_for: i64) -> bool {
        let callers = match self.callers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        callers.get(key).is_some_and(|at| now - at < fresh_for)
    }

    /// Remembers that the credential hashed to `key` was accepted at `now`.
    pub fn remember(&self, key: [u8; 32], now: i64) {
        let mut callers = match self.callers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if callers.len() >= CALLER_CACHE_ENTRIES {
            callers.clear();
        }
        callers.insert(key, now);
    }
}
