//! `doorward.v1.DeviceAuthorizations`: the device grant's user side for auth-web
//! (`POST /oauth/authorize_device`, the `/oauth/device` pages). Refusals travel as data.

use doorward_proto::v1 as pb;
use pb::device_authorizations_server::DeviceAuthorizations;
use tonic::{Request, Response, Status};

use crate::device::{self, Pending, UserCodeEntry};
use crate::error::{GrantError, Outcome};
use crate::grpc::convert;
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

fn client_ip(context: Option<pb::RequestContext>) -> String {
    context.map(|c| c.client_ip).unwrap_or_default()
}

/// The verification page's answer.
fn lookup_response(outcome: Outcome<Pending>) -> pb::LookupUserCodeResponse {
    use pb::lookup_user_code_response::Result as Answer;
    let result = match outcome {
        Outcome::Done(pending) => Answer::Pending(pb::PendingDeviceAuthorization {
            application: Some(convert::application(&pending.application)),
            scopes: pending.scopes,
            expires_at: pending.expires_at,
            status: pending.status.as_str().to_owned(),
        }),
        Outcome::Refused(failure) => Answer::Error(convert::oauth_error(&failure)),
    };
    pb::LookupUserCodeResponse {
        result: Some(result),
    }
}

#[tonic::async_trait]
impl DeviceAuthorizations for DeviceAuthorizationsImpl {
    async fn start_device_authorization(
        &self,
        request: Request<pb::StartDeviceAuthorizationRequest>,
    ) -> Result<Response<pb::StartDeviceAuthorizationResponse>, Status> {
        use pb::start_device_authorization_response::Result as Answer;
        let r = request.into_inner();
        let client = r.client.map(convert::client_auth);
        let started = device::start(&self.state, client, &client_ip(r.context), r.scope).await;
        let result = match started {
            Ok(started) => Answer::Authorization(pb::DeviceAuthorization {
                device_code: started.device_code.expose().to_owned(),
                user_code: started.user_code,
                expires_in: started.expires_in,
                interval: started.interval,
            }),
            Err(GrantError::OAuth(failure)) => Answer::Error(convert::oauth_error(&failure)),
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
        let r = request.into_inner();
        let entry = UserCodeEntry {
            user_code: r.user_code,
            user_id: r.user_id,
            client_ip: client_ip(r.context),
        };
        let outcome = device::lookup(&self.state, &entry).await?;
        Ok(Response::new(lookup_response(outcome)))
    }

    async fn decide_user_code(
        &self,
        request: Request<pb::DecideUserCodeRequest>,
    ) -> Result<Response<pb::LookupUserCodeResponse>, Status> {
        let r = request.into_inner();
        let entry = UserCodeEntry {
            user_code: r.user_code,
            user_id: r.user_id,
            client_ip: client_ip(r.context),
        };
        let outcome = device::decide(&self.state, &entry, r.approve).await?;
        Ok(Response::new(lookup_response(outcome)))
    }
}
