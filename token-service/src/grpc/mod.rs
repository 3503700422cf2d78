//! tonic implementations of the `doorward.v1` services, and proto<->domain conversion.
//! Handlers are thin: they convert, call the domain module, convert back.

pub mod applications;
pub mod authorizations;
pub mod convert;
pub mod device_authorizations;
pub mod token_service;
pub mod token_validation;
pub mod users;

use tonic::{Request, Status};

use doorward_shared::Secret;
use doorward_shared::secret::constant_time_eq;

/// Checks `authorization: Bearer <service token>` on internal RPCs when a service token is
/// configured (DESIGN.md "Security rules": the gRPC port accepts only authenticated callers).
#[derive(Clone)]
pub struct ServiceTokenCheck {
    expected: Option<Secret>,
}

impl ServiceTokenCheck {
    /// A check for `expected` (none: every caller is accepted).
    pub fn new(expected: Option<Secret>) -> Self {
        Self { expected }
    }
}

impl tonic::service::Interceptor for ServiceTokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("a valid service token is required"))
        }
    }
}
