//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client acting for itself.
//! No refresh token (§4.4.3) and a subject that cannot pass for a user (SEC-TK-07).

use doorward_proto::v1 as pb;

use crate::clients;
use crate::error::GrantError;
use crate::issuance::{self, RefreshPlan};
use crate::state::AppState;

pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let state2 = state.clone();
    state
        .db(move |conn| {
            let now = state2.now();
            let app = clients::authenticate(conn, request.client.as_ref(), now)?;
            super::require_grant(&app, "client_credentials")?;
            let scopes = super::resolve_scopes(request.scope.as_deref(), &app)?;
            let issue = issuance::Issue {
                app: &app,
                user: None,
                scopes: &scopes,
                grant_id: None,
                nonce: None,
                auth_time: None,
            };
            // One write transaction, so that SQLite writers queue in-process
            // (`db::write_transaction`) rather than in SQLite's sleeping busy handler.
            Ok(crate::db::write_transaction(conn, |conn| {
                issuance::mint(&state2, conn, &issue, RefreshPlan::None, now)
            })?)
        })
        .await
}
