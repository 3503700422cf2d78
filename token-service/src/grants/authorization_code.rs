//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5): a single-use code,
//! bound to its client, redirect URI and PKCE challenge. The code is claimed with one
//! conditional update before anything else is checked, so every attempt burns it
//! (SEC-PK-03) and concurrent attempts cannot both win (SEC-TK-04); presenting a used code
//! revokes everything it produced (SEC-TK-03).

use doorward_proto::v1 as pb;
use doorward_shared::{ErrorCode, ScopeSet, Secret};

use crate::clients;
use crate::db::models::ApplicationRow;
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure, ServiceError};
use crate::issuance;
use crate::pkce::{self, Method};
use crate::state::AppState;

pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let now = state.now();
    let app = clients::authenticate_async(state, request.client.as_ref(), now).await?;
    super::require_grant(&app, "authorization_code")?;
    let code = request
        .code
        .filter(|c| !c.is_empty())
        .map(Secret::new)
        .ok_or_else(|| OAuthFailure::missing("code"))?;
    let redirect_uri = request
        .redirect_uri
        .filter(|r| !r.is_empty())
        .ok_or_else(|| OAuthFailure::missing("redirect_uri"))?;
    let verifier = request.code_verifier;
    let state2 = state.clone();
    // Ok carries refusals too: a burned code and a replay's revocations must commit.
    let outcome = state
        .write(move |conn| {
            redeem(
                &state2,
                conn,
                &app,
                &code,
                &redirect_uri,
                verifier.as_deref(),
                now,
            )
        })
        .await?;
    Ok(outcome?.sign(state)?)
}

fn redeem(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    code: &Secret,
    redirect_uri: &str,
    verifier: Option<&str>,
    now: i64,
) -> Result<Result<issuance::Unsigned, OAuthFailure>, ServiceError> {
    let invalid = super::invalid_grant;
    let Some(grant) = db::grants::find_by_code_hash(conn, &code.sha256())? else {
        return Ok(Err(invalid()));
    };
    // A code its user revoked (authorized-applications page) is simply invalid.
    if grant.revoked_at.is_some() {
        return Ok(Err(invalid()));
    }
    if !db::grants::consume(conn, grant.id, now)? {
        // RFC 6749 §4.1.2: a second use revokes every token minted from the code.
        let revoked = db::grants::revoke_tokens_of(conn, grant.id, now)?;
        tracing::warn!(
            target: "audit",
            event = "authorization_code_replay",
            grant_id = grant.id,
            client_id = %app.uid,
            revoked_rows = revoked,
            "a used authorization code was presented again; its tokens are revoked"
        );
        return Ok(Err(invalid()));
    }
    // From here every refusal leaves the code burned.
    if grant.application_id != app.id || grant.expires_at <= now {
        return Ok(Err(invalid()));
    }
    // RFC 6749 §4.1.3: identical to the redirect URI of the authorization request.
    if grant.redirect_uri != redirect_uri {
        return Ok(Err(invalid()));
    }
    let challenge = grant.code_challenge.as_deref().zip(
        grant
            .code_challenge_method
            .as_deref()
            .and_then(Method::parse),
    );
    let pkce_ok = match (challenge, verifier) {
        (Some((challenge, method)), Some(verifier)) => pkce::verify(method, challenge, verifier),
        // SEC-PK-03: a challenge was stored, so the verifier is required.
        (Some(_), None) => false,
        // SEC-PK-02: a verifier for a code issued without a challenge is a downgrade.
        (None, Some(_)) => false,
        (None, None) => true,
    };
    if !pkce_ok {
        tracing::warn!(target: "audit", event = "pkce_failure", grant_id = grant.id, client_id = %app.uid, "PKCE verification failed");
        return Ok(Err(OAuthFailure::with(
            ErrorCode::InvalidGrant,
            "The code_verifier does not match the code_challenge of the authorization request.",
        )));
    }
    // SEC-TK-09: the user must still be active.
    let Some(user) = db::users::find(conn, grant.user_id)?.filter(|u| u.is_active()) else {
        return Ok(Err(invalid()));
    };
    let scopes = ScopeSet::parse(&grant.scopes).unwrap_or_default();
    let issue = issuance::Issue {
        app,
        user: Some(&user),
        scopes: &scopes,
        grant_id: Some(grant.id),
        nonce: grant.nonce.as_deref(),
        auth_time: grant.auth_time,
    };
    Ok(Ok(issuance::mint(
        state,
        conn,
        &issue,
        super::refresh_plan_for(app),
        now,
    )?))
}
