//! The account pages: sign-up (`/users/sign_up`, can be switched off) and the applications
//! the user has authorized (`/oauth/authorized_applications`, list and revoke).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use doorward_proto::v1 as pb;

use crate::page_error::PageError;
use crate::page_support::{page_form, require_current_user, sign_in_as};
use crate::pages::{redirect, render};
use crate::session;
use crate::state::WebState;

#[derive(Template)]
#[template(path = "sign_up.html")]
struct SignUpPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    errors: Vec<String>,
    username: &'a str,
    name: &'a str,
    email: &'a str,
    min_length: usize,
}

struct AuthorizedRow {
    name: String,
    client_id: String,
    scopes: Vec<String>,
    since: String,
}

#[derive(Template)]
#[template(path = "authorized_applications.html")]
struct AuthorizedPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    applications: Vec<AuthorizedRow>,
}

/// Refuses the sign-up pages when sign-up is switched off, as if they did not exist.
fn sign_up_enabled(state: &WebState) -> Result<(), PageError> {
    if state.config.web.sign_up_enabled {
        Ok(())
    } else {
        Err(PageError::NotFound {
            heading: "Sign-up is closed",
            description: "New accounts are created by the administrator of this Doorward.",
        })
    }
}

/// `GET /users/sign_up`.
pub async fn sign_up_form(
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    sign_up_enabled(&state)?;
    let csrf = session::csrf_token(&session);
    Ok(render(
        StatusCode::OK,
        &SignUpPage {
            signed_in_as: None,
            csrf: &csrf,
            errors: Vec::new(),
            username: "",
            name: "",
            email: "",
            min_length: state.config.passwords.min_length,
        },
    ))
}

/// `POST /users/sign_up`: creates the account and signs it in.
pub async fn sign_up(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    sign_up_enabled(&state)?;
    let params = page_form(&req, payload, &session).await?;
    let username = params.get("username").unwrap_or("").trim().to_owned();
    let name = params.get("name").unwrap_or("").trim().to_owned();
    let email = params.get("email").unwrap_or("").trim().to_owned();
    let request = pb::CreateUserRequest {
        username: username.clone(),
        email: email.clone(),
        name: name.clone(),
        password: params.owned("password").unwrap_or_default(),
        admin: false,
    };
    let result = state.upstream.users.clone().create_user(request).await?;
    match result.into_inner().result {
        Some(pb::create_user_response::Result::User(user)) => {
            sign_in_as(&session, &state, user);
            Ok(redirect("/"))
        }
        Some(pb::create_user_response::Result::Errors(errors)) => {
            let csrf = session::csrf_token(&session);
            Ok(render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SignUpPage {
                    signed_in_as: None,
                    csrf: &csrf,
                    errors: errors
                        .errors
                        .into_iter()
                        .map(|e| format!("{} {}", capitalise(&e.field), e.message))
                        .collect(),
                    username: &username,
                    name: &name,
                    email: &email,
                    min_length: state.config.passwords.min_length,
                },
            ))
        }
        None => Err(PageError::empty_answer("CreateUser")),
    }
}

fn capitalise(field: &str) -> String {
    let mut chars = field.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars)
            .collect::<String>()
            .replace('_', " "),
        None => String::new(),
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!("[year]-[month]-[day]"))
                .ok()
        })
        .unwrap_or_default()
}

/// `GET /oauth/authorized_applications`.
pub async fn authorized(
    req: HttpRequest,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    let listed = state
        .upstream
        .authorizations
        .clone()
        .list_authorized_applications(pb::ListAuthorizedApplicationsRequest { user_id: user.id })
        .await?;
    let applications = listed
        .into_inner()
        .applications
        .into_iter()
        .filter_map(|a| {
            let app = a.application?;
            Some(AuthorizedRow {
                name: app.name,
                client_id: app.uid,
                scopes: a.scopes,
                since: date(a.authorized_at),
            })
        })
        .collect();
    let csrf = session::csrf_token(&session);
    Ok(render(
        StatusCode::OK,
        &AuthorizedPage {
            signed_in_as: Some(&user.username),
            csrf: &csrf,
            applications,
        },
    ))
}

/// `POST /oauth/authorized_applications/{client_id}/revoke`: revokes every token and code
/// of the user for that application (SEC-RT-07).
pub async fn revoke(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    page_form(&req, payload, &session).await?;
    state
        .upstream
        .authorizations
        .clone()
        .revoke_authorized_application(pb::RevokeAuthorizedApplicationRequest {
            user_id: user.id,
            client_id: path.into_inner(),
        })
        .await?;
    Ok(redirect("/oauth/authorized_applications"))
}
