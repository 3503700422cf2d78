//! Password hashing with argon2id on a fixed set of hashing threads, so that a burst of
//! sign-ins can neither exhaust memory (each hash holds ~19 MiB) nor starve the token
//! endpoint (SEC-DS-02). Requests beyond the queue are shed.

mod pool;

use std::sync::Arc;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{Semaphore, oneshot};

use doorward_shared::Secret;
use doorward_shared::config::PasswordConfig;
use doorward_shared::secret::{constant_time_eq, random_bytes};

use pool::{HashPool, Workspace};

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
    /// One per hashing thread: a caller holds one from handing its job over until the job
    /// is done, so a job never waits in the pool's channel for a thread.
    slots: Arc<Semaphore>,
    /// Admission tickets: running plus queued hashes allowed before shedding. A ticket is
    /// an owned permit, so a request that is cancelled while it waits gives it back.
    admission: Arc<Semaphore>,
    pool: HashPool,
    max_length: usize,
    /// Verified against when the user does not exist, so that both cases take as long.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    /// A pool with the configured parameters; starts its hashing threads.
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
        let pool = HashPool::start(concurrency, params.block_count())?;
        let dummy_hash = dummy_hash(&params)?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency)),
            admission: Arc::new(Semaphore::new(concurrency + config.max_queued_hashes)),
            pool,
            max_length: config.max_length,
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// Hashes a new password (PHC string, random 16-byte salt).
    pub async fn hash(&self, password: &Secret) -> Result<String, HashError> {
        self.check_length(password)?;
        let params = self.params.clone();
        let password = password.clone();
        self.run(move |workspace| hash_with(workspace, &params, password.expose()))
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
        self.run(move |workspace| {
            let parsed =
                PasswordHash::new(&stored).map_err(|e| HashError::Internal(e.to_string()))?;
            let ok = matches(workspace, &parsed, password.expose().as_bytes());
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
                Some(hash_with(workspace, &params, password.expose())?)
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
        work: impl FnOnce(&mut Workspace) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _ticket = self.admission.clone().try_acquire_owned().map_err(|_| {
            crate::metrics::METRICS.hash_shed.inc();
            HashError::Overloaded
        })?;
        let queued = Queued::enter();
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Internal(e.to_string()))?;
        drop(queued);
        let (reply, answer) = oneshot::channel();
        // The slot moves into the job and is freed when the thread is done with it, so
        // handed-over jobs never outnumber the threads, even when callers go away.
        self.pool.submit(Box::new(move |workspace| {
            let _permit = permit;
            if reply.is_closed() {
                return; // The caller went away: nobody wants this hash.
            }
            let _ = reply.send(work(workspace));
        }))?;
        answer
            .await
            .map_err(|_| HashError::Internal("the hashing job was dropped".to_owned()))?
    }
}

/// A hash waiting for a slot, counted in `doorward_password_hash_queue_depth` until it
/// gets one or its caller goes away.
struct Queued;

impl Queued {
    fn enter() -> Self {
        crate::metrics::METRICS.hash_queue_depth.inc();
        Self
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        crate::metrics::METRICS.hash_queue_depth.dec();
    }
}

/// A PHC string for `password` with a fresh 16-byte salt, as `argon2::PasswordHasher` would
/// write it, computed in the thread's buffer.
/// What an unknown user's password is checked against: a hash of today's parameters with a
/// random salt and a random output. Verifying any password against it costs one argon2 run,
/// as for a real user, and never succeeds; making it costs no hashing (and no hashing
/// thread's buffer at start-up, which kept an idle service ~38 MiB larger).
fn dummy_hash(params: &Params) -> Result<String, HashError> {
    let internal = |e: &dyn std::fmt::Display| HashError::Internal(e.to_string());
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| internal(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| internal(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&random_bytes::<32>()).map_err(|e| internal(&e))?),
    };
    Ok(phc.to_string())
}

fn hash_with(
    workspace: &mut Workspace,
    params: &Params,
    password: &str,
) -> Result<String, HashError> {
    let internal = |e: &dyn std::fmt::Display| HashError::Internal(e.to_string());
    let salt_bytes = random_bytes::<16>();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| internal(&e))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    workspace
        .hash_into(&argon2, password.as_bytes(), &salt_bytes, &mut out)
        .map_err(|e| internal(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| internal(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to `stored`'s hash with `stored`'s algorithm, version,
/// parameters and salt (what `PasswordVerifier::verify_password` does, in the thread's
/// buffer). Anything unusable in `stored` is a mismatch.
fn matches(workspace: &mut Workspace, stored: &PasswordHash<'_>, password: &[u8]) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    // Takes the output length from the stored hash.
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let mut computed = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    workspace
        .hash_into(&argon2, password, salt, &mut computed)
        .is_ok()
        && constant_time_eq(&computed, expected.as_bytes())
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
    async fn hashes_match_the_argon2_crates_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(&config()).unwrap();
        let reference = argon2::Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        );
        // Ours verify with the crate's verifier...
        let ours = hasher.hash(&Secret::new("pw-compat")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(reference.verify_password(b"pw-compat", &parsed).is_ok());
        // ...and the crate's (as stored before the hashing threads) verify with ours, also
        // after the thread's buffer held other hashes.
        let salt = SaltString::encode_b64(&random_bytes::<16>()).unwrap();
        let theirs = reference
            .hash_password(b"pw-compat", &salt)
            .unwrap()
            .to_string();
        for _ in 0..3 {
            assert_eq!(
                hasher
                    .verify(Some(&theirs), &Secret::new("pw-compat"))
                    .await
                    .unwrap(),
                Verified::Yes(None)
            );
            assert_eq!(
                hasher
                    .verify(Some(&theirs), &Secret::new("pw-compaT"))
                    .await
                    .unwrap(),
                Verified::No
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sec_ds_02_many_concurrent_hashes_all_finish_or_are_shed() {
        let hasher = PasswordHasher::new(&PasswordConfig {
            max_concurrent_hashes: Some(2),
            max_queued_hashes: 16,
            ..config()
        })
        .unwrap();
        let stored = hasher.hash(&Secret::new("pw-burst")).await.unwrap();
        // Far more at once than the threads and the queue hold: each is answered, either
        // with a verdict or shed as overloaded, and nothing else.
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..200 {
            let hasher = hasher.clone();
            let stored = stored.clone();
            burst.spawn(async move {
                let password = if i % 2 == 0 { "pw-burst" } else { "wrong-pw" };
                (
                    i,
                    hasher.verify(Some(&stored), &Secret::new(password)).await,
                )
            });
        }
        let (mut verified, mut shed) = (0, 0);
        while let Some(joined) = burst.join_next().await {
            match joined.unwrap() {
                (i, Ok(Verified::Yes(None))) if i % 2 == 0 => verified += 1,
                (i, Ok(Verified::No)) if i % 2 == 1 => verified += 1,
                (_, Err(HashError::Overloaded)) => shed += 1,
                (i, other) => panic!("request {i}: {other:?}"),
            }
        }
        assert_eq!(verified + shed, 200);
        assert!(
            verified >= 18,
            "at least the threads' and the queue's worth ran"
        );
        // Afterwards the pool works as before, one request after another.
        for _ in 0..20 {
            assert_eq!(
                hasher
                    .verify(Some(&stored), &Secret::new("pw-burst"))
                    .await
                    .unwrap(),
                Verified::Yes(None)
            );
        }
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
