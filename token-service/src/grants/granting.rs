//! What a grant's `apply` is handed once the prologue every grant shares has passed
//! (`grants::exchange`): the authenticated application, allowed to use the grant.

use crate::db::models::ApplicationRow;
use crate::state::AppState;

/// An authenticated client about to be granted tokens.
pub struct Granting<'a> {
    /// The shared state.
    pub state: &'a AppState,
    /// The client's application, authenticated and registered for the grant.
    pub app: ApplicationRow,
    /// The client IP as auth-web saw it (the password grant's sign-in throttle counts by it).
    pub client_ip: &'a str,
}
