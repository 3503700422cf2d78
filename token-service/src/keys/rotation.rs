//! Where each key stands in its life (published ahead, signing, retired, expired, revoked)
//! and which key signs, at a given time; and `keys rotate` and `keys revoke`, which move
//! keys on.

use super::claims::ID_TOKEN_TTL_SECONDS;
use super::error::KeyError;
use super::generate::{PURPOSES, generate};
use crate::db::models::SigningKeyRow;
use crate::db::{self, DbConnection};

/// Where a key stands, as `keys list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens of its purpose.
    Signing,
    /// Published, and signs once its publication lead has passed.
    Published,
    /// No longer signs; published until the tokens it signed have expired.
    Retired,
    /// Retired long enough that no token it signed is still valid: not published.
    Expired,
    /// Marked compromised: not published, its tokens fail.
    Revoked,
}

impl KeyState {
    /// The name `keys list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Published => "published",
            Self::Retired => "retired",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// How long keys are published around their signing life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    /// How long a retired key stays published and trusted: until every token it signed has
    /// expired.
    pub published_for: i64,
    /// How long a new key is published before it signs.
    pub publish_ahead: i64,
}

impl KeyTimes {
    /// From the configuration: a retired key stays trusted until the last token it signed
    /// has expired (plus five minutes of clock skew and caching).
    pub fn from_config(config: &doorward_shared::config::Config) -> Self {
        Self {
            published_for: config
                .tokens
                .access_token_ttl_seconds
                .max(ID_TOKEN_TTL_SECONDS)
                + 300,
            publish_ahead: config.tokens.key_publish_ahead_seconds.max(0),
        }
    }
}

/// The state of every key of `rows` at `now`, in the order of `rows`.
pub fn key_states(rows: &[SigningKeyRow], now: i64, times: KeyTimes) -> Vec<KeyState> {
    let signers: Vec<Option<&str>> = PURPOSES
        .iter()
        .map(|purpose| signer(rows, purpose, now, times).map(|r| r.kid.as_str()))
        .collect();
    rows.iter()
        .map(|row| {
            if row.revoked_at.is_some() {
                KeyState::Revoked
            } else if signers.contains(&Some(row.kid.as_str())) {
                KeyState::Signing
            } else if !published(row, now, times) {
                KeyState::Expired
            } else if row.retired_at.is_some_and(|t| t <= now) {
                KeyState::Retired
            } else {
                KeyState::Published
            }
        })
        .collect()
}

pub(super) fn published(row: &SigningKeyRow, now: i64, times: KeyTimes) -> bool {
    row.revoked_at.is_none()
        && row
            .retired_at
            .is_none_or(|retired| now - retired < times.published_for)
}

/// The key that signs tokens of `purpose` at `now`: the newest one that has been published
/// for `publish_ahead` and is not retired; failing that, the oldest one that is not retired
/// (the first key ever, the key being replaced, or the successor of a revoked key).
/// `rows` come live-first, newest first.
pub(super) fn signer<'a>(
    rows: &'a [SigningKeyRow],
    purpose: &str,
    now: i64,
    times: KeyTimes,
) -> Option<&'a SigningKeyRow> {
    let may_sign = rows.iter().filter(|r| {
        r.purpose == purpose && r.revoked_at.is_none() && r.retired_at.is_none_or(|t| t > now)
    });
    may_sign
        .clone()
        .find(|r| r.created_at + times.publish_ahead <= now)
        // On a tie, the key being replaced (already given its retirement) is the older one.
        .or_else(|| may_sign.min_by_key(|r| (r.created_at, r.retired_at.is_none())))
}

/// Why a rotation happened, as its audit event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationReason {
    /// `keys rotate`.
    Manual,
    /// `tokens.key_rotation_days` (`schedule::rotate_due`).
    Scheduled,
}

impl RotationReason {
    /// The `reason` field of the `signing_key_rotated` audit event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
        }
    }
}

/// `keys rotate`: for each purpose, a new key is published now and signs once
/// `publish_ahead` has passed; the key it replaces signs until then and stays published
/// until its tokens have expired. Returns the new keys.
pub fn rotate(
    conn: &mut DbConnection,
    purposes: &[&str],
    publish_ahead: i64,
    now: i64,
) -> Result<Vec<SigningKeyRow>, KeyError> {
    let always = |_: &[SigningKeyRow], _: &str| true;
    replace(
        conn,
        purposes,
        publish_ahead,
        now,
        RotationReason::Manual,
        always,
    )
}

/// The one rotation path, for `keys rotate` and the schedule: a new key for each of
/// `purposes`, kept only where `still_wanted` holds of the keys as they are once the
/// transaction holds the key table's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL:
/// `lock_for_first_key`). So replicas that decide together to rotate on schedule make one
/// new key between them: the others see it and drop theirs. Returns the keys stored.
pub(super) fn replace(
    conn: &mut DbConnection,
    purposes: &[&str],
    publish_ahead: i64,
    now: i64,
    reason: RotationReason,
    still_wanted: impl Fn(&[SigningKeyRow], &str) -> bool,
) -> Result<Vec<SigningKeyRow>, KeyError> {
    // Generated before the transaction: RSA key generation takes a while, and the write
    // lock should not wait for it.
    let rows = purposes
        .iter()
        .map(|purpose| generate(purpose, now))
        .collect::<Result<Vec<_>, _>>()?;
    let stored = db::write_transaction(conn, |conn| -> Result<_, KeyError> {
        db::signing_keys::lock_for_first_key(conn)?;
        let current = db::signing_keys::list(conn)?;
        let mut stored = Vec::new();
        for row in rows {
            if still_wanted(&current, &row.purpose) {
                db::signing_keys::retire_live(conn, &row.purpose, now + publish_ahead)?;
                db::signing_keys::insert(conn, &row)?;
                stored.push(row);
            }
        }
        Ok(stored)
    })?;
    // After the commit: the audit log names only keys that exist.
    for row in &stored {
        tracing::info!(target: "audit", event = "signing_key_rotated", reason = reason.as_str(), kid = %row.kid, purpose = %row.purpose, signs_from = now + publish_ahead, "a new signing key is published");
    }
    Ok(stored)
}

/// `keys revoke KID`: a compromised key leaves the key set at once and every token it
/// signed fails (SEC-JW-08). If it was signing, a new key of its purpose takes over
/// immediately. Returns the replacement, if one was made.
pub fn revoke(
    conn: &mut DbConnection,
    kid: &str,
    now: i64,
) -> Result<Option<SigningKeyRow>, KeyError> {
    let purpose = db::signing_keys::list(conn)?
        .into_iter()
        .find(|r| r.kid == kid)
        .map(|r| r.purpose)
        .ok_or_else(|| KeyError::UnknownKid(kid.to_owned()))?;
    let replacement = generate(&purpose, now)?;
    db::write_transaction(conn, |conn| {
        db::signing_keys::lock_for_first_key(conn)?;
        db::signing_keys::revoke(conn, kid, now)?;
        tracing::warn!(target: "audit", event = "signing_key_revoked", kid, purpose = %purpose, "a signing key was revoked; its tokens fail from now on");
        let rows = db::signing_keys::list(conn)?;
        let at_once = KeyTimes {
            published_for: 0,
            publish_ahead: 0,
        };
        if signer(&rows, &purpose, now, at_once).is_some() {
            return Ok(None);
        }
        db::signing_keys::insert(conn, &replacement)?;
        Ok(Some(replacement))
    })
}
