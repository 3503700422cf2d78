//! End-to-end tests: both services on free ports, real gRPC between them, real HTTP clients.
//! Every test runs on SQLite, and on PostgreSQL when `TEST_POSTGRES_URL` is set.
//! Tests named `sec_*` carry the ID of the rule they check (docs/security-model.md).

#![allow(clippy::unwrap_used)]

mod api;
mod boundary;
mod chromium;
mod code_flow;
mod database;
mod device;
mod discovery;
mod example_device_login;
mod example_resource_server;
mod grpc;
mod housekeeping;
mod jwt_attacks;
mod lifecycle;
mod multi_host;
mod oidc;
mod operations;
mod pages;
mod refresh;
mod resilience;
mod secret_rotation;
mod seed;
mod storage;
mod tls;
mod token_errors;
mod validation;
