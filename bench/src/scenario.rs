//! What a run measures (`Scenario`) and how it prepares (`Preparation`): the vocabulary
//! that `prepare` and `runner` share, apart from both.

use std::time::Duration;

use serde::Serialize;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Scenario {
    /// `POST /oauth/token` grant_type=client_credentials.
    ClientCredentials,
    /// `POST /oauth/token` grant_type=password (argon2-bound).
    Password,
    /// `POST /oauth/token` grant_type=refresh_token, each worker rotating its own token.
    Refresh,
    /// `POST /oauth/token` grant_type=authorization_code with codes minted beforehand.
    AuthorizationCode,
    /// `GET /api/v4/user` over a pool of user tokens.
    ApiUser,
    /// `POST /oauth/introspect` over a pool of user tokens.
    Introspect,
    /// gRPC `TokenValidation.Validate` over a working set of client_credentials tokens.
    GrpcValidate,
}

impl Scenario {
    /// Every scenario, in the order a full run measures them.
    pub const ALL: [Scenario; 7] = [
        Scenario::ClientCredentials,
        Scenario::Password,
        Scenario::Refresh,
        Scenario::AuthorizationCode,
        Scenario::ApiUser,
        Scenario::Introspect,
        Scenario::GrpcValidate,
    ];

    /// The name used on the command line, in file names and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ClientCredentials => "client_credentials",
            Scenario::Password => "password",
            Scenario::Refresh => "refresh",
            Scenario::AuthorizationCode => "authorization_code",
            Scenario::ApiUser => "api_user",
            Scenario::Introspect => "introspect",
            Scenario::GrpcValidate => "grpc_validate",
        }
    }
}

/// Sizes of what is prepared before the timed phase, and the time limits of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Preparation {
    /// Distinct live tokens that `grpc_validate` cycles through.
    pub working_set: usize,
    /// User access tokens that `api_user` and `introspect` cycle through.
    pub token_pool: usize,
    /// Expected authorization_code exchanges per second: codes minted per run are this
    /// times (warm-up + duration) times 1.25.
    pub code_rate_hint: u64,
    /// Seconds one request may take before it counts as an error (`timeout: ...`).
    pub request_timeout_s: f64,
    /// Seconds the preparation of one run may take (minting codes, filling pools). Minting
    /// authorization codes stops there and the run goes on with the codes it has; anything
    /// else that is not ready by then fails the run (reported as an error, not a hang).
    pub prepare_timeout_s: f64,
}

impl Preparation {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_s.max(0.001))
    }

    pub(crate) fn prepare_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.prepare_timeout_s.max(0.001))
    }
}
