//! Password hashing with argon2id on a bounded pool of blocking threads, so that a burst
//! of sign-ins can neither exhaust memory (each hash holds ~19 MiB) nor starve the token
//! endpoint (SEC-DS-02). Requests beyond the queue are shed.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use doorward_shared::Secret;
use doorward_shared::config::PasswordConfig;
use doorward_shared::secret::random_bytes;

/// Why hashing did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are queued; the caller should answer 503.
    #[error("the password hashing pool is saturated")]
    Overloaded,
    /// Over the configured maximum length (checked before hashing).
    #[error("the password is longer than {0} bytes")]
    TooLong(usize),
    /// Argon2 failed (bad parameters) or the worker thread died.
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or no such user).
    No,
    /// Right password; `Some(new_hash)` when the stored hash used older parameters.
    Yes(Option<String>),
}

/// The bounded argon2id pool.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    /// Admission tickets: running plus queued hashes allowed before shedding. A ticket is
    /// an owned permit, so a request that is cancelled while it waits gives it back.
    admission: Arc<Semaphore>,
    max_length: usize,
    /// Verified against when the user does not exist, so that both cases take as long.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    /// A pool with the configured parameters.
    pub fn new(config: &PasswordConfig) -> Result<Self, HashError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let concurrency = config
            .max_concurrent_hashes
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        let dummy_hash = hash_with(&params, "doorward-dummy-password")?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency)),
            admission: Arc::new(Semaphore::new(concurrency + config.max_queued_hashes)),
            max_length: config.max_length,
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// Hashes a new password (PHC string, random 16-byte salt).
    pub async fn hash(&self, password: &Secret) -> Result<String, HashError> {
        self.check_length(password)?;
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || hash_with(&params, password.expose()))
            .await
    }

    /// Verifies `password` against `stored` (or against a dummy hash when there is no
    /// user, taking the same time).
    pub async fn verify(
        &self,
        stored: Option<&str>,
        password: &Secret,
    ) -> Result<Verified, HashError> {
        self.check_length(password)?;
        let user_exists = stored.is_some();
        let stored = stored.map_or_else(|| self.dummy_hash.as_str().to_owned(), str::to_owned);
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || {
            let parsed =
                PasswordHash::new(&stored).map_err(|e| HashError::Internal(e.to_string()))?;
            let ok = argon2(&params)
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok();
            if !ok || !user_exists {
                return Ok(Verified::No);
            }
            // SEC-SL-02: re-hash when the stored parameters are not today's.
            let current = Params::try_from(&parsed).ok();
            let outdated = current.is_none_or(|p| {
                p.m_cost() != params.m_cost()
                    || p.t_cost() != params.t_cost()
                    || p.p_cost() != params.p_cost()
            });
            let rehash = if outdated {
                Some(hash_with(&params, password.expose())?)
            } else {
                None
            };
            Ok(Verified::Yes(rehash))
        })
        .await
    }

    fn check_length(&self, password: &Secret) -> Result<(), HashError> {
        if password.expose().len() > self.max_length {
            return Err(HashError::TooLong(self.max_length));
        }
        Ok(())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _ticket = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Overloaded)?;
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Internal(e.to_string()))?;
        // The slot moves into the blocking task: if the caller goes away, the hash still
        // finishes before its slot is free, so running hashes never exceed the slots.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))?
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| HashError::Internal(e.to_string()))?;
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..PasswordConfig::default()
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(&config()).unwrap();
        let hash = hasher.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        // SEC-SL-02: a 16-byte salt (22 base64 characters) in the PHC string.
        let salt = hash.split('$').nth(4).unwrap();
        assert_eq!(salt.len(), 22);
        assert_eq!(
            hasher
                .verify(Some(&hash), &Secret::new("correct horse"))
                .await
                .unwrap(),
            Verified::Yes(None)
        );
        assert_eq!(
            hasher
                .verify(Some(&hash), &Secret::new("wrong"))
                .await
                .unwrap(),
            Verified::No
        );
        assert_eq!(
            hasher.verify(None, &Secret::new("x")).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn sec_sl_02_outdated_parameters_are_rehashed() {
        let old = PasswordHasher::new(&config()).unwrap();
        let hash = old.hash(&Secret::new("pw-123456")).await.unwrap();
        let new = PasswordHasher::new(&PasswordConfig {
            argon2_memory_kib: 2048,
            ..config()
        })
        .unwrap();
        match new
            .verify(Some(&hash), &Secret::new("pw-123456"))
            .await
            .unwrap()
        {
            Verified::Yes(Some(rehash)) => assert!(rehash.contains("m=2048,t=1,p=1")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn cancelled_requests_give_their_admission_back() {
        let hasher = PasswordHasher::new(&PasswordConfig {
            max_concurrent_hashes: Some(1),
            max_queued_hashes: 1,
            ..config()
        })
        .unwrap();
        // Start and abandon many more requests than there is room for.
        for _ in 0..50 {
            let secret = Secret::new("abandoned-pw");
            let pending = hasher.hash(&secret);
            let _ = tokio::time::timeout(std::time::Duration::from_micros(1), pending).await;
        }
        // Every abandoned request gave its ticket back: new work is admitted.
        let mut admitted = false;
        for _ in 0..200 {
            match hasher.hash(&Secret::new("after-the-storm")).await {
                Ok(_) => {
                    admitted = true;
                    break;
                }
                Err(HashError::Overloaded) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(admitted);
    }

    #[tokio::test]
    async fn sec_ds_02_overlong_passwords_are_refused_before_hashing() {
        let hasher = PasswordHasher::new(&config()).unwrap();
        let long = Secret::new("x".repeat(1_000_000));
        assert!(matches!(
            hasher.verify(None, &long).await,
            Err(HashError::TooLong(1024))
        ));
    }
}
