//! Token revocation (RFC 7009) and introspection (RFC 7662), with the caller rules of
//! SEC-IR-01..03: callers authenticate; a client sees and revokes only its own tokens; every
//! other case looks the same from outside (`{"active":false}`, or 200 without revoking).

use doorward_shared::ErrorCode;
use doorward_shared::secret::sha256;

use crate::clients::{self, ClientAuth};
use crate::db::models::{AccessTokenRow, ApplicationRow};
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, Outcome, ServiceError};
use crate::grants::rules;
use crate::issuance::subject;
use crate::keys::MAX_TOKEN_LEN;
use crate::state::AppState;
use crate::validation::{self, Inactive};

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug)]
pub struct RevokeRequest {
    /// The client's credentials, if it sent any.
    pub client: Option<ClientAuth>,
    /// The token to revoke.
    pub token: String,
    /// `token_type_hint`, not trusted.
    pub token_type_hint: Option<String>,
}

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug)]
pub struct IntrospectRequest {
    /// The client's credentials, if it authenticates as a client.
    pub client: Option<ClientAuth>,
    /// The caller's own bearer token, if it authenticates with one.
    pub caller_bearer_token: Option<String>,
    /// The token asked about.
    pub token: String,
    /// `token_type_hint`, not trusted.
    pub token_type_hint: Option<String>,
}

/// The RFC 7662 §2.2 answer; an inactive token says nothing else.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is active for the caller.
    pub active: bool,
    /// Its scopes, space-separated.
    pub scope: String,
    /// Its client.
    pub client_id: String,
    /// Its user's username (empty for a client's own token).
    pub username: String,
    /// `Bearer` or `refresh_token`.
    pub token_type: String,
    /// Expiry.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Token id.
    pub jti: String,
}

/// A presented token, as found in the database.
enum Presented {
    /// An access token (its JWT verified, expiry aside).
    Access(AccessTokenRow),
    /// A refresh token, found by its hash.
    Refresh(AccessTokenRow),
}

impl Presented {
    fn row(&self) -> &AccessTokenRow {
        match self {
            Self::Access(row) | Self::Refresh(row) => row,
        }
    }
}

/// Finds `token` as an access or a refresh token. `token_type_hint` picks which is tried
/// first, and is not trusted: the other kind is tried too (RFC 7009 §2.1).
fn find(
    state: &AppState,
    conn: &mut DbConnection,
    token: &str,
    hint: Option<&str>,
    now: i64,
) -> Result<Option<Presented>, ServiceError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    let as_refresh = |conn: &mut DbConnection| -> Result<Option<Presented>, ServiceError> {
        Ok(
            db::tokens::find_by_refresh_hash(conn, &sha256(token.as_bytes()))?
                .map(Presented::Refresh),
        )
    };
    let as_access = |conn: &mut DbConnection| -> Result<Option<Presented>, ServiceError> {
        match state.keys.verify_access_token_signature(token, now) {
            // The token must be the stored one: a signed token whose `exp` or `iat` differ
            // from its row's (only our key could make one) is not taken for it (SEC-JW-05).
            Ok(claims) => Ok(db::tokens::find(conn, &claims.jti)?
                .filter(|row| row.expires_at == claims.exp && row.created_at == claims.iat)
                .map(Presented::Access)),
            Err(_) => Ok(None),
        }
    };
    if hint == Some("refresh_token") {
        match as_refresh(conn)? {
            Some(found) => Ok(Some(found)),
            None => as_access(conn),
        }
    } else {
        match as_access(conn)? {
            Some(found) => Ok(Some(found)),
            None => as_refresh(conn),
        }
    }
}

fn authenticate(
    state: &AppState,
    conn: &mut DbConnection,
    client: Option<&ClientAuth>,
    now: i64,
) -> Result<Outcome<ApplicationRow>, ServiceError> {
    match clients::authenticate(&state.clients, conn, client, now) {
        Ok(app) => Ok(Outcome::Done(app)),
        Err(GrantError::OAuth(failure)) => Ok(Outcome::Refused(failure)),
        Err(GrantError::Service(err)) => Err(err),
    }
}

/// RFC 7009: revokes `token` if it belongs to the authenticated client. A refresh token takes
/// its whole family with it; an access token its own row (and so its refresh token).
pub fn revoke(
    state: &AppState,
    conn: &mut DbConnection,
    request: &RevokeRequest,
) -> Result<Outcome<()>, ServiceError> {
    let now = state.now();
    // GitLab: an unauthenticated revocation is refused with 403.
    let Some(client) = request.client.as_ref() else {
        return Ok(Outcome::Refused(OAuthFailure::with(
            ErrorCode::UnauthorizedClient,
            "You are not authorized to revoke this token",
        )));
    };
    let app = match authenticate(state, conn, Some(client), now)? {
        Outcome::Done(app) => app,
        Outcome::Refused(failure) => return Ok(Outcome::Refused(failure)),
    };
    db::write_transaction(conn, |conn| {
        let Some(found) = find(
            state,
            conn,
            &request.token,
            request.token_type_hint.as_deref(),
            now,
        )?
        else {
            return Ok(Outcome::Done(()));
        };
        // SEC-IR-03: another client's token is left alone, and the answer is the same.
        if found.row().application_id != app.id {
            return Ok(Outcome::Done(()));
        }
        let revoked = match (&found, found.row().family_id.as_deref()) {
            (Presented::Refresh(_), Some(family_id)) => {
                db::tokens::lock_family(conn, family_id)?;
                db::tokens::revoke_family(conn, &state.token_changes, family_id, now)?
            }
            _ => db::tokens::revoke(conn, &state.token_changes, &found.row().jti, now)?,
        };
        crate::metrics::revoked(crate::metrics::RevokeCause::Revocation, revoked);
        tracing::info!(target: "audit", event = "token_revoked", client_id = %app.uid, jti = %found.row().jti, revoked_rows = revoked, "a client revoked a token");
        Ok(Outcome::Done(()))
    })
}

/// Who asks to introspect: a client, or the bearer of another valid token (RFC 7662 §2.1).
fn caller(
    state: &AppState,
    conn: &mut DbConnection,
    request: &IntrospectRequest,
    now: i64,
) -> Result<Outcome<i64>, ServiceError> {
    let refused = || {
        OAuthFailure::with(
            ErrorCode::InvalidClient,
            "Introspection needs client authentication, or a bearer token other than the one introspected.",
        )
    };
    if let Some(bearer) = request.caller_bearer_token.as_deref() {
        if bearer == request.token {
            return Ok(Outcome::Refused(refused()));
        }
        let Ok(claims) = state.keys.verify_access_token(bearer, now) else {
            return Ok(Outcome::Refused(refused()));
        };
        return Ok(match db::tokens::find(conn, &claims.jti)? {
            Some(row) if row.revoked_at.is_none() => Outcome::Done(row.application_id),
            _ => Outcome::Refused(refused()),
        });
    }
    if request.client.is_none() {
        return Ok(Outcome::Refused(refused()));
    }
    Ok(authenticate(state, conn, request.client.as_ref(), now)?.map(|app| app.id))
}

fn inactive() -> Outcome<Introspection> {
    Outcome::Done(Introspection::default())
}

/// `introspect` for the common case, without leaving the request's task when the caller's
/// record and the token are cached: a client introspecting an access token. `None` for
/// everything else (a bearer caller, a refresh token, a token the cache cannot place),
/// which `introspect` answers.
pub async fn introspect_access_token(
    state: &AppState,
    request: &IntrospectRequest,
) -> Result<Option<Outcome<Introspection>>, ServiceError> {
    let looks_like_jwt = request.token.bytes().filter(|b| *b == b'.').count() == 2;
    if request.caller_bearer_token.is_some()
        || request.client.is_none()
        || request.token_type_hint.as_deref() == Some("refresh_token")
        || !looks_like_jwt
    {
        return Ok(None);
    }
    let now = state.now();
    let app = match clients::authenticate_async(state, request.client.as_ref(), now).await {
        Ok(app) => app,
        Err(GrantError::OAuth(failure)) => return Ok(Some(Outcome::Refused(failure))),
        Err(GrantError::Service(err)) => return Err(err),
    };
    let valid = match validation::check(state, &request.token).await? {
        Outcome::Done(valid) => valid,
        Outcome::Refused(Inactive::Expired | Inactive::Revoked) => return Ok(Some(inactive())),
        Outcome::Refused(_) => return Ok(None),
    };
    // SEC-IR-02: another client's token, or a blocked user's, is simply inactive.
    if valid.client_id != app.uid || !valid.user_active {
        return Ok(Some(inactive()));
    }
    Ok(Some(Outcome::Done(Introspection {
        active: true,
        scope: valid.scopes.join(" "),
        client_id: valid.client_id.clone(),
        username: valid
            .user
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_default(),
        token_type: "Bearer".to_owned(),
        exp: valid.expires_at,
        iat: valid.issued_at,
        sub: valid.subject.clone(),
        aud: state.keys.audience().to_owned(),
        iss: state.keys.issuer().to_owned(),
        jti: valid.jti.clone(),
    })))
}

/// RFC 7662: what `token` is, for the client it was issued to; `{"active":false}` for
/// anything else (SEC-IR-02).
pub fn introspect(
    state: &AppState,
    conn: &mut DbConnection,
    request: &IntrospectRequest,
) -> Result<Outcome<Introspection>, ServiceError> {
    let now = state.now();
    let caller_app = match caller(state, conn, request, now)? {
        Outcome::Done(app) => app,
        Outcome::Refused(failure) => return Ok(Outcome::Refused(failure)),
    };
    let Some(found) = find(
        state,
        conn,
        &request.token,
        request.token_type_hint.as_deref(),
        now,
    )?
    else {
        return Ok(inactive());
    };
    let row = found.row();
    if row.application_id != caller_app || row.revoked_at.is_some() {
        return Ok(inactive());
    }
    let tokens = &state.config.tokens;
    let (active, scopes, exp, token_type) = match &found {
        Presented::Access(row) => (
            row.expires_at > now,
            row.scopes.clone(),
            row.expires_at,
            "Bearer",
        ),
        Presented::Refresh(row) => {
            let family_ends =
                row.family_created_at.unwrap_or(row.created_at) + tokens.refresh_max_age_seconds;
            let idle_ends = row.created_at + tokens.refresh_idle_ttl_seconds;
            let exp = family_ends.min(idle_ends);
            let usable = row.refresh_rotated_at.is_none() && exp > now;
            let scopes = row
                .refresh_scopes
                .clone()
                .unwrap_or_else(|| row.scopes.clone());
            (usable, scopes, exp, "refresh_token")
        }
    };
    if !active {
        return Ok(inactive());
    }
    let Some(app) = db::applications::find(conn, row.application_id)? else {
        return Ok(inactive());
    };
    let username = match row.user_id {
        Some(id) => match db::users::find(conn, id)? {
            Some(user) if user.is_active() => user.username,
            _ => return Ok(inactive()),
        },
        None => String::new(),
    };
    let scope = rules::stored_scopes(&scopes, "access_tokens", &row.jti, "scopes")?;
    Ok(Outcome::Done(Introspection {
        active: true,
        scope: scope.to_string(),
        client_id: app.uid.clone(),
        username,
        token_type: token_type.to_owned(),
        exp,
        iat: row.created_at,
        sub: subject(row.user_id, &app.uid),
        aud: state.keys.audience().to_owned(),
        iss: state.keys.issuer().to_owned(),
        jti: row.jti.clone(),
    }))
}
