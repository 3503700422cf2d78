//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client acting for itself.
//! No refresh token (§4.4.3) and a subject that cannot pass for a user (SEC-TK-07).

use doorward_proto::v1 as pb;

use crate::clients;
use crate::db;
use crate::error::{GrantError, ServiceError};
use crate::issuance::{self, RefreshPlan};
use crate::state::AppState;

/// The hot path of machine clients: the client's record comes from the cache; only the
/// row's insert goes to the batched writer, and the token is signed after its commit.
pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let now = state.now();
    let app = clients::authenticate_async(state, request.client.as_ref(), now).await?;
    super::require_grant(&app, doorward_shared::GrantType::ClientCredentials)?;
    let scopes = super::resolve_scopes(request.scope.as_deref(), &app)?;
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
