//! `/users/sign_in`, `/users/sign_out` and the signed-in home page. Sign-in failures do not
//! say whether the account exists and take as long either way (token-service verifies a
//! dummy hash); throttling answers 429 with `Retry-After`.

use crate::metrics::SignIn;
use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;

use crate::page_error::PageError;
use crate::page_support::{page_form, sign_in_as};
use crate::pages::{redirect, render};
use crate::params::Params;
use crate::session;
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

/// What the sign-in form posted.
struct SignInForm {
    /// Where to go afterwards (a local path).
    target: String,
    login: String,
    password: String,
}

impl SignInForm {
    fn read(params: &Params) -> Self {
        Self {
            target: session::safe_return_path(params.get("return_to"))
                .unwrap_or_else(|| "/".to_owned()),
            login: params.get("login").unwrap_or("").trim().to_owned(),
            password: params.owned("password").unwrap_or_default(),
        }
    }

    /// The form again, still filled in (but for the password), saying what went wrong.
    fn again(
        &self,
        state: &WebState,
        session: &Session,
        status: StatusCode,
        error: &str,
    ) -> HttpResponse {
        sign_in_page(
            state,
            session,
            status,
            &self.target,
            &self.login,
            Some(error),
        )
    }
}

/// `POST /users/sign_in`.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let params = page_form(&req, payload, &session).await?;
    let mut form = SignInForm::read(&params);
    if form.login.is_empty() || form.password.is_empty() {
        return Ok(form.again(
            &state,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your username or e-mail and your password.",
        ));
    }
    let request = pb::AuthenticatePasswordRequest {
        login: form.login.clone(),
        // Moved, not copied: the fewer copies of a password, the better.
        password: std::mem::take(&mut form.password),
        context: Some(state.request_context(&req)),
    };
    let answer = state
        .upstream
        .users
        .clone()
        .authenticate_password(request)
        .await
        .map_err(|status| {
            crate::metrics::sign_in(SignIn::Unavailable);
            PageError::SignInUnavailable(status)
        })?;
    Ok(match answer.into_inner().result {
        Some(pb::authenticate_password_response::Result::User(user)) => {
            crate::metrics::sign_in(SignIn::Succeeded);
            sign_in_as(&session, &state, user);
            redirect(&form.target)
        }
        Some(pb::authenticate_password_response::Result::Error(error)) => {
            refused(&state, &session, &form, &error)
        }
        None => form.again(
            &state,
            &session,
            StatusCode::UNAUTHORIZED,
            "Invalid username, e-mail or password.",
        ),
    })
}

/// A refused sign-in as the form shows it. Bad credentials never say which part was
/// wrong; a full password hashing queue or a throttle is not the user's fault, so the form
/// says so, with `Retry-After` like the token endpoint's 503 and 429.
fn refused(
    state: &WebState,
    session: &Session,
    form: &SignInForm,
    error: &pb::OAuthError,
) -> HttpResponse {
    let (status, message) =
        if ErrorCode::parse(&error.error) == Some(ErrorCode::TemporarilyUnavailable) {
            crate::metrics::sign_in(SignIn::Unavailable);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Doorward is busy checking other passwords. Try again in a moment.",
            )
        } else if error.retry_after_seconds > 0 {
            crate::metrics::sign_in(SignIn::Throttled);
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-in attempts. Wait a few minutes, then try again.",
            )
        } else {
            crate::metrics::sign_in(SignIn::Failed);
            return form.again(
                state,
                session,
                StatusCode::UNAUTHORIZED,
                "Invalid username, e-mail or password.",
            );
        };
    let mut page = form.again(state, session, status, message);
    if let Ok(value) = header::HeaderValue::from_str(&error.retry_after_seconds.to_string()) {
        page.headers_mut().insert(header::RETRY_AFTER, value);
    }
    page
}

/// `POST /users/sign_out`.
pub async fn sign_out(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
) -> Result<HttpResponse, PageError> {
    page_form(&req, payload, &session).await?;
    session::sign_out(&session);
    Ok(redirect("/users/sign_in"))
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
