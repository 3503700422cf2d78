//! `grant_type=password` (RFC 6749 §4.3), the seed's resource-owner flow. Confined as
//! SEC-TK-08 asks: a confidential client, per-application opt-out, shared sign-in
//! throttling before any hashing, and one generic `invalid_grant` for every bad credential.

use doorward_shared::Secret;

use crate::accounts;
use crate::clients;
use crate::db::models::{ApplicationRow, UserRow};
use crate::db::{self, DbConnection};
use crate::error::{GrantError, Outcome, ServiceError};
use crate::issuance::{self, TokenResponse, Unsigned};
use crate::state::AppState;

use super::granting::Granting;
use super::rules;
use doorward_shared::ScopeSet;

/// `grant_type=password` and its parameters.
#[derive(Debug)]
pub struct PasswordGrant {
    /// `username` (never empty).
    pub username: String,
    /// `password` (never empty).
    pub password: Secret,
    /// `scope`, as sent.
    pub scope: Option<String>,
    /// OpenID Connect `nonce`, echoed in the id_token.
    pub nonce: Option<String>,
}

impl PasswordGrant {
    /// Checks the password (throttled per username and IP) and mints for an active user.
    pub async fn apply(self, granting: Granting<'_>) -> Result<TokenResponse, GrantError> {
        let Granting {
            state,
            app,
            client_ip,
        } = granting;
        let registered = rules::registered_scopes(&app)?;
        let scopes = rules::resolve_scopes(self.scope.as_deref(), &registered)?;
        let user =
            accounts::authenticate_password(state, &self.username, &self.password, client_ip)
                .await?;
        let uid = app.uid.clone();
        let state2 = state.clone();
        let nonce = self.nonce;
        let outcome = state
            .write(move |conn| {
                mint_if_active(&state2, conn, &app, &user, &scopes, nonce.as_deref())
            })
            .await
            .map_err(|e| clients::application_gone(state, &uid, e))?;
        Ok(outcome.into_result()?.sign(state)?)
    }
}

/// SEC-TK-09: the account must still be active at the moment of issue.
fn mint_if_active(
    state: &AppState,
    conn: &mut DbConnection,
    app: &ApplicationRow,
    user: &UserRow,
    scopes: &ScopeSet,
    nonce: Option<&str>,
) -> Result<Outcome<Unsigned>, ServiceError> {
    let now = state.now();
    let Some(current) = db::users::find(conn, user.id)?.filter(UserRow::is_active) else {
        return Ok(Outcome::Refused(rules::invalid_grant()));
    };
    let issue = issuance::Issue {
        app,
        user: Some(&current),
        scopes,
        grant_id: None,
        nonce,
        // The password was checked just now.
        auth_time: Some(now),
    };
    let unsigned = issuance::mint(state, conn, &issue, rules::refresh_plan_for(app), now)?;
    Ok(Outcome::Done(unsigned))
}
