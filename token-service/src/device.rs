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

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;
use doorward_shared::secret::random_token;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::clients;
use crate::db::models::{DeviceGrantRow, NewDeviceGrant};
use crate::db::{self, device_grants};
use crate::error::{GrantError, OAuthFailure, ServiceError};
use crate::grants;
use crate::grpc::convert;
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

/// `POST /oauth/authorize_device` (RFC 8628 §3.1-3.2).
pub async fn start(
    state: &AppState,
    request: pb::StartDeviceAuthorizationRequest,
) -> Result<pb::DeviceAuthorization, GrantError> {
    let client = request.client.clone();
    let context = request.context.clone();
    grants::client_auth_throttled(
        state,
        client.as_ref(),
        context.as_ref(),
        start_unthrottled(state, request),
    )
    .await
}

async fn start_unthrottled(
    state: &AppState,
    request: pb::StartDeviceAuthorizationRequest,
) -> Result<pb::DeviceAuthorization, GrantError> {
    let state2 = state.clone();
    state
        .db(move |conn| {
            let now = state2.now();
            let app = clients::authenticate(&state2.clients, conn, request.client.as_ref(), now)?;
            grants::require_grant(&app, doorward_shared::GrantType::DeviceCode)?;
            let scopes = grants::resolve_scopes(request.scope.as_deref(), &app)?;
            let scopes = scopes.to_string();
            let ttl = state2.config.device.code_ttl_seconds;
            let interval = state2.config.device.polling_interval_seconds;
            // A user code equal to another's (live or not yet cleaned up) is drawn again.
            for _ in 0..5 {
                let device_code = random_token();
                let user_code = generate_user_code();
                let normalized = normalize_user_code(&user_code).unwrap_or_default();
                let row = NewDeviceGrant {
                    device_code_hash: device_code.sha256().to_vec(),
                    user_code_hash: user_code_hash(&state2.refresh_derivation_key, &normalized),
                    application_id: app.id,
                    scopes: &scopes,
                    status: device_grants::PENDING,
                    polling_interval: interval,
                    created_at: now,
                    expires_at: now + ttl,
                };
                match device_grants::insert(conn, &row) {
                    Ok(()) => {
                        return Ok(pb::DeviceAuthorization {
                            device_code: device_code.expose().to_owned(),
                            user_code,
                            expires_in: ttl,
                            interval,
                        });
                    }
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                    Err(e) => return Err(ServiceError::from(e).into()),
                }
            }
            Err(ServiceError::from(DieselError::RollbackTransaction).into())
        })
        .await
}

fn lookup_error(code: ErrorCode, description: &'static str) -> pb::LookupUserCodeResponse {
    pb::LookupUserCodeResponse {
        result: Some(pb::lookup_user_code_response::Result::Error(
            OAuthFailure::with(code, description).to_proto(),
        )),
    }
}

/// Where a user code stands, for the verification page.
enum Found {
    Pending(DeviceGrantRow),
    Refused(pb::LookupUserCodeResponse),
}

/// Finds a pending user code, counting wrong ones against the user and the IP.
async fn find_pending(
    state: &AppState,
    user_code: &str,
    user_id: i64,
    ip: &str,
) -> Result<Found, ServiceError> {
    let now = state.now();
    let account = format!("user:{user_id}");
    if let Err(retry_after) = state.device_throttle.check(&account, ip, now) {
        tracing::warn!(target: "audit", event = "user_code_throttled", client_ip = %ip, user_id, "too many wrong user codes");
        let mut failure = OAuthFailure::with(
            ErrorCode::SlowDown,
            "Too many wrong codes. Wait a little before you try again.",
        );
        failure.retry_after_seconds = retry_after;
        return Ok(Found::Refused(pb::LookupUserCodeResponse {
            result: Some(pb::lookup_user_code_response::Result::Error(
                failure.to_proto(),
            )),
        }));
    }
    let found = match normalize_user_code(user_code) {
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
        return Ok(Found::Refused(lookup_error(
            ErrorCode::InvalidGrant,
            "The user code is invalid.",
        )));
    };
    if row.expires_at <= now {
        return Ok(Found::Refused(lookup_error(
            ErrorCode::ExpiredToken,
            "The user code is expired. Start again on your device.",
        )));
    }
    if row.status != device_grants::PENDING {
        return Ok(Found::Refused(lookup_error(
            ErrorCode::InvalidGrant,
            "The user code has already been used. Start again on your device.",
        )));
    }
    Ok(Found::Pending(row))
}

async fn pending_response(
    state: &AppState,
    row: DeviceGrantRow,
    status: &str,
) -> Result<pb::LookupUserCodeResponse, ServiceError> {
    let application_id = row.application_id;
    let app = state
        .db(move |conn| Ok::<_, ServiceError>(db::applications::find(conn, application_id)?))
        .await?;
    let Some(app) = app else {
        return Ok(lookup_error(
            ErrorCode::InvalidGrant,
            "The user code is invalid.",
        ));
    };
    Ok(pb::LookupUserCodeResponse {
        result: Some(pb::lookup_user_code_response::Result::Pending(
            pb::PendingDeviceAuthorization {
                application: Some(convert::application(&app)),
                scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
                expires_at: row.expires_at,
                status: status.to_owned(),
            },
        )),
    })
}

/// The verification page: what does this user code ask for?
pub async fn lookup(
    state: &AppState,
    request: pb::LookupUserCodeRequest,
) -> Result<pb::LookupUserCodeResponse, ServiceError> {
    let ip = request.context.map(|c| c.client_ip).unwrap_or_default();
    match find_pending(state, &request.user_code, request.user_id, &ip).await? {
        Found::Refused(response) => Ok(response),
        Found::Pending(row) => pending_response(state, row, device_grants::PENDING).await,
    }
}

/// The user approves or denies (SEC-DV-05: only ever from an explicit POST of a
/// signed-in user; auth-web checks the session and CSRF).
pub async fn decide(
    state: &AppState,
    request: pb::DecideUserCodeRequest,
) -> Result<pb::LookupUserCodeResponse, ServiceError> {
    let ip = request.context.map(|c| c.client_ip).unwrap_or_default();
    let row = match find_pending(state, &request.user_code, request.user_id, &ip).await? {
        Found::Refused(response) => return Ok(response),
        Found::Pending(row) => row,
    };
    let now = state.now();
    let status = if request.approve {
        device_grants::APPROVED
    } else {
        device_grants::DENIED
    };
    let (id, user_id) = (row.id, request.user_id);
    let recorded = state
        .db(move |conn| {
            // The user must still be active when approving.
            let active = db::users::find(conn, user_id)?.is_some_and(|u| u.is_active());
            if !active {
                return Ok::<_, ServiceError>(false);
            }
            Ok(device_grants::decide(conn, id, user_id, status, now)?)
        })
        .await?;
    if !recorded {
        return Ok(lookup_error(
            ErrorCode::InvalidGrant,
            "The user code has already been used. Start again on your device.",
        ));
    }
    tracing::info!(target: "audit", event = "device_authorization_decided", device_grant_id = id, user_id, decision = status, "a device authorization was decided");
    pending_response(state, row, status).await
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
