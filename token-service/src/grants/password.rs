//! `grant_type=password` (RFC 6749 §4.3), the seed's resource-owner flow. Confined as
//! SEC-TK-08 asks: a confidential client, per-application opt-out, shared sign-in
//! throttling before any hashing, and one generic `invalid_grant` for every bad credential.

use doorward_proto::v1 as pb;
use doorward_shared::Secret;

use crate::accounts;
use crate::clients;
use crate::db;
use crate::error::{GrantError, OAuthFailure};
use crate::issuance;
use crate::state::AppState;

pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let now = state.now();
    let app = clients::authenticate_async(state, request.client.as_ref(), now).await?;
    super::require_grant(&app, doorward_shared::GrantType::Password)?;
    let username = request
        .username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| OAuthFailure::missing("username"))?;
    let password = Secret::new(
        request
            .password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| OAuthFailure::missing("password"))?,
    );
    let scopes = super::resolve_scopes(request.scope.as_deref(), &app)?;
    let client_ip = request.context.map(|c| c.client_ip).unwrap_or_default();
    let nonce = request.nonce.filter(|n| !n.is_empty());
    let user = accounts::authenticate_password(state, &username, &password, &client_ip).await?;

    let uid = app.uid.clone();
    let state2 = state.clone();
    let unsigned = state
        .write(move |conn| {
            let now = state2.now();
            {
                // SEC-TK-09: the account must still be active at the moment of issue.
                match db::users::find(conn, user.id)? {
                    Some(current) if current.is_active() => {
                        let issue = issuance::Issue {
                            app: &app,
                            user: Some(&current),
                            scopes: &scopes,
                            grant_id: None,
                            nonce: nonce.as_deref(),
                            // The password was checked just now.
                            auth_time: Some(now),
                        };
                        Ok(issuance::mint(
                            &state2,
                            conn,
                            &issue,
                            super::refresh_plan_for(&app),
                            now,
                        )?)
                    }
                    _ => Err(super::invalid_grant().into()),
                }
            }
        })
        .await
        .map_err(|e| match e {
            GrantError::Service(e) => clients::application_gone(state, &uid, e),
            refused => refused,
        })?;
    Ok(unsigned.sign(state)?)
}
