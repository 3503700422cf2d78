//! `doorward.v1.DeviceAuthorizations`: the device grant's user side for auth-web
//! (`POST /oauth/authorize_device`, the `/oauth/device` pages). Refusals travel as data.

use doorward_proto::v1 as pb;
use pb::device_authorizations_server::DeviceAuthorizations;
use tonic::{Request, Response, Status};

use crate::device;
use crate::error::GrantError;
use crate::state::AppState;

/// The tonic service.
pub struct DeviceAuthorizationsImpl {
    state: AppState,
}

impl DeviceAuthorizationsImpl {
    /// Wraps the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl DeviceAuthorizations for DeviceAuthorizationsImpl {
    async fn start_device_authorization(
        &self,
        request: Request<pb::StartDeviceAuthorizationRequest>,
    ) -> Result<Response<pb::StartDeviceAuthorizationResponse>, Status> {
        let result = match device::start(&self.state, request.into_inner()).await {
            Ok(authorization) => {
                pb::start_device_authorization_response::Result::Authorization(authorization)
            }
            Err(GrantError::OAuth(failure)) => {
                pb::start_device_authorization_response::Result::Error(failure.to_proto())
            }
            Err(GrantError::Service(e)) => return Err(e.into()),
        };
        Ok(Response::new(pb::StartDeviceAuthorizationResponse {
            result: Some(result),
        }))
    }

    async fn lookup_user_code(
        &self,
        request: Request<pb::LookupUserCodeRequest>,
    ) -> Result<Response<pb::LookupUserCodeResponse>, Status> {
        Ok(Response::new(
            device::lookup(&self.state, request.into_inner()).await?,
        ))
    }

    async fn decide_user_code(
        &self,
        request: Request<pb::DecideUserCodeRequest>,
    ) -> Result<Response<pb::LookupUserCodeResponse>, Status> {
        Ok(Response::new(
            device::decide(&self.state, request.into_inner()).await?,
        ))
    }
}
