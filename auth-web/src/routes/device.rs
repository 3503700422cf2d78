//! The device authorization grant (RFC 8628) over HTTP: `POST /oauth/authorize_device` for
//! the device, and the verification pages `/oauth/device` for the user.
//!
//! The pages need a signed-in user. Entering a code (typed, or pre-filled from
//! `verification_uri_complete`) only shows what the device asks for; nothing is allowed
//! until the user presses Authorize on that page, a POST with the session's CSRF token
//! (SEC-DV-05). Wrong codes are counted by token-service per user and IP (SEC-DV-02) and
//! answered 429 with `Retry-After` past the limit.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;
use serde_json::json;

use crate::back_channel::{back_channel_answer, back_channel_params};
use crate::client_auth;
use crate::error::{OAuthError, no_store};
use crate::page_error::PageError;
use crate::page_support::{owner_name, page_form, require_user};
use crate::pages::{describe_scope, render};
use crate::params::Params;
use crate::session::{self, SessionUser};
use crate::state::WebState;

#[derive(Template)]
#[template(path = "device.html")]
struct EntryPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    app_name: &'a str,
    owner: &'a str,
    user_code: &'a str,
    scopes: Vec<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct DonePage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    title: &'a str,
    message: &'a str,
}

/// `POST /oauth/authorize_device` (RFC 8628 §3.1): the device asks for a code pair.
pub async fn authorize_device(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    match start(&req, payload, &state).await {
        Ok(authorization) => {
            let verification_uri = format!("{}/oauth/device", state.public_url());
            let complete = format!(
                "{verification_uri}?{}",
                serde_urlencoded::to_string([("user_code", &authorization.user_code)])
                    .unwrap_or_default()
            );
            let mut builder = HttpResponse::Ok();
            no_store(&mut builder);
            builder.json(json!({
                "device_code": authorization.device_code,
                "user_code": authorization.user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": complete,
                "expires_in": authorization.expires_in,
                "interval": authorization.interval,
            }))
        }
        Err(err) => err.response(),
    }
}

async fn start(
    req: &HttpRequest,
    payload: web::Payload,
    state: &WebState,
) -> Result<pb::DeviceAuthorization, OAuthError> {
    let params = back_channel_params(req, payload).await?;
    let credentials = client_auth::extract(req, &params)?;
    let response = state
        .upstream
        .devices
        .clone()
        .start_device_authorization(pb::StartDeviceAuthorizationRequest {
            client: credentials.client,
            scope: params.owned("scope"),
            context: Some(state.request_context(req)),
        })
        .await
        .map_err(|status| OAuthError::from_status(&status))?
        .into_inner();
    let answer = response.result.map(|result| match result {
        pb::start_device_authorization_response::Result::Authorization(a) => Ok(a),
        pb::start_device_authorization_response::Result::Error(error) => Err(error),
    });
    back_channel_answer(answer, credentials.used_basic)
}

fn entry_page(
    session: &Session,
    user: &SessionUser,
    status: StatusCode,
    user_code: &str,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = session::csrf_token(session);
    render(
        status,
        &EntryPage {
            signed_in_as: Some(&user.username),
            csrf: &csrf,
            user_code,
            error,
        },
    )
}

/// `GET /oauth/device[?user_code=...]`: the code entry form, pre-filled when the device
/// handed out `verification_uri_complete`.
pub async fn show(
    req: HttpRequest,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_user(&req, &session, &state)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let user_code = pairs
        .iter()
        .find(|(k, _)| k == "user_code")
        .map(|(_, v)| v.chars().take(20).collect::<String>())
        .unwrap_or_default();
    Ok(entry_page(
        &session,
        &user,
        StatusCode::OK,
        &user_code,
        None,
    ))
}

/// A refusal from token-service as the entry page shows it.
fn refused(session: &Session, user: &SessionUser, error: pb::OAuthError) -> HttpResponse {
    if error.retry_after_seconds > 0 {
        let mut page = entry_page(
            session,
            user,
            StatusCode::TOO_MANY_REQUESTS,
            "",
            Some("Too many wrong codes. Wait a few minutes before you try again."),
        );
        if let Ok(value) = header::HeaderValue::from_str(&error.retry_after_seconds.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return page;
    }
    let (status, message) = match ErrorCode::parse(&error.error) {
        Some(ErrorCode::ExpiredToken) => (
            StatusCode::GONE,
            "That code has expired. Start again on your device to get a new one.",
        ),
        _ if error.error_description.contains("already been used") => (
            StatusCode::CONFLICT,
            "That code has already been used. Start again on your device to get a new one.",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "That code is not valid. Check it against your device and try again.",
        ),
    };
    entry_page(session, user, status, "", Some(message))
}

/// The signed-in user and the page form they posted (CSRF checked).
async fn signed_in_form(
    req: &HttpRequest,
    payload: web::Payload,
    session: &Session,
    state: &WebState,
) -> Result<(SessionUser, Params), PageError> {
    let user = require_user(req, session, state)?;
    let params = page_form(req, payload, session).await?;
    Ok((user, params))
}

/// `POST /oauth/device`: looks the code up and shows what the device asks for.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let (user, params) = signed_in_form(&req, payload, &session, &state).await?;
    let user_code = params.owned("user_code").unwrap_or_default();
    let looked_up = state
        .upstream
        .devices
        .clone()
        .lookup_user_code(pb::LookupUserCodeRequest {
            user_code: user_code.clone(),
            context: Some(state.request_context(&req)),
            user_id: user.id,
        })
        .await?;
    match looked_up.into_inner().result {
        Some(pb::lookup_user_code_response::Result::Pending(pending)) => {
            confirm_page(&session, &state, &user, &user_code, pending).await
        }
        Some(pb::lookup_user_code_response::Result::Error(error)) => {
            Ok(refused(&session, &user, error))
        }
        None => Err(PageError::empty_answer("LookupUserCode")),
    }
}

/// What the device asks for, with the Authorize and Deny buttons.
async fn confirm_page(
    session: &Session,
    state: &WebState,
    user: &SessionUser,
    user_code: &str,
    pending: pb::PendingDeviceAuthorization,
) -> Result<HttpResponse, PageError> {
    let app = pending
        .application
        .ok_or_else(|| PageError::empty_answer("LookupUserCode"))?;
    let owner = owner_name(state, app.owner_id).await;
    let scopes = pending
        .scopes
        .into_iter()
        .map(|s| {
            let description = describe_scope(&s);
            (s, description)
        })
        .collect();
    let csrf = session::csrf_token(session);
    let shown = display_code(user_code);
    Ok(render(
        StatusCode::OK,
        &ConfirmPage {
            signed_in_as: Some(&user.username),
            csrf: &csrf,
            app_name: &app.name,
            owner: &owner,
            user_code: &shown,
            scopes,
        },
    ))
}

/// A user code as the device shows it (`XXXX-XXXX`), however it was typed.
fn display_code(typed: &str) -> String {
    let code: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.len() == 8 {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code
    }
}

/// `POST /oauth/device/decide`: the user's Authorize or Deny.
pub async fn decide(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let (user, params) = signed_in_form(&req, payload, &session, &state).await?;
    let approve = match params.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Err(PageError::refused(
                StatusCode::BAD_REQUEST,
                "That request could not be read",
                ErrorCode::InvalidRequest,
                "Choose Authorize or Deny.",
            ));
        }
    };
    let decided = state
        .upstream
        .devices
        .clone()
        .decide_user_code(pb::DecideUserCodeRequest {
            user_code: params.owned("user_code").unwrap_or_default(),
            user_id: user.id,
            approve,
            context: Some(state.request_context(&req)),
        })
        .await?;
    match decided.into_inner().result {
        Some(pb::lookup_user_code_response::Result::Pending(_)) => {
            Ok(done_page(&session, &user, approve))
        }
        Some(pb::lookup_user_code_response::Result::Error(error)) => {
            Ok(refused(&session, &user, error))
        }
        None => Err(PageError::empty_answer("DecideUserCode")),
    }
}

/// The last page: the device may now go on, or it was turned away.
fn done_page(session: &Session, user: &SessionUser, approved: bool) -> HttpResponse {
    let (title, message) = if approved {
        (
            "Device connected",
            "Device successfully authorized. You can go back to your device now.",
        )
    } else {
        (
            "Access denied",
            "The device was not allowed to use your account. You can close this page.",
        )
    };
    let csrf = session::csrf_token(session);
    render(
        StatusCode::OK,
        &DonePage {
            signed_in_as: Some(&user.username),
            csrf: &csrf,
            title,
            message,
        },
    )
}
