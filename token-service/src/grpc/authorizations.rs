//! `doorward.v1.Authorizations`: the checks and codes behind auth-web's consent pages, and
//! the user's list of authorized applications.

use std::collections::BTreeMap;

use doorward_proto::v1 as pb;
use doorward_shared::ScopeSet;
use tonic::{Request, Response, Status};

use super::convert;
use crate::authorize;
use crate::db;
use crate::error::ServiceError;
use crate::state::AppState;

/// The tonic service.
pub struct AuthorizationsImpl {
    state: AppState,
}

impl AuthorizationsImpl {
    /// Wraps the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::authorizations_server::Authorizations for AuthorizationsImpl {
    async fn pre_authorize(
        &self,
        request: Request<pb::PreAuthorizeRequest>,
    ) -> Result<Response<pb::PreAuthorizeResponse>, Status> {
        let r = request.into_inner();
        let auth_request = r.request.unwrap_or_default();
        let outcome = self
            .state
            .db(move |conn| authorize::pre_authorize(conn, &auth_request, r.user_id))
            .await?;
        let result = match outcome {
            Ok(pre) => pb::pre_authorize_response::Result::Ok(pb::PreAuthorized {
                application: Some(convert::application(&pre.app)),
                scopes: pre.scopes.names(),
                skip_consent: pre.skip_consent,
            }),
            Err(err) => pb::pre_authorize_response::Result::Error(err.to_proto()),
        };
        Ok(Response::new(pb::PreAuthorizeResponse {
            result: Some(result),
        }))
    }

    async fn issue_code(
        &self,
        request: Request<pb::IssueCodeRequest>,
    ) -> Result<Response<pb::IssueCodeResponse>, Status> {
        let r = request.into_inner();
        let auth_request = r.request.unwrap_or_default();
        let state = self.state.clone();
        let outcome = self
            .state
            .db(move |conn| {
                authorize::issue_code(&state, conn, &auth_request, r.user_id, r.auth_time)
            })
            .await?;
        let result = match outcome {
            Ok(code) => pb::issue_code_response::Result::Code(code),
            Err(err) => pb::issue_code_response::Result::Error(err.to_proto()),
        };
        Ok(Response::new(pb::IssueCodeResponse {
            result: Some(result),
        }))
    }

    async fn list_authorized_applications(
        &self,
        request: Request<pb::ListAuthorizedApplicationsRequest>,
    ) -> Result<Response<pb::ListAuthorizedApplicationsResponse>, Status> {
        let user_id = request.into_inner().user_id;
        let applications = self
            .state
            .db(move |conn| {
                // Per application: the union of the live tokens' scopes, and the first grant.
                let mut by_app: BTreeMap<i64, (ScopeSet, i64)> = BTreeMap::new();
                for (app_id, scopes, created_at) in db::grants::live_authorizations(conn, user_id)?
                {
                    let entry = by_app
                        .entry(app_id)
                        .or_insert((ScopeSet::default(), created_at));
                    for scope in ScopeSet::parse(&scopes).unwrap_or_default().iter() {
                        entry.0.insert(scope);
                    }
                    entry.1 = entry.1.min(created_at);
                }
                let mut list = Vec::with_capacity(by_app.len());
                for (app_id, (scopes, authorized_at)) in by_app {
                    if let Some(app) = db::applications::find(conn, app_id)? {
                        list.push(pb::AuthorizedApplication {
                            application: Some(convert::application(&app)),
                            scopes: scopes.names(),
                            authorized_at,
                        });
                    }
                }
                Ok::<_, ServiceError>(list)
            })
            .await?;
        Ok(Response::new(pb::ListAuthorizedApplicationsResponse {
            applications,
        }))
    }

    async fn revoke_authorized_application(
        &self,
        request: Request<pb::RevokeAuthorizedApplicationRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = request.into_inner();
        let state = self.state.clone();
        self.state
            .db(move |conn| {
                let now = state.now();
                db::write_transaction(conn, |conn| {
                    if let Some(app) = db::applications::find_by_uid(conn, &r.client_id)? {
                        let revoked = db::grants::revoke_authorization(conn, r.user_id, app.id, now)?;
                        tracing::info!(target: "audit", event = "authorization_revoked", user_id = r.user_id, client_id = %app.uid, revoked_rows = revoked, "a user revoked an application");
                    }
                    Ok::<_, ServiceError>(())
                })
            })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }
}
