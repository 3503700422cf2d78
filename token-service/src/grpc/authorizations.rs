//! `doorward.v1.Authorizations`: the checks and codes behind auth-web's consent pages, and
//! the user's list of authorized applications.

use doorward_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert;
use crate::authorize;
use crate::error::Outcome;
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
        let auth_request = convert::authorization_request(r.request.unwrap_or_default());
        let outcome = self
            .state
            .db(move |conn| authorize::pre_authorize(conn, &auth_request, r.user_id))
            .await?;
        let result = match outcome {
            Outcome::Done(pre) => pb::pre_authorize_response::Result::Ok(pb::PreAuthorized {
                application: Some(convert::application(&pre.app)),
                scopes: pre.scopes.names(),
                skip_consent: pre.skip_consent,
            }),
            Outcome::Refused(err) => {
                pb::pre_authorize_response::Result::Error(convert::authorize_error(&err))
            }
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
        let auth_request = convert::authorization_request(r.request.unwrap_or_default());
        let state = self.state.clone();
        let outcome = self
            .state
            .db(move |conn| {
                authorize::issue_code(&state, conn, &auth_request, r.user_id, r.auth_time)
            })
            .await?;
        let result = match outcome {
            Outcome::Done(code) => pb::issue_code_response::Result::Code(code),
            Outcome::Refused(err) => {
                pb::issue_code_response::Result::Error(convert::authorize_error(&err))
            }
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
        let authorized = self
            .state
            .db(move |conn| authorize::authorized_applications(conn, user_id))
            .await?;
        let applications = authorized
            .into_iter()
            .map(|authorized| pb::AuthorizedApplication {
                application: Some(convert::application(&authorized.application)),
                scopes: authorized.scopes.names(),
                authorized_at: authorized.authorized_at,
            })
            .collect();
        Ok(Response::new(pb::ListAuthorizedApplicationsResponse {
            applications,
        }))
    }

    async fn revoke_authorized_application(
        &self,
        request: Request<pb::RevokeAuthorizedApplicationRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = request.into_inner();
        let now = self.state.now();
        let changes = self.state.token_changes.clone();
        self.state
            .db(move |conn| {
                authorize::revoke_authorized(conn, &changes, r.user_id, &r.client_id, now)
            })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }
}
