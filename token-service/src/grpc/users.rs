//! `doorward.v1.Users`.

use doorward_proto::v1 as pb;
use doorward_shared::Secret;
use tonic::{Request, Response, Status};

use super::convert;
use crate::accounts::{self, CreateError, NewAccount};
use crate::db;
use crate::error::{GrantError, ServiceError};
use crate::state::AppState;

/// The tonic service.
pub struct UsersImpl {
    state: AppState,
}

impl UsersImpl {
    /// Wraps the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::users_server::Users for UsersImpl {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let r = request.into_inner();
        let account = NewAccount {
            username: r.username,
            email: r.email,
            name: r.name,
            password: Secret::new(r.password),
            admin: r.admin,
        };
        let result = match accounts::create(&self.state, account).await {
            Ok(user) => pb::create_user_response::Result::User(convert::user(&user)),
            Err(CreateError::Invalid(errors)) => {
                pb::create_user_response::Result::Errors(convert::validation_errors(errors))
            }
            Err(CreateError::Service(e)) => return Err(e.into()),
        };
        Ok(Response::new(pb::CreateUserResponse {
            result: Some(result),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let id = request.into_inner().id;
        let user = self
            .state
            .db(move |conn| Ok::<_, ServiceError>(db::users::find(conn, id)?))
            .await?;
        Ok(Response::new(pb::GetUserResponse {
            user: user.as_ref().map(convert::user),
        }))
    }

    async fn authenticate_password(
        &self,
        request: Request<pb::AuthenticatePasswordRequest>,
    ) -> Result<Response<pb::AuthenticatePasswordResponse>, Status> {
        let r = request.into_inner();
        let ip = r.context.map(|c| c.client_ip).unwrap_or_default();
        let result = match accounts::authenticate_password(
            &self.state,
            &r.login,
            &Secret::new(r.password),
            &ip,
        )
        .await
        {
            Ok(mut user) => {
                let now = self.state.now();
                let id = user.id;
                let changes = self.state.token_changes.clone();
                self.state
                    .db(move |conn| {
                        Ok::<_, ServiceError>(db::users::record_sign_in(conn, &changes, id, now)?)
                    })
                    .await?;
                user.last_sign_in_at = user.current_sign_in_at;
                user.current_sign_in_at = Some(now);
                pb::authenticate_password_response::Result::User(convert::user(&user))
            }
            Err(GrantError::OAuth(f)) => {
                pb::authenticate_password_response::Result::Error(convert::oauth_error(&f))
            }
            Err(GrantError::Service(e)) => return Err(e.into()),
        };
        Ok(Response::new(pb::AuthenticatePasswordResponse {
            result: Some(result),
        }))
    }
}
