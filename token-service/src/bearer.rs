//! Bearer-token checks for protected resources (`/api/v4/user`, userinfo, token info):
//! signature, expiry, revocation and the user, through the validation cache.

use std::sync::Arc;

use crate::error::{Outcome, ServiceError};
use crate::state::AppState;
use crate::validation::{self, Inactive, ValidToken};

/// Why a bearer token does not open the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerRefusal {
    /// Malformed, not ours, unknown.
    Invalid,
    /// Past its `exp`.
    Expired,
    /// Revoked.
    Revoked,
    /// The resource is a user's, and the token has no (active) user.
    NoResourceOwner,
    /// The token has none of the scopes the resource accepts (space-separated here).
    InsufficientScope(String),
}

/// Authenticates `access_token` for a resource needing one of `any_of_scopes` (any token
/// when empty), and a user when `require_user`.
///
/// The token is checked as `TokenValidation.Validate` checks it (`validation::check`): a
/// token checked within `tokens.validation_cache_seconds` costs a hash and a lookup.
pub async fn authenticate(
    state: &AppState,
    access_token: &str,
    require_user: bool,
    any_of_scopes: &[String],
) -> Result<Outcome<Arc<ValidToken>, BearerRefusal>, ServiceError> {
    let refused = |refusal| Ok(Outcome::Refused(refusal));
    let valid = match validation::check(state, access_token).await? {
        Outcome::Done(valid) => valid,
        Outcome::Refused(Inactive::Expired) => return refused(BearerRefusal::Expired),
        Outcome::Refused(Inactive::Revoked) => return refused(BearerRefusal::Revoked),
        Outcome::Refused(_) => return refused(BearerRefusal::Invalid),
    };
    if require_user && (valid.user.is_none() || !valid.user_active) {
        return refused(BearerRefusal::NoResourceOwner);
    }
    if !any_of_scopes.is_empty() && !any_of_scopes.iter().any(|s| valid.scopes.contains(s)) {
        return refused(BearerRefusal::InsufficientScope(any_of_scopes.join(" ")));
    }
    Ok(Outcome::Done(valid))
}
