//! `/users/sign_in`, `/users/sign_out` and the signed-in home page. Sign-in failures do not
//! say whether the account exists and take as long either way (token-service verifies a
//! dummy hash); throttling answers 429 with `Retry-After`.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;

use crate::page_support::{page_form, redirect};
use crate::pages::{self, render};
use crate::params::Params;
use crate::session::{self, SessionUser};
use crate::state::WebState;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    return_to: &'a str,
    login: &'a str,
    error: Option<&'a str>,
    sign_up_enabled: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    username: &'a str,
}

/// Where to go after signing in: the query's `return_to` when it is a local path.
fn return_to(req: &HttpRequest) -> String {
    let query = Params::parse_query(req.query_string()).unwrap_or_default();
    session::safe_return_path(query.get("return_to")).unwrap_or_else(|| "/".to_owned())
}

fn sign_in_page(
    state: &WebState,
    session: &Session,
    status: StatusCode,
    return_to: &str,
    login: &str,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = session::csrf_token(session);
    render(
        status,
        &SignInPage {
            signed_in_as: None,
            csrf: &csrf,
            return_to,
            login,
            error,
            sign_up_enabled: state.config.web.sign_up_enabled,
        },
    )
}

/// `GET /users/sign_in`.
pub async fn show(req: HttpRequest, session: Session, state: web::Data<WebState>) -> HttpResponse {
    let target = return_to(&req);
    if session::current_user(&session, &state.config, state.now()).is_some() {
        return redirect(&target);
    }
    sign_in_page(&state, &session, StatusCode::OK, &target, "", None)
}

/// `POST /users/sign_in`.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> HttpResponse {
    let params = match page_form(&req, payload, &session).await {
        Ok(params) => params,
        Err(page) => return page,
    };
    let target =
        session::safe_return_path(params.get("return_to")).unwrap_or_else(|| "/".to_owned());
    let login = params.get("login").unwrap_or("").trim().to_owned();
    let password = params.owned("password").unwrap_or_default();
    if login.is_empty() || password.is_empty() {
        return sign_in_page(
            &state,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            &target,
            &login,
            Some("Enter your username or e-mail and your password."),
        );
    }
    let request = pb::AuthenticatePasswordRequest {
        login: login.clone(),
        password,
        context: Some(state.request_context(&req)),
    };
    let outcome = state
        .upstream
        .users
        .clone()
        .authenticate_password(request)
        .await;
    let result = match outcome {
        Ok(response) => response.into_inner().result,
        Err(status) => {
            let err = crate::error::OAuthError::from_status(&status);
            return pages::error_page(
                err.status,
                "Sign-in is unavailable",
                &err.code,
                "Doorward cannot check passwords right now. Try again in a moment.",
            );
        }
    };
    match result {
        Some(pb::authenticate_password_response::Result::User(user)) => {
            session::sign_in(
                &session,
                SessionUser {
                    id: user.id,
                    username: user.username,
                    auth_time: state.now(),
                    admin: user.admin,
                },
                state.now(),
            );
            redirect(&target)
        }
        // The password hashing queue is full: not the user's fault, so the form stays
        // filled and says so, with Retry-After like the token endpoint's 503.
        Some(pb::authenticate_password_response::Result::Error(error))
            if error.error == ErrorCode::TemporarilyUnavailable.as_str() =>
        {
            let mut page = sign_in_page(
                &state,
                &session,
                StatusCode::SERVICE_UNAVAILABLE,
                &target,
                &login,
                Some("Doorward is busy checking other passwords. Try again in a moment."),
            );
            if let Ok(value) = header::HeaderValue::from_str(&error.retry_after_seconds.to_string())
            {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            page
        }
        Some(pb::authenticate_password_response::Result::Error(error))
            if error.retry_after_seconds > 0 =>
        {
            let mut page = sign_in_page(
                &state,
                &session,
                StatusCode::TOO_MANY_REQUESTS,
                &target,
                &login,
                Some("Too many failed sign-in attempts. Wait a few minutes, then try again."),
            );
            if let Ok(value) = header::HeaderValue::from_str(&error.retry_after_seconds.to_string())
            {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            page
        }
        _ => sign_in_page(
            &state,
            &session,
            StatusCode::UNAUTHORIZED,
            &target,
            &login,
            Some("Invalid username, e-mail or password."),
        ),
    }
}

/// `POST /users/sign_out`.
pub async fn sign_out(req: HttpRequest, payload: web::Payload, session: Session) -> HttpResponse {
    if let Err(page) = page_form(&req, payload, &session).await {
        return page;
    }
    session::sign_out(&session);
    redirect("/users/sign_in")
}

/// `GET /`: who is signed in, or the sign-in page.
pub async fn home(session: Session, state: web::Data<WebState>) -> HttpResponse {
    match session::current_user(&session, &state.config, state.now()) {
        Some(user) => {
            let csrf = session::csrf_token(&session);
            render(
                StatusCode::OK,
                &HomePage {
                    signed_in_as: Some(&user.username),
                    csrf: &csrf,
                    username: &user.username,
                },
            )
        }
        None => redirect("/users/sign_in"),
    }
}
