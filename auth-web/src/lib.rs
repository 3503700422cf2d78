//! Doorward's HTTP face: `/oauth/*`, the resource API (`/api/v4/user`), and later the pages
//! and discovery. Stateless: it never opens a database connection; every fact comes from
//! token-service over gRPC, one call per request.

pub mod back_channel;
pub mod client_auth;
pub mod client_ip;
pub mod error;
pub mod metrics;
pub mod observe;
pub mod page_error;
pub mod page_support;
pub mod pages;
pub mod params;
pub mod readiness;
pub mod routes;
pub mod session;
pub mod startup;
pub mod state;
pub mod upstream;
pub mod upstream_timing;

pub use startup::AuthWebApp;
