//! Doorward's token service: the only component with a database. It owns every protocol
//! rule that touches stored state (grants, refresh rotation, revocation), the signing keys,
//! password hashing, and the operator CLI; it speaks gRPC (`doorward.v1`) and never HTTP.

pub mod accounts;
pub mod apps;
pub mod authorize;
pub mod bearer;
pub mod cli;
pub mod clients;
pub mod db;
pub mod device;
pub mod error;
pub mod grants;
pub mod grpc;
pub mod housekeeping;
pub mod issuance;
pub mod keys;
pub mod lifecycle;
pub mod listener;
pub mod metrics;
pub mod monitoring;
pub mod passwords;
pub mod pkce;
pub mod redirect_uri;
pub mod startup;
pub mod state;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod tls_init;
pub mod validation;

pub use startup::{TokenServiceApp, open_state};
pub use state::AppState;
