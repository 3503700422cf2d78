//! `doorward.v1.Applications`.

use doorward_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert;
use crate::apps::{self, SaveError};
use crate::db;
use crate::error::ServiceError;
use crate::state::AppState;

/// The tonic service.
pub struct ApplicationsImpl {
    state: AppState,
}

impl ApplicationsImpl {
    /// Wraps the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn saved(
    result: Result<
        Option<(
            crate::db::models::ApplicationRow,
            Option<doorward_shared::Secret>,
        )>,
        SaveError,
    >,
) -> Result<Response<pb::CreateApplicationResponse>, Status> {
    let result = match result {
        Ok(Some((row, secret))) => {
            pb::create_application_response::Result::Created(pb::CreatedApplication {
                application: Some(convert::application(&row)),
                secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
            })
        }
        Ok(None) => return Err(Status::not_found("no such application")),
        Err(SaveError::Invalid(errors)) => {
            pb::create_application_response::Result::Errors(convert::validation_errors(errors))
        }
        Err(SaveError::Service(e)) => return Err(e.into()),
    };
    Ok(Response::new(pb::CreateApplicationResponse {
        result: Some(result),
    }))
}

#[tonic::async_trait]
impl pb::applications_server::Applications for ApplicationsImpl {
    async fn create_application(
        &self,
        request: Request<pb::CreateApplicationRequest>,
    ) -> Result<Response<pb::CreateApplicationResponse>, Status> {
        let fields = convert::application_fields(request.into_inner().fields.unwrap_or_default());
        let state = self.state.clone();
        saved(
            self.state
                .db(move |conn| apps::create(conn, &fields, state.now()).map(Some))
                .await,
        )
    }

    async fn get_application(
        &self,
        request: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::GetApplicationResponse>, Status> {
        let uid = request.into_inner().uid;
        let app = self
            .state
            .db(move |conn| Ok::<_, ServiceError>(db::applications::find_by_uid(conn, &uid)?))
            .await?;
        Ok(Response::new(pb::GetApplicationResponse {
            application: app.as_ref().map(convert::application),
        }))
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let owner = request.into_inner().owner_id;
        let apps = self
            .state
            .db(move |conn| Ok::<_, ServiceError>(db::applications::list(conn, owner)?))
            .await?;
        Ok(Response::new(pb::ListApplicationsResponse {
            applications: apps.iter().map(convert::application).collect(),
        }))
    }

    async fn update_application(
        &self,
        request: Request<pb::UpdateApplicationRequest>,
    ) -> Result<Response<pb::CreateApplicationResponse>, Status> {
        let r = request.into_inner();
        let fields = convert::application_fields(r.fields.unwrap_or_default());
        let state = self.state.clone();
        let uid = r.uid.clone();
        let updated = self
            .state
            .db(move |conn| {
                Ok(apps::update(conn, &r.uid, &fields, state.now())?.map(|row| (row, None)))
            })
            .await;
        self.state.clients.forget(&uid);
        saved(updated)
    }

    async fn delete_application(
        &self,
        request: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::DeleteApplicationResponse>, Status> {
        let uid = request.into_inner().uid;
        let forgotten = uid.clone();
        let changes = self.state.token_changes.clone();
        let deleted = self
            .state
            .db(move |conn| crate::apps::delete(conn, &changes, &uid))
            .await?;
        self.state.clients.forget(&forgotten);
        Ok(Response::new(pb::DeleteApplicationResponse { deleted }))
    }

    async fn rotate_secret(
        &self,
        request: Request<pb::RotateSecretRequest>,
    ) -> Result<Response<pb::RotateSecretResponse>, Status> {
        let r = request.into_inner();
        let state = self.state.clone();
        let uid = r.uid.clone();
        let rotated = self
            .state
            .db(move |conn| {
                apps::rotate_secret(conn, &r.uid, i64::from(r.grace_seconds), state.now())
            })
            .await?;
        self.state.clients.forget(&uid);
        Ok(Response::new(pb::RotateSecretResponse {
            previous_secret_expires_at: rotated.as_ref().and_then(|r| r.previous_valid_until),
            secret: rotated.map(|r| r.secret.expose().to_owned()),
        }))
    }
}
