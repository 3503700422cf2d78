//! What several pages share: a form read with its CSRF token checked, the signed-in user
//! (or a trip to the sign-in page that comes back), and the name of an application's owner
//! as the consent pages show it. Routes use these; nothing here uses a route.

use actix_session::Session;
use actix_web::{HttpRequest, web};
use doorward_proto::v1 as pb;

use crate::page_error::PageError;
use crate::params::{Params, read_body};
use crate::session::{self, CSRF_FIELD, SessionUser};
use crate::state::WebState;

/// Reads a page form and checks its CSRF token.
pub async fn page_form(
    req: &HttpRequest,
    payload: web::Payload,
    session: &Session,
) -> Result<Params, PageError> {
    let body = read_body(payload).await.map_err(PageError::Unreadable)?;
    let params = Params::parse(req, &body).map_err(PageError::Unreadable)?;
    if !session::csrf_valid(session, params.get(CSRF_FIELD)) {
        return Err(PageError::FormExpired);
    }
    Ok(params)
}

/// The signed-in user, or a detour through the sign-in page that comes back here.
pub fn require_user(
    req: &HttpRequest,
    session: &Session,
    state: &WebState,
) -> Result<SessionUser, PageError> {
    session::current_user(session, &state.config, state.now()).ok_or_else(|| {
        let here = match req.query_string() {
            "" => req.path().to_owned(),
            query => format!("{}?{query}", req.path()),
        };
        PageError::SignInNeeded {
            return_to: Some(here),
        }
    })
}

/// The signed-in user as token-service knows them now: a blocked or deleted account is
/// signed out, and a changed administrator flag takes effect at once (the session's copy is
/// only what was true at sign-in). Used by the pages that change things.
pub async fn require_current_user(
    req: &HttpRequest,
    session: &Session,
    state: &WebState,
) -> Result<SessionUser, PageError> {
    let mut user = require_user(req, session, state)?;
    let current = state
        .upstream
        .users
        .clone()
        .get_user(pb::GetUserRequest { id: user.id })
        .await?
        .into_inner()
        .user;
    match current {
        Some(current) if current.state == "active" => {
            user.admin = current.admin;
            Ok(user)
        }
        _ => {
            session::sign_out(session);
            Err(PageError::SignInNeeded { return_to: None })
        }
    }
}

/// SEC-WP-06: who registered an application, as the consent pages say it.
pub async fn owner_name(state: &WebState, owner_id: Option<i64>) -> String {
    match owner_id {
        Some(id) => state
            .upstream
            .users
            .clone()
            .get_user(pb::GetUserRequest { id })
            .await
            .ok()
            .and_then(|r| r.into_inner().user)
            .map_or_else(|| "a Doorward user".to_owned(), |u| u.username),
        None => "the administrator of this Doorward".to_owned(),
    }
}

/// Starts a fresh session for `user`, who has just proved who they are (sign-in or
/// sign-up).
pub fn sign_in_as(session: &Session, state: &WebState, user: pb::User) {
    session::sign_in(
        session,
        SessionUser {
            id: user.id,
            username: user.username,
            auth_time: state.now(),
            admin: user.admin,
        },
        state.now(),
    );
}
