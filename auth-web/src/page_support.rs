//! What several pages share: a local redirect, a form read with its CSRF token checked, the
//! signed-in user (or a trip to the sign-in page that comes back), and the name of an
//! application's owner as the consent pages show it. Routes use these; nothing here uses a
//! route.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use doorward_proto::v1 as pb;

use crate::pages;
use crate::params::{Params, read_body};
use crate::session::{self, CSRF_FIELD, SessionUser};
use crate::state::WebState;

/// A 303 to a local path.
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Reads a page form and checks its CSRF token; any failure is an HTML page.
pub async fn page_form(
    req: &HttpRequest,
    payload: web::Payload,
    session: &Session,
) -> Result<Params, HttpResponse> {
    let body = read_body(payload).await.map_err(|e| {
        pages::error_page(
            e.status,
            "That request could not be read",
            &e.code,
            &e.description,
        )
    })?;
    let params = Params::parse(req, &body).map_err(|e| {
        pages::error_page(
            e.status,
            "That request could not be read",
            &e.code,
            &e.description,
        )
    })?;
    if !session::csrf_valid(session, params.get(CSRF_FIELD)) {
        return Err(pages::error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "invalid_request",
            "The form's security token is missing or does not match your session. Go back, reload the page and try again.",
        ));
    }
    Ok(params)
}

/// A redirect to the sign-in page that comes back to `path_and_query` afterwards.
pub fn to_sign_in(path_and_query: &str) -> HttpResponse {
    let query = serde_urlencoded::to_string([("return_to", path_and_query)]).unwrap_or_default();
    redirect(&format!("/users/sign_in?{query}"))
}

/// The signed-in user, or a redirect to the sign-in page that comes back here.
pub fn require_user(
    req: &HttpRequest,
    session: &Session,
    state: &WebState,
) -> Result<SessionUser, Box<HttpResponse>> {
    session::current_user(session, &state.config, state.now()).ok_or_else(|| {
        let here = match req.query_string() {
            "" => req.path().to_owned(),
            query => format!("{}?{query}", req.path()),
        };
        Box::new(to_sign_in(&here))
    })
}

/// The signed-in user as token-service knows them now: a blocked or deleted account is
/// signed out, and a changed administrator flag takes effect at once (the session's copy is
/// only what was true at sign-in). Used by the pages that change things.
pub async fn require_current_user(
    req: &HttpRequest,
    session: &Session,
    state: &WebState,
) -> Result<SessionUser, Box<HttpResponse>> {
    let mut user = require_user(req, session, state)?;
    let current = state
        .upstream
        .users
        .clone()
        .get_user(pb::GetUserRequest { id: user.id })
        .await
        .map_err(|_| Box::new(pages::unavailable_page()))?
        .into_inner()
        .user;
    match current {
        Some(current) if current.state == "active" => {
            user.admin = current.admin;
            Ok(user)
        }
        _ => {
            session::sign_out(session);
            Err(Box::new(redirect("/users/sign_in")))
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
