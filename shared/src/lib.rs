//! Types and helpers that both Doorward services use: scopes, OAuth error codes,
//! configuration, telemetry, secrets and hashing, and the injectable clock.
//!
//! This crate must not depend on actix, Diesel or tonic servers: it is the vocabulary the two
//! services share, not a place for either one's machinery.

pub mod args;
pub mod clock;
pub mod config;
pub mod grant_type;
pub mod metrics;
pub mod oauth_error;
pub mod request_id;
pub mod scope;
pub mod secret;
pub mod signals;
pub mod telemetry;
pub mod tls;

pub use clock::{Clock, ManualClock, SystemClock};
pub use grant_type::GrantType;
pub use oauth_error::ErrorCode;
pub use scope::{Scope, ScopeError, ScopeSet};
pub use secret::Secret;
