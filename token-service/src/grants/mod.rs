//! The grant types of `POST /oauth/token`, one file each.
//!
//! A token request arrives parsed (`TokenRequest`, built once at the gRPC edge, so the
//! grants never see protobuf). `exchange` runs what every grant shares (the
//! client-authentication throttle, client authentication, the application's registered
//! grant types) and hands the grant's own typed parameters to its file's `apply`. A new
//! grant is a variant of `GrantRequest` and one file (ARCHITECTURE.md, "Add a grant").

mod authorization_code;
mod client_credentials;
mod device_code;
mod granting;
mod password;
mod refresh_token;
pub mod rules;

use doorward_shared::{ErrorCode, GrantType};

use crate::clients::{self, ClientAuth};
use crate::error::GrantError;
use crate::issuance::TokenResponse;
use crate::state::AppState;

pub use granting::Granting;

pub use authorization_code::AuthorizationCodeGrant;
pub use client_credentials::ClientCredentialsGrant;
pub use device_code::DeviceCodeGrant;
pub use password::PasswordGrant;
pub use refresh_token::{RefreshTokenGrant, derive_successor_refresh_token};

/// A token request: who asks, from where, and for which grant.
#[derive(Debug)]
pub struct TokenRequest {
    /// The client's credentials, if it sent any.
    pub client: Option<ClientAuth>,
    /// The client IP as auth-web saw it (empty when the caller may not say; see
    /// `grpc::caller`): the throttles count per IP.
    pub client_ip: String,
    /// The grant and its parameters.
    pub grant: GrantRequest,
}

/// The grant a token request asks for, with its own parameters, typed and present.
#[derive(Debug)]
pub enum GrantRequest {
    /// RFC 6749 §4.1.3.
    AuthorizationCode(AuthorizationCodeGrant),
    /// RFC 6749 §6.
    RefreshToken(RefreshTokenGrant),
    /// RFC 6749 §4.4.
    ClientCredentials(ClientCredentialsGrant),
    /// RFC 6749 §4.3.
    Password(PasswordGrant),
    /// RFC 8628 §3.4.
    DeviceCode(DeviceCodeGrant),
}

impl GrantRequest {
    /// The grant type asked for.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode(_) => GrantType::AuthorizationCode,
            Self::RefreshToken(_) => GrantType::RefreshToken,
            Self::ClientCredentials(_) => GrantType::ClientCredentials,
            Self::Password(_) => GrantType::Password,
            Self::DeviceCode(_) => GrantType::DeviceCode,
        }
    }
}

/// Runs the token request and returns the token response or why not.
///
/// SEC-RL-03: a client whose secret failed too often (per client_id and client IP) is
/// refused with 429 before its secret is compared (`clients::throttled`).
pub async fn exchange(
    state: &AppState,
    request: TokenRequest,
) -> Result<TokenResponse, GrantError> {
    let grant_type = request.grant.grant_type();
    let result = exchange_counted(state, request).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(GrantError::OAuth(failure)) => failure.code.as_str(),
        Err(GrantError::Service(_)) => ErrorCode::ServerError.as_str(),
    };
    crate::metrics::grant(grant_type, outcome);
    result
}

async fn exchange_counted(
    state: &AppState,
    request: TokenRequest,
) -> Result<TokenResponse, GrantError> {
    let TokenRequest {
        client,
        client_ip,
        grant,
    } = request;
    clients::throttled(state, client.as_ref(), &client_ip, async {
        let app = clients::authenticate_async(state, client.as_ref(), state.now()).await?;
        // SEC-TK-06.
        rules::require_grant(&app, grant.grant_type())?;
        let granting = Granting {
            state,
            app,
            client_ip: &client_ip,
        };
        match grant {
            GrantRequest::AuthorizationCode(grant) => grant.apply(granting).await,
            GrantRequest::RefreshToken(grant) => grant.apply(granting).await,
            GrantRequest::ClientCredentials(grant) => grant.apply(granting).await,
            GrantRequest::Password(grant) => grant.apply(granting).await,
            GrantRequest::DeviceCode(grant) => grant.apply(granting).await,
        }
    })
    .await
}
