//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client acting for itself.
//! No refresh token (§4.4.3) and a subject that cannot pass for a user (SEC-TK-07).

use crate::clients;
use crate::db;
use crate::error::{GrantError, ServiceError};
use crate::issuance::{self, RefreshPlan, TokenResponse};

use super::granting::Granting;
use super::rules;

/// `grant_type=client_credentials` and its parameter.
#[derive(Debug)]
pub struct ClientCredentialsGrant {
    /// `scope`, as sent.
    pub scope: Option<String>,
}

impl ClientCredentialsGrant {
    /// The hot path of machine clients: the client's record comes from the cache; only the
    /// row's insert goes to the batched writer, and the token is signed after its commit.
    pub async fn apply(self, granting: Granting<'_>) -> Result<TokenResponse, GrantError> {
        let Granting { state, app, .. } = granting;
        let now = state.now();
        let registered = rules::registered_scopes(&app)?;
        let scopes = rules::resolve_scopes(self.scope.as_deref(), &registered)?;
        let issue = issuance::Issue {
            app: &app,
            user: None,
            scopes: &scopes,
            grant_id: None,
            nonce: None,
            auth_time: None,
        };
        let unsigned = issuance::prepare(state, &issue, RefreshPlan::None, now);
        let unsigned = state
            .write(move |conn| {
                db::tokens::insert(conn, unsigned.row())?;
                Ok::<_, ServiceError>(unsigned)
            })
            .await
            .map_err(|e| clients::application_gone(state, &app.uid, e))?;
        Ok(unsigned.sign(state)?)
    }
}
