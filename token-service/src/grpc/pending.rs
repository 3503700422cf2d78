//! Services of the contract whose behaviour arrives with later work (the device grant).
//! They answer
//! `UNIMPLEMENTED`, the gRPC status for exactly this, so a caller learns it at once.

use doorward_proto::v1 as pb;
use tonic::{Request, Response, Status};

/// The not-yet-served services.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pending;

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not served by this version of token-service"
    ))
}

#[tonic::async_trait]
impl pb::device_authorizations_server::DeviceAuthorizations for Pending {
    async fn start_device_authorization(
        &self,
        _: Request<pb::StartDeviceAuthorizationRequest>,
    ) -> Result<Response<pb::StartDeviceAuthorizationResponse>, Status> {
        Err(not_yet("DeviceAuthorizations.StartDeviceAuthorization"))
    }

    async fn lookup_user_code(
        &self,
        _: Request<pb::LookupUserCodeRequest>,
    ) -> Result<Response<pb::LookupUserCodeResponse>, Status> {
        Err(not_yet("DeviceAuthorizations.LookupUserCode"))
    }

    async fn decide_user_code(
        &self,
        _: Request<pb::DecideUserCodeRequest>,
    ) -> Result<Response<pb::LookupUserCodeResponse>, Status> {
        Err(not_yet("DeviceAuthorizations.DecideUserCode"))
    }
}
