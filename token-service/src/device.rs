//! The device authorization grant (RFC 8628), user side: starting an authorization
//! (`POST /oauth/authorize_device`), looking a user code up on the verification page and
//! recording the user's decision. Polling is `grants::device_code`.
//!
//! User codes are 8 characters from an unambiguous alphabet (20 consonants, ≈34.5 bits;
//! SEC-DV-01 in `docs/security-model.md`), shown as `XXXX-XXXX` and accepted in any case,
//! with or without the dash and spaces. Both codes are stored as hashes only: the device code as its
//! SHA-256 (32 random bytes need nothing slower), the short user code as an HMAC under a
//! server key, so that a database dump does not let anyone enumerate live user codes.
//! Wrong user codes are counted per user and IP and per IP (SEC-DV-02); a success does not
//! reset the counters.

use diesel::Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use doorward_shared::secret::random_token;
use doorward_shared::{ErrorCode, GrantType, Secret};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::clients::{self, ClientAuth};
use crate::db::device_grants::{self, DeviceStatus};
use crate::db::models::{ApplicationRow, DeviceGrantRow, NewDeviceGrant};
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, Outcome, ServiceError};
use crate::grants::rules;
use crate::state::AppState;

/// RFC 8628 §6.1: consonants only, no vowels (no words), no look-alikes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code.
pub const USER_CODE_LEN: usize = 8;

/// A fresh user code, as shown: `XXXX-XXXX`.
pub fn generate_user_code() -> String {
    let mut rng = rand::rng();
    let mut code = String::with_capacity(USER_CODE_LEN + 1);
    for i in 0..USER_CODE_LEN {
        if i == USER_CODE_LEN / 2 {
            code.push('-');
        }
        let index = rng.random_range(0..USER_CODE_ALPHABET.len());
        code.push(char::from(USER_CODE_ALPHABET[index]));
    }
    code
}

/// The canonical form of what a user typed: upper case, without dashes and spaces; `None`
/// if it cannot be a user code.
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\u{2010}'..='\u{2015}'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// What is stored for a user code: HMAC-SHA-256 under the server key.
pub fn user_code_hash(key: &[u8], normalized: &str) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(b"doorward user code\0");
    mac.update(normalized.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A started device authorization (RFC 8628 §3.2).
#[derive(Debug)]
pub struct DeviceAuthorization {
    /// The device code, in plaintext (only its hash is stored).
    pub device_code: Secret,
    /// The user code, as shown: `XXXX-XXXX`.
    pub user_code: String,
    /// Seconds until both codes expire.
    pub expires_in: i64,
    /// Seconds the device waits between polls.
    pub interval: i64,
}

/// A device authorization as the verification page shows it.
#[derive(Debug)]
pub struct Pending {
    /// The application asking.
    pub application: ApplicationRow,
    /// The scopes it asks for.
    pub scopes: Vec<String>,
    /// When the user code expires.
    pub expires_at: i64,
    /// Pending, approved or denied.
    pub status: DeviceStatus,
}

/// A user code as the signed-in user typed it on the verification page.
#[derive(Debug)]
pub struct UserCodeEntry {
    /// What the user typed.
    pub user_code: String,
    /// The signed-in user.
    pub user_id: i64,
    /// The user's IP (wrong codes are counted per user and IP).
    pub client_ip: String,
}

/// `POST /oauth/authorize_device` (RFC 8628 §3.1-3.2), under the client-authentication
/// throttle as the token endpoint is.
pub async fn start(
    state: &AppState,
    client: Option<ClientAuth>,
    client_ip: &str,
    scope: Option<String>,
) -> Result<DeviceAuthorization, GrantError> {
    clients::throttled(state, client.as_ref(), client_ip, async {
        let app = clients::authenticate_async(state, client.as_ref(), state.now()).await?;
        rules::require_grant(&app, GrantType::DeviceCode)?;
        let registered = rules::registered_scopes(&app)?;
        let scopes = rules::resolve_scopes(scope.as_deref(), &registered)?;
        let state2 = state.clone();
        let authorization = state
            .write(move |conn| store(&state2, conn, &app, &scopes.to_string()))
            .await?;
        Ok(authorization)
    })
    .await
}

/// Stores a new device authorization. A user code equal to another's (live or not yet
/// cleaned up) is drawn again, in a savepoint of its own so that the batch goes on.
fn store(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    scopes: &str,
) -> Result<DeviceAuthorization, ServiceError> {
    let now = state.now();
    let ttl = state.config.device.code_ttl_seconds;
    let interval = state.config.device.polling_interval_seconds;
    for _ in 0..5 {
        let device_code = random_token();
        let user_code = generate_user_code();
        let normalized = normalize_user_code(&user_code).unwrap_or_default();
        let row = NewDeviceGrant {
            device_code_hash: device_code.sha256().to_vec(),
            user_code_hash: user_code_hash(&state.refresh_derivation_key, &normalized),
            application_id: app.id,
            scopes,
            status: DeviceStatus::Pending.as_str(),
            polling_interval: interval,
            created_at: now,
            expires_at: now + ttl,
        };
        match conn.transaction(|conn| device_grants::insert(conn, &row)) {
            Ok(()) => {
                return Ok(DeviceAuthorization {
                    device_code,
                    user_code,
                    expires_in: ttl,
                    interval,
                });
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(DieselError::RollbackTransaction.into())
}

/// A refusal of the verification page.
fn refused(code: ErrorCode, description: &'static str) -> Outcome<Pending> {
    Outcome::Refused(OAuthFailure::with(code, description))
}

/// Finds a pending user code, counting wrong ones against the user and the IP.
async fn find_pending(
    state: &AppState,
    entry: &UserCodeEntry,
) -> Result<Outcome<DeviceGrantRow>, ServiceError> {
    let now = state.now();
    let (ip, user_id) = (entry.client_ip.as_str(), entry.user_id);
    let account = format!("user:{user_id}");
    if let Err(retry_after) = state.device_throttle.check(&account, ip, now) {
        crate::metrics::throttled(crate::metrics::Throttle::DeviceUserCode);
        tracing::warn!(target: "audit", event = "user_code_throttled", client_ip = %ip, user_id, "too many wrong user codes");
        let mut failure = OAuthFailure::with(
            ErrorCode::SlowDown,
            "Too many wrong codes. Wait a little before you try again.",
        );
        failure.retry_after_seconds = retry_after;
        return Ok(Outcome::Refused(failure));
    }
    let found = match normalize_user_code(&entry.user_code) {
        Some(normalized) => {
            let hash = user_code_hash(&state.refresh_derivation_key, &normalized);
            state
                .db(move |conn| {
                    Ok::<_, ServiceError>(device_grants::find_by_user_code_hash(conn, &hash)?)
                })
                .await?
        }
        None => None,
    };
    let Some(row) = found else {
        state.device_throttle.record_failure(&account, ip, now);
        return Ok(Outcome::Refused(OAuthFailure::with(
            ErrorCode::InvalidGrant,
            "The user code is invalid.",
        )));
    };
    Ok(usable(row, now))
}

/// A found user code, if it can still be decided.
fn usable(row: DeviceGrantRow, now: i64) -> Outcome<DeviceGrantRow> {
    if row.expires_at <= now {
        return Outcome::Refused(OAuthFailure::with(
            ErrorCode::ExpiredToken,
            "The user code is expired. Start again on your device.",
        ));
    }
    if row.status != DeviceStatus::Pending {
        return Outcome::Refused(OAuthFailure::with(
            ErrorCode::InvalidGrant,
            "The user code has already been used. Start again on your device.",
        ));
    }
    Outcome::Done(row)
}

/// What the verification page shows of a pending authorization.
async fn pending(
    state: &AppState,
    row: DeviceGrantRow,
    status: DeviceStatus,
) -> Result<Outcome<Pending>, ServiceError> {
    let application_id = row.application_id;
    let app = state
        .db(move |conn| Ok::<_, ServiceError>(db::applications::find(conn, application_id)?))
        .await?;
    let Some(application) = app else {
        return Ok(refused(
            ErrorCode::InvalidGrant,
            "The user code is invalid.",
        ));
    };
    Ok(Outcome::Done(Pending {
        application,
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        expires_at: row.expires_at,
        status,
    }))
}

/// The verification page: what does this user code ask for?
pub async fn lookup(
    state: &AppState,
    entry: &UserCodeEntry,
) -> Result<Outcome<Pending>, ServiceError> {
    match find_pending(state, entry).await? {
        Outcome::Refused(failure) => Ok(Outcome::Refused(failure)),
        Outcome::Done(row) => pending(state, row, DeviceStatus::Pending).await,
    }
}

/// The user approves or denies (SEC-DV-05: only ever from an explicit POST of a
/// signed-in user; auth-web checks the session and CSRF).
pub async fn decide(
    state: &AppState,
    entry: &UserCodeEntry,
    approve: bool,
) -> Result<Outcome<Pending>, ServiceError> {
    let row = match find_pending(state, entry).await? {
        Outcome::Refused(failure) => return Ok(Outcome::Refused(failure)),
        Outcome::Done(row) => row,
    };
    let now = state.now();
    let status = if approve {
        DeviceStatus::Approved
    } else {
        DeviceStatus::Denied
    };
    let (id, user_id) = (row.id, entry.user_id);
    let recorded = state
        .write(move |conn| {
            // The user must still be active when approving.
            let active = db::users::find(conn, user_id)?.is_some_and(|u| u.is_active());
            if !active {
                return Ok::<_, ServiceError>(false);
            }
            Ok(device_grants::decide(conn, id, user_id, status, now)?)
        })
        .await?;
    if !recorded {
        return Ok(refused(
            ErrorCode::InvalidGrant,
            "The user code has already been used. Start again on your device.",
        ));
    }
    tracing::info!(target: "audit", event = "device_authorization_decided", device_grant_id = id, user_id, decision = status.as_str(), "a device authorization was decided");
    pending(state, row, status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sec_dv_01_user_codes_have_the_alphabet_length_and_no_repeats() {
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let code = generate_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            let normalized = normalize_user_code(&code).expect("a generated code is valid");
            assert!(normalized.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
            seen.insert(normalized);
        }
        // 20^8 ≈ 2.6e10 codes: 100k draws repeat about 0.2 times on average (and more than
        // five times with a probability near 1e-6); many repeats mean a broken generator.
        // Live codes are unique anyway: the column is UNIQUE and `start` draws again.
        assert!(seen.len() >= 99_995, "{} distinct of 100000", seen.len());
    }

    #[test]
    fn sec_dv_01_entry_is_case_insensitive_and_ignores_dashes_and_spaces() {
        assert_eq!(normalize_user_code("wdjb-mjht"), Some("WDJBMJHT".into()));
        assert_eq!(normalize_user_code("WDJBMJHT"), Some("WDJBMJHT".into()));
        assert_eq!(normalize_user_code(" wdjb mjht "), Some("WDJBMJHT".into()));
        assert_eq!(normalize_user_code("WDJB-MJH"), None, "too short");
        assert_eq!(normalize_user_code("WDJB-MJHA"), None, "a vowel");
        assert_eq!(normalize_user_code("WDJB-MJH1"), None, "a digit");
        assert_eq!(normalize_user_code(&"B".repeat(100)), None);
        let key = b"k";
        assert_eq!(
            user_code_hash(key, "WDJBMJHT"),
            user_code_hash(key, &normalize_user_code("wdjb-mjht").unwrap())
        );
        assert_ne!(
            user_code_hash(key, "WDJBMJHT"),
            user_code_hash(b"other", "WDJBMJHT")
        );
    }
}
