//! The grant types of `POST /oauth/token`, one file each. `exchange` dispatches on
//! `grant_type`; every grant authenticates the client, applies its rules and mints through
//! `issuance`.

mod authorization_code;
mod client_credentials;
mod device_code;
mod password;
mod refresh_token;

use doorward_proto::v1 as pb;
use doorward_shared::{ErrorCode, GrantType, ScopeError, ScopeSet};

use crate::db::models::ApplicationRow;
use crate::error::{GrantError, OAuthFailure};
use crate::state::AppState;

pub use refresh_token::derive_successor_refresh_token;

/// Runs the token request `request` and returns the token response or why not.
///
/// SEC-RL-03: a client whose secret failed too often (per client_id and client IP) is
/// refused with 429 before its secret is compared; only failures are counted, so a busy
/// client with many requests in flight is never throttled. (Parallel guesses can overshoot
/// the limit by the number in flight; with 256-bit secrets this is defence in depth.)
pub async fn exchange(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    let client = request.client.clone();
    let context = request.context.clone();
    client_auth_throttled(
        state,
        client.as_ref(),
        context.as_ref(),
        dispatch(state, request),
    )
    .await
}

/// Runs `work` (which authenticates `client`) under the client-authentication throttle
/// (SEC-RL-03): a client that presents a secret and failed too often from this IP is
/// refused with 429 before `work` runs, and a failure of `work` with `invalid_client` is
/// counted. Used by the token endpoint and the device authorization endpoint.
pub async fn client_auth_throttled<T>(
    state: &AppState,
    client: Option<&pb::ClientAuthentication>,
    context: Option<&pb::RequestContext>,
    work: impl std::future::Future<Output = Result<T, GrantError>>,
) -> Result<T, GrantError> {
    let secret_holder = client
        .filter(|c| c.client_secret.is_some())
        .map(|c| throttle_account(&c.client_id));
    let ip = context.map(|c| c.client_ip.clone()).unwrap_or_default();
    if let Some(holder) = &secret_holder
        && let Err(retry_after) = state.client_throttle.check(holder, &ip, state.now())
    {
        tracing::warn!(target: "audit", event = "client_authentication_throttled", client_ip = %ip, "too many failed client authentications");
        let mut failure = OAuthFailure::with(
            ErrorCode::InvalidClient,
            "Too many failed client authentications. Try again later.",
        );
        failure.retry_after_seconds = retry_after;
        return Err(failure.into());
    }
    let result = work.await;
    if let Some(holder) = &secret_holder
        && matches!(&result, Err(GrantError::OAuth(f)) if f.code == ErrorCode::InvalidClient)
    {
        state
            .client_throttle
            .record_failure(holder, &ip, state.now());
    }
    result
}

/// The client-authentication throttle's "account" for a client_id.
pub fn throttle_account(client_id: &str) -> String {
    format!("client:{client_id}")
}

async fn dispatch(
    state: &AppState,
    request: pb::ExchangeRequest,
) -> Result<pb::TokenSet, GrantError> {
    if request.grant_type.is_empty() {
        return Err(OAuthFailure::missing("grant_type").into());
    }
    match GrantType::from_wire(&request.grant_type) {
        Some(GrantType::ClientCredentials) => client_credentials::exchange(state, request).await,
        Some(GrantType::Password) => password::exchange(state, request).await,
        Some(GrantType::RefreshToken) => refresh_token::exchange(state, request).await,
        Some(GrantType::AuthorizationCode) => authorization_code::exchange(state, request).await,
        Some(GrantType::DeviceCode) => device_code::exchange(state, request).await,
        None => Err(OAuthFailure::new(ErrorCode::UnsupportedGrantType).into()),
    }
}

/// SEC-TK-06: refuses a grant type the application is not registered for. Grants that need
/// a secret are refused to public clients whatever their registration says.
pub fn require_grant(app: &ApplicationRow, grant: GrantType) -> Result<(), OAuthFailure> {
    if app.allows_grant(grant) && (app.confidential || !grant.needs_client_secret()) {
        Ok(())
    } else {
        Err(OAuthFailure::new(ErrorCode::UnauthorizedClient))
    }
}

/// A new refresh family, if the application may refresh at all.
pub fn refresh_plan_for(app: &ApplicationRow) -> crate::issuance::RefreshPlan {
    if app.allows_grant(GrantType::RefreshToken) {
        crate::issuance::RefreshPlan::NewFamily
    } else {
        crate::issuance::RefreshPlan::None
    }
}

/// The scopes an application was registered with.
pub fn registered_scopes(app: &ApplicationRow) -> ScopeSet {
    ScopeSet::parse(&app.scopes).unwrap_or_default()
}

/// The scopes a request gets: the requested ones if the application may have them all, or
/// the default scope when none is asked for (RFC 6749 §3.3).
pub fn resolve_scopes(
    requested: Option<&str>,
    app: &ApplicationRow,
) -> Result<ScopeSet, OAuthFailure> {
    let registered = registered_scopes(app);
    let requested = match requested.map(str::trim) {
        None | Some("") => {
            let default =
                ScopeSet::parse(doorward_shared::scope::DEFAULT_SCOPE).unwrap_or_default();
            let granted = default.intersection(&registered);
            if granted.is_empty() {
                return Err(OAuthFailure::with(
                    ErrorCode::InvalidScope,
                    "No scope was requested and the application is not registered for the default scope (api).",
                ));
            }
            return Ok(granted);
        }
        Some(value) => ScopeSet::parse(value).map_err(scope_failure)?,
    };
    if requested.is_empty() || !requested.is_subset_of(&registered) {
        return Err(OAuthFailure::new(ErrorCode::InvalidScope));
    }
    Ok(requested)
}

/// `invalid_scope` for an unparsable scope parameter.
pub fn scope_failure(err: ScopeError) -> OAuthFailure {
    match err {
        ScopeError::TooLong => OAuthFailure::with(
            ErrorCode::InvalidRequest,
            "The scope parameter is too long.",
        ),
        _ => OAuthFailure::new(ErrorCode::InvalidScope),
    }
}

/// `invalid_grant` with doorkeeper's description.
pub fn invalid_grant() -> OAuthFailure {
    OAuthFailure::new(ErrorCode::InvalidGrant)
}
