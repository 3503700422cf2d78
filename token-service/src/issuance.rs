//! Minting: an access token (a signed JWT plus its row) and, when the grant calls for one,
//! a refresh token stored as its SHA-256. Every grant ends here.

use doorward_shared::ScopeSet;
use doorward_shared::Secret;
use doorward_shared::secret::{random_token, time_ordered_id};

use crate::db::models::{AccessTokenRow, ApplicationRow, UserRow};
use crate::db::{self, DbConnection};
use crate::error::ServiceError;
use crate::keys::{self, AccessClaims, IdTokenClaims};
use crate::state::AppState;

/// Whether and how a refresh token comes with the access token.
pub enum RefreshPlan {
    /// None (client_credentials).
    None,
    /// A new family starts here.
    NewFamily,
    /// The successor of a rotated refresh token: same family, given value.
    Successor {
        /// The family.
        family_id: String,
        /// When the family started (its absolute lifetime is counted from here).
        family_created_at: i64,
        /// The successor's value (derived, see `grants::refresh_token`).
        refresh_token: Secret,
        /// The new row's jti, already recorded on the predecessor.
        jti: String,
        /// The refresh token's scope, carried over unchanged (RFC 6749 §6).
        refresh_scopes: String,
    },
}

/// The `sub` of a token: the user's id, or a namespace no user id can collide with for a
/// client acting for itself (SEC-TK-07).
pub fn subject(user_id: Option<i64>, client_uid: &str) -> String {
    match user_id {
        Some(id) => id.to_string(),
        None => format!("client:{client_uid}"),
    }
}

/// The JWT claims of a stored token row.
pub fn claims_for(state: &AppState, row: &AccessTokenRow, client_uid: &str) -> AccessClaims {
    AccessClaims {
        iss: state.keys.issuer().to_owned(),
        sub: subject(row.user_id, client_uid),
        aud: state.keys.audience().to_owned(),
        exp: row.expires_at,
        iat: row.created_at,
        jti: row.jti.clone(),
        client_id: client_uid.to_owned(),
        scope: row.scopes.clone(),
        nbf: None,
    }
}

/// The RFC 6749 §5.1 token response (its `token_type` is always `Bearer`).
#[derive(Debug)]
pub struct TokenResponse {
    /// The signed access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The refresh token, in plaintext (only its hash is stored).
    pub refresh_token: Option<Secret>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// When the token was issued (GitLab's `created_at`).
    pub created_at: i64,
    /// The OpenID Connect id_token, when `openid` was granted to a user.
    pub id_token: Option<String>,
}

/// The RFC 6749 §5.1 response for a stored row and its (plaintext) refresh token.
pub fn token_response(
    state: &AppState,
    row: &AccessTokenRow,
    client_uid: &str,
    refresh_token: Option<Secret>,
    now: i64,
) -> Result<TokenResponse, ServiceError> {
    let access_token = state
        .keys
        .sign_access_token(&claims_for(state, row, client_uid))?;
    Ok(TokenResponse {
        access_token,
        expires_in: (row.expires_at - now).max(0),
        refresh_token,
        scope: row.scopes.clone(),
        created_at: row.created_at,
        id_token: None,
    })
}

/// Who a token is for and what it may do.
pub struct Issue<'a> {
    /// The client.
    pub app: &'a ApplicationRow,
    /// The user, unless the client acts for itself.
    pub user: Option<&'a UserRow>,
    /// The access token's scopes.
    pub scopes: &'a ScopeSet,
    /// The authorization code the token descends from (revoked with it on code replay).
    pub grant_id: Option<i64>,
    /// OpenID Connect: the `nonce` of the authorization request (or of the password grant),
    /// echoed in the id_token.
    pub nonce: Option<&'a str>,
    /// OpenID Connect: when the user authenticated.
    pub auth_time: Option<i64>,
}

/// A token whose row is (or is about to be) stored, signed only once the write transaction
/// has committed: signing, and above all an id_token's RSA signature, stays off the batched
/// writer's thread (`db::writer`), where it would hold up every other grant's commit.
pub struct Unsigned {
    row: AccessTokenRow,
    client_uid: String,
    refresh_token: Option<Secret>,
    user: Option<UserRow>,
    nonce: Option<String>,
    auth_time: Option<i64>,
    now: i64,
}

impl Unsigned {
    /// An already stored token, signed again: the access token of `row` (deterministic:
    /// the same claims and key give the same signature) with `refresh_token`.
    pub fn stored(
        row: AccessTokenRow,
        client_uid: &str,
        refresh_token: Secret,
        user: Option<UserRow>,
        now: i64,
    ) -> Self {
        Self {
            auth_time: user.as_ref().and_then(|u| u.current_sign_in_at),
            row,
            client_uid: client_uid.to_owned(),
            refresh_token: Some(refresh_token),
            user,
            nonce: None,
            now,
        }
    }

    /// The row to store.
    pub fn row(&self) -> &AccessTokenRow {
        &self.row
    }

    /// The token response: the signed access token, and an id_token when it is due.
    pub fn sign(self, state: &AppState) -> Result<TokenResponse, ServiceError> {
        let set = token_response(
            state,
            &self.row,
            &self.client_uid,
            self.refresh_token,
            self.now,
        )?;
        with_id_token(
            state,
            set,
            &self.client_uid,
            self.user.as_ref(),
            self.nonce.as_deref(),
            self.auth_time,
            self.now,
        )
    }
}

/// Stores a new token; sign it (`Unsigned::sign`) once the transaction has committed.
pub fn mint(
    state: &AppState,
    conn: &mut DbConnection,
    issue: &Issue<'_>,
    refresh: RefreshPlan,
    now: i64,
) -> Result<Unsigned, ServiceError> {
    let unsigned = prepare(state, issue, refresh, now);
    db::tokens::insert(conn, &unsigned.row)?;
    Ok(unsigned)
}

/// A new token, not stored yet.
pub fn prepare(state: &AppState, issue: &Issue<'_>, refresh: RefreshPlan, now: i64) -> Unsigned {
    let Issue {
        app,
        user,
        scopes,
        grant_id,
        nonce,
        auth_time,
    } = *issue;
    let ttl = state.config.tokens.access_token_ttl_seconds;
    let (jti, refresh_token, family, refresh_scopes) = match refresh {
        RefreshPlan::None => (time_ordered_id(), None, None, None),
        RefreshPlan::NewFamily => (
            time_ordered_id(),
            Some(random_token()),
            Some((time_ordered_id(), now)),
            Some(scopes.to_string()),
        ),
        RefreshPlan::Successor {
            family_id,
            family_created_at,
            refresh_token,
            jti,
            refresh_scopes,
        } => (
            jti,
            Some(refresh_token),
            Some((family_id, family_created_at)),
            Some(refresh_scopes),
        ),
    };
    let row = AccessTokenRow {
        jti,
        application_id: app.id,
        user_id: user.map(|u| u.id),
        scopes: scopes.to_string(),
        created_at: now,
        expires_at: now + ttl,
        revoked_at: None,
        refresh_token_hash: refresh_token.as_ref().map(|r| r.sha256().to_vec()),
        family_id: family.as_ref().map(|(id, _)| id.clone()),
        family_created_at: family.as_ref().map(|(_, at)| *at),
        refresh_rotated_at: None,
        successor_jti: None,
        grant_id,
        refresh_scopes,
    };
    Unsigned {
        row,
        client_uid: app.uid.clone(),
        refresh_token,
        user: user.cloned(),
        nonce: nonce.map(str::to_owned),
        auth_time,
        now,
    }
}

/// Adds an id_token (OpenID Connect Core §3.1.3.3) when the token is a user's and its
/// scopes include `openid`: RS256, 120 seconds, `at_hash` of the access token, `nonce`
/// exactly as the client sent it, and the e-mail claims when the `email` scope allows.
pub fn with_id_token(
    state: &AppState,
    mut set: TokenResponse,
    client_uid: &str,
    user: Option<&UserRow>,
    nonce: Option<&str>,
    auth_time: Option<i64>,
    now: i64,
) -> Result<TokenResponse, ServiceError> {
    let Some(user) = user else {
        return Ok(set);
    };
    let scopes: Vec<&str> = set.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Ok(set);
    }
    let email = scopes.contains(&"email");
    let claims = IdTokenClaims {
        iss: state.keys.issuer().to_owned(),
        sub: user.id.to_string(),
        aud: client_uid.to_owned(),
        exp: now + keys::ID_TOKEN_TTL_SECONDS,
        iat: now,
        auth_time,
        nonce: nonce.map(str::to_owned),
        at_hash: Some(keys::at_hash(&set.access_token)),
        email: email.then(|| user.email.clone()),
        email_verified: email.then_some(true),
    };
    set.id_token = Some(state.keys.sign_id_token(&claims)?);
    Ok(set)
}
