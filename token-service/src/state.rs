//! What every request handler shares: the pool, the keys, the configuration, the clock,
//! the password pool, the sign-in throttle.

use std::sync::Arc;

use doorward_shared::clock::SharedClock;
use doorward_shared::config::Config;

use crate::db::{DbConnection, DbPool};
use crate::error::ServiceError;
use crate::keys::KeyRing;
use crate::passwords::PasswordHasher;
use crate::throttle::SignInThrottle;
use crate::validation::cache::ValidationCache;

/// Shared state of the token service.
#[derive(Clone)]
pub struct AppState {
    /// Database pool.
    pub pool: DbPool,
    /// Signing keys in memory.
    pub keys: Arc<KeyRing>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Injectable clock.
    pub clock: SharedClock,
    /// Bounded argon2 pool.
    pub hasher: PasswordHasher,
    /// Sign-in throttle.
    pub throttle: Arc<SignInThrottle>,
    /// Failed-client-authentication throttle (SEC-RL-03).
    pub client_throttle: Arc<SignInThrottle>,
    /// Wrong-user-code throttle of the device verification page (SEC-DV-02).
    pub device_throttle: Arc<SignInThrottle>,
    /// Key that derives a rotated refresh token's successor (see `grants::refresh_token`).
    pub refresh_derivation_key: Arc<Vec<u8>>,
    /// Tokens `TokenValidation.Validate` checked recently (see `validation`).
    pub validation_cache: Arc<ValidationCache>,
    /// Application records read recently (see `clients::cache`).
    pub clients: Arc<crate::clients::cache::ApplicationCache>,
    /// The grants' batched write transactions (see `db::writer`).
    pub writer: crate::db::writer::Writer,
    /// Resource servers that authenticated recently (see `clients::cache`).
    pub caller_cache: Arc<crate::clients::cache::CallerCache>,
    /// Whether the refresh and code grants read their row on the pool before the writer
    /// (SQLite: its single writer thread is the bottleneck, and reads are in-process) or
    /// inside the write transaction (PostgreSQL: every statement is a round trip, and a
    /// separate read costs two more).
    pub read_before_write: bool,
    /// This service's changes that can end a token early (see `db::TokenChanges`).
    pub token_changes: crate::db::TokenChanges,
    /// SQL statements run on this service's pool (`TokenService.GetStats`).
    pub statements: crate::db::StatementCount,
}

impl AppState {
    /// Seconds since the epoch, from the injectable clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Runs `work` in a write transaction batched with other requests' (`db::writer`); it
    /// returns once the transaction is committed.
    pub async fn write<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<ServiceError> + From<diesel::result::Error> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Runs blocking database work on the blocking pool with a pooled connection.
    pub async fn db<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<ServiceError> + Send + 'static,
    {
        let pool = self.pool.clone();
        // What the work logs belongs to the request it runs for.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = crate::db::checkout(&pool).map_err(ServiceError::from)?;
            work(&mut conn)
        })
        .await
        .map_err(|e| E::from(ServiceError::from(e)))?
    }
}
