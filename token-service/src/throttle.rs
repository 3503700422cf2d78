//! Throttling of password checks (SEC-RL-01, SEC-RL-02): counters per account+IP and per
//! IP, incremented *before* the password is checked so that parallel guesses cannot slip
//! past. There is deliberately no account-wide lock: failures from other IPs never lock the
//! owner out (SEC-RL-02); the per-IP counter bounds how fast any one source can guess.
//!
//! The counters live in this process: with several token-service replicas each keeps its
//! own, which multiplies the limits by the replica count (documented in docs/tokens-and-security.md).

use std::collections::HashMap;
use std::sync::Mutex;

use doorward_shared::config::SignInLimitConfig;

#[derive(Debug, Clone, Copy)]
struct Window {
    started_at: i64,
    count: u32,
}

/// Fixed-window failure counters.
#[derive(Debug)]
pub struct SignInThrottle {
    limits: SignInLimitConfig,
    state: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    windows: HashMap<String, Window>,
    last_sweep: i64,
}

/// Entries kept before expired windows are swept (at most once a second).
const SWEEP_AT: usize = 100_000;
/// Entries beyond which, even after a sweep, the counters start over: memory stays bounded
/// whatever a flood of distinct IPs does.
const HARD_CAP: usize = 1_000_000;

impl SignInThrottle {
    /// Counters with the configured limits.
    pub fn new(limits: SignInLimitConfig) -> Self {
        Self {
            limits,
            state: Mutex::new(Windows::default()),
        }
    }

    fn keys(account: &str, ip: &str) -> [(String, u32); 2] {
        [
            (format!("a+i\u{0}{account}\u{0}{ip}"), 0),
            (format!("i\u{0}{ip}"), 1),
        ]
    }

    fn limit(&self, which: u32) -> u32 {
        match which {
            0 => self.limits.per_account_and_ip,
            _ => self.limits.per_ip,
        }
    }

    /// Counts an attempt on `account` (a stable key of the account, such as its id) from
    /// `ip`, or refuses it with the seconds until the window ends. Counting before the
    /// password is checked is what keeps parallel guesses within the limit (SEC-RL-01).
    pub fn attempt(&self, account: &str, ip: &str, now: i64) -> Result<(), u32> {
        let mut state = self.lock(now);
        self.refused(&state.windows, account, ip, now)?;
        self.count(&mut state.windows, account, ip, now);
        Ok(())
    }

    /// Refuses with the seconds until the window ends if `account` from `ip` is over a
    /// limit, without counting anything (for checks whose failures alone are counted).
    pub fn check(&self, account: &str, ip: &str, now: i64) -> Result<(), u32> {
        let state = self.lock(now);
        self.refused(&state.windows, account, ip, now)
    }

    /// Counts a failure of `account` from `ip`.
    pub fn record_failure(&self, account: &str, ip: &str, now: i64) {
        let mut state = self.lock(now);
        self.count(&mut state.windows, account, ip, now);
    }

    /// The counters, swept of expired windows now and then.
    fn lock(&self, now: i64) -> std::sync::MutexGuard<'_, Windows> {
        let window = self.limits.window_seconds.max(1);
        let mut state = match self.state.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.windows.len() > SWEEP_AT && now > state.last_sweep {
            state.last_sweep = now;
            state.windows.retain(|_, w| now < w.started_at + window);
            if state.windows.len() > HARD_CAP {
                tracing::warn!(target: "audit", event = "throttle_reset", "too many live throttle windows; starting over");
                state.windows.clear();
            }
        }
        state
    }

    fn refused(
        &self,
        windows: &HashMap<String, Window>,
        account: &str,
        ip: &str,
        now: i64,
    ) -> Result<(), u32> {
        let window = self.limits.window_seconds.max(1);
        let mut retry_after = 0;
        for (key, which) in &Self::keys(account, ip) {
            if let Some(w) = windows.get(key)
                && now < w.started_at + window
                && w.count >= self.limit(*which)
            {
                retry_after = retry_after.max((w.started_at + window - now) as u32);
            }
        }
        if retry_after > 0 {
            Err(retry_after)
        } else {
            Ok(())
        }
    }

    fn count(&self, windows: &mut HashMap<String, Window>, account: &str, ip: &str, now: i64) {
        let window = self.limits.window_seconds.max(1);
        for (key, _) in Self::keys(account, ip) {
            let entry = windows.entry(key).or_insert(Window {
                started_at: now,
                count: 0,
            });
            if now >= entry.started_at + window {
                *entry = Window {
                    started_at: now,
                    count: 0,
                };
            }
            entry.count += 1;
        }
    }

    /// A successful sign-in: the attempt it counted is forgiven.
    pub fn succeeded(&self, account: &str, ip: &str) {
        self.forgive(account, ip);
    }

    /// An attempt that was counted but never checked (the password hashing pool shed it):
    /// forgiven too, so that retrying through an overload cannot lock the user out.
    pub fn unchecked(&self, account: &str, ip: &str) {
        self.forgive(account, ip);
    }

    fn forgive(&self, account: &str, ip: &str) {
        let mut guard = match self.state.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (key, _) in Self::keys(account, ip) {
            if let Some(w) = guard.windows.get_mut(&key) {
                w.count = w.count.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> SignInThrottle {
        SignInThrottle::new(SignInLimitConfig {
            per_account_and_ip: 3,
            per_ip: 10,
            window_seconds: 60,
        })
    }

    #[test]
    fn sec_rl_01_refuses_past_the_limit_until_the_window_ends() {
        let t = throttle();
        for _ in 0..3 {
            t.attempt("alice", "1.1.1.1", 100).unwrap();
        }
        assert_eq!(t.attempt("alice", "1.1.1.1", 110), Err(50));
        t.attempt("alice", "1.1.1.1", 160).unwrap();
    }

    #[test]
    fn sec_rl_02_another_ip_is_not_locked_out() {
        let t = throttle();
        for _ in 0..3 {
            t.attempt("alice", "6.6.6.6", 100).unwrap();
        }
        assert!(t.attempt("alice", "6.6.6.6", 100).is_err());
        t.attempt("alice", "1.1.1.1", 100).unwrap();
    }
}
