//! Automatic rotation (`tokens.key_rotation_days`): when the keys of each purpose are due
//! for replacement, and the replacement itself, which goes through `keys rotate`'s own path
//! (`rotation::replace`) so that it publishes ahead and retires exactly as `keys rotate` does.

use super::error::KeyError;
use super::generate::PURPOSES;
use super::rotation::{RotationReason, replace};
use crate::db::models::SigningKeyRow;
use crate::db::{self, DbConnection};

const DAY_SECONDS: i64 = 86_400;

/// How often token-service replaces the keys of each purpose on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPolicy {
    /// Only `keys rotate` replaces keys (`tokens.key_rotation_days = 0`).
    Manual,
    /// A purpose's current key is replaced once it is this many seconds old.
    Every {
        /// The key's age at which it is replaced.
        seconds: i64,
    },
}

impl RotationPolicy {
    /// From `tokens.key_rotation_days` (0: manual).
    pub fn from_days(days: u32) -> Self {
        match days {
            0 => Self::Manual,
            days => Self::Every {
                seconds: i64::from(days) * DAY_SECONDS,
            },
        }
    }

    /// When the keys of `purpose` are next replaced: the creation of its current key plus
    /// the period. `None` when rotation is manual, or when `purpose` has no key yet (the
    /// first one is made at start-up).
    ///
    /// The current key is the newest one that is not revoked: the key that signs, or the
    /// one a rotation published to sign next. Counting from the key that signs would rotate
    /// again while the new key is still being published ahead.
    pub fn next_rotation(self, rows: &[SigningKeyRow], purpose: &str) -> Option<i64> {
        let Self::Every { seconds } = self else {
            return None;
        };
        current_key(rows, purpose).map(|key| key.created_at.saturating_add(seconds))
    }

    /// Whether the keys of `purpose` are due for replacement at `now`.
    pub fn is_due(self, rows: &[SigningKeyRow], purpose: &str, now: i64) -> bool {
        self.next_rotation(rows, purpose)
            .is_some_and(|at| at <= now)
    }
}

/// The key of `purpose` whose age the schedule counts: the newest one not revoked.
pub fn current_key<'a>(rows: &'a [SigningKeyRow], purpose: &str) -> Option<&'a SigningKeyRow> {
    rows.iter()
        .filter(|r| r.purpose == purpose && r.revoked_at.is_none())
        // On a tie (a rotation in the key's first second), the key not retired is newer.
        .max_by_key(|r| (r.created_at, r.retired_at.is_none()))
}

/// Replaces the keys of every purpose that is due at `now` (published `publish_ahead`
/// seconds before they sign), and returns the new keys: none when nothing was due, or when
/// another replica replaced them first. The decision is taken again under the key table's
/// write lock, so replicas on one database make one new key per purpose between them.
pub fn rotate_due(
    conn: &mut DbConnection,
    policy: RotationPolicy,
    publish_ahead: i64,
    now: i64,
) -> Result<Vec<SigningKeyRow>, KeyError> {
    if policy == RotationPolicy::Manual {
        return Ok(Vec::new());
    }
    // A read without the lock first: on almost every tick nothing is due, and no key is
    // generated and no write lock taken.
    let rows = db::signing_keys::list(conn)?;
    let due: Vec<&str> = PURPOSES
        .into_iter()
        .filter(|purpose| policy.is_due(&rows, purpose, now))
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let still_due = |rows: &[SigningKeyRow], purpose: &str| policy.is_due(rows, purpose, now);
    replace(
        conn,
        &due,
        publish_ahead,
        now,
        RotationReason::Scheduled,
        still_due,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate::{PURPOSE_ACCESS_TOKEN, PURPOSE_ID_TOKEN};

    fn key(purpose: &str, created_at: i64) -> SigningKeyRow {
        SigningKeyRow {
            kid: format!("{purpose}-{created_at}"),
            algorithm: "test".into(),
            purpose: purpose.into(),
            private_key: Vec::new(),
            public_jwk: String::new(),
            created_at,
            retired_at: None,
            revoked_at: None,
        }
    }

    const NINETY_DAYS: i64 = 90 * 86_400;

    #[test]
    fn days_become_seconds_and_zero_is_manual() {
        assert_eq!(RotationPolicy::from_days(0), RotationPolicy::Manual);
        assert_eq!(
            RotationPolicy::from_days(90),
            RotationPolicy::Every {
                seconds: NINETY_DAYS
            }
        );
        // The largest value the type holds does not overflow.
        assert_eq!(
            RotationPolicy::from_days(u32::MAX),
            RotationPolicy::Every {
                seconds: i64::from(u32::MAX) * 86_400
            }
        );
    }

    #[test]
    fn a_key_is_due_when_it_reaches_the_period_and_not_a_second_before() {
        let policy = RotationPolicy::from_days(90);
        let rows = [
            key(PURPOSE_ACCESS_TOKEN, 1_000),
            key(PURPOSE_ID_TOKEN, 5_000),
        ];
        assert_eq!(
            policy.next_rotation(&rows, PURPOSE_ACCESS_TOKEN),
            Some(1_000 + NINETY_DAYS)
        );
        assert!(!policy.is_due(&rows, PURPOSE_ACCESS_TOKEN, 1_000 + NINETY_DAYS - 1));
        assert!(policy.is_due(&rows, PURPOSE_ACCESS_TOKEN, 1_000 + NINETY_DAYS));
        // Each purpose keeps its own schedule.
        assert!(!policy.is_due(&rows, PURPOSE_ID_TOKEN, 1_000 + NINETY_DAYS));
        assert!(policy.is_due(&rows, PURPOSE_ID_TOKEN, 5_000 + NINETY_DAYS));
    }

    #[test]
    fn manual_rotation_is_never_due() {
        let rows = [key(PURPOSE_ACCESS_TOKEN, 0)];
        assert_eq!(
            RotationPolicy::Manual.next_rotation(&rows, PURPOSE_ACCESS_TOKEN),
            None
        );
        assert!(!RotationPolicy::Manual.is_due(&rows, PURPOSE_ACCESS_TOKEN, i64::MAX));
    }

    #[test]
    fn the_schedule_counts_from_the_key_published_ahead_not_the_one_still_signing() {
        let policy = RotationPolicy::from_days(90);
        let now = 1_000 + NINETY_DAYS;
        // Rotated at `now`: the old key signs for the publication lead, the new one waits.
        let old = SigningKeyRow {
            retired_at: Some(now + 10),
            ..key(PURPOSE_ACCESS_TOKEN, 1_000)
        };
        let rows = [key(PURPOSE_ACCESS_TOKEN, now), old];
        assert!(!policy.is_due(&rows, PURPOSE_ACCESS_TOKEN, now + 5));
        assert_eq!(
            policy.next_rotation(&rows, PURPOSE_ACCESS_TOKEN),
            Some(now + NINETY_DAYS)
        );
    }

    #[test]
    fn a_revoked_key_does_not_count_and_a_purpose_without_keys_waits_for_start_up() {
        let policy = RotationPolicy::from_days(1);
        let revoked = SigningKeyRow {
            revoked_at: Some(2_000),
            ..key(PURPOSE_ACCESS_TOKEN, 2_000)
        };
        let rows = [revoked, key(PURPOSE_ACCESS_TOKEN, 1_000)];
        assert_eq!(
            policy.next_rotation(&rows, PURPOSE_ACCESS_TOKEN),
            Some(1_000 + 86_400)
        );
        assert_eq!(policy.next_rotation(&rows, PURPOSE_ID_TOKEN), None);
        assert!(!policy.is_due(&rows, PURPOSE_ID_TOKEN, i64::MAX));
    }

    #[tokio::test]
    async fn a_scheduled_rotation_happens_once_however_often_it_is_asked_for() {
        let scratch = crate::testing::Scratch::new().await;
        let now = scratch.state.now();
        let policy = RotationPolicy::from_days(90);
        let later = now + NINETY_DAYS;
        let (fresh, rotated, again, lead, rows) = scratch
            .state
            .db(move |conn| -> Result<_, crate::error::ServiceError> {
                Ok((
                    rotate_due(conn, policy, 10, now)?,
                    rotate_due(conn, policy, 10, later)?,
                    rotate_due(conn, policy, 10, later)?,
                    rotate_due(conn, policy, 10, later + 5)?,
                    db::signing_keys::list(conn)?,
                ))
            })
            .await
            .unwrap();
        assert!(fresh.is_empty(), "fresh keys are not due");
        let mut purposes: Vec<_> = rotated.iter().map(|k| k.purpose.as_str()).collect();
        purposes.sort_unstable();
        assert_eq!(purposes, [PURPOSE_ACCESS_TOKEN, PURPOSE_ID_TOKEN]);
        assert!(again.is_empty() && lead.is_empty(), "rotated once");
        assert_eq!(rows.len(), 4);
        let replaced = rows.iter().filter(|r| r.retired_at == Some(later + 10));
        assert_eq!(replaced.count(), 2, "the old keys sign until the lead ends");
    }
}
