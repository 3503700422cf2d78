//! The rules every grant shares, and the authorization and device endpoints with them:
//! which grant an application may use, which scopes a request gets, and the refusals worded
//! as doorkeeper words them.

use doorward_shared::{ErrorCode, GrantType, ScopeError, ScopeSet};

use crate::db::models::ApplicationRow;
use crate::error::{OAuthFailure, ServiceError};
use crate::issuance::RefreshPlan;

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
pub fn refresh_plan_for(app: &ApplicationRow) -> RefreshPlan {
    if app.allows_grant(GrantType::RefreshToken) {
        RefreshPlan::NewFamily
    } else {
        RefreshPlan::None
    }
}

/// The scopes an application was registered with. A stored value that does not parse is
/// the service's failure, naming the row: it never shrinks to no scopes at all.
pub fn registered_scopes(app: &ApplicationRow) -> Result<ScopeSet, ServiceError> {
    ScopeSet::parse(&app.scopes)
        .map_err(|_| ServiceError::corrupt("applications", app.id, "scopes"))
}

/// Stored scopes (of a code, a device authorization, a token), parsed; `table`, `id` and
/// `column` name the row when they do not parse.
pub fn stored_scopes(
    value: &str,
    table: &'static str,
    id: impl ToString,
    column: &'static str,
) -> Result<ScopeSet, ServiceError> {
    ScopeSet::parse(value).map_err(|_| ServiceError::corrupt(table, id, column))
}

/// The scopes a request gets: the requested ones if the application may have them all
/// (`registered`), or the default scope when none is asked for (RFC 6749 §3.3).
pub fn resolve_scopes(
    requested: Option<&str>,
    registered: &ScopeSet,
) -> Result<ScopeSet, OAuthFailure> {
    let requested = match requested.map(str::trim) {
        None | Some("") => return default_scopes(registered),
        Some(value) => ScopeSet::parse(value).map_err(scope_failure)?,
    };
    if requested.is_empty() || !requested.is_subset_of(registered) {
        return Err(OAuthFailure::new(ErrorCode::InvalidScope));
    }
    Ok(requested)
}

/// The default scope, as far as the application is registered for it.
fn default_scopes(registered: &ScopeSet) -> Result<ScopeSet, OAuthFailure> {
    let granted = ScopeSet::default_scope().intersection(registered);
    if granted.is_empty() {
        return Err(OAuthFailure::with(
            ErrorCode::InvalidScope,
            "No scope was requested and the application is not registered for the default scope (api).",
        ));
    }
    Ok(granted)
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
