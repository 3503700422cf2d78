//! tonic implementations of the `doorward.v1` services, and proto<->domain conversion.
//! Handlers are thin: they convert, call the domain module, convert back.

pub mod applications;
pub mod authorizations;
pub mod caller;
pub mod convert;
pub mod device_authorizations;
pub mod observe;
pub mod token_service;
pub mod token_validation;
pub mod users;
