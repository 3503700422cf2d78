//! `/oauth/authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2): the consent page and its answer.
//!
//! token-service checks every request (`Authorizations.PreAuthorize`, again at `IssueCode`);
//! this module owns the browser side: the session, `prompt=login` and `max_age`, the consent
//! form, and the response to the client (`query` or `form_post`, always with `state` and
//! `iss`, RFC 9207). Errors before the client and redirect URI are trusted are a page.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use doorward_proto::v1 as pb;
use doorward_shared::secret::{base64url, random_bytes};

use crate::page_support::{owner_name, page_form, to_sign_in};
use crate::pages::{self, STRICT_CSP, describe_scope, render_with_csp};
use crate::params::Params;
use crate::session::{self, SessionUser};
use crate::state::WebState;

/// Largest authorization request (its carried parameters, URL-encoded) that can wait in
/// the session cookie for the user's decision.
const MAX_PENDING_BYTES: usize = 2500;

/// The request parameters carried through the consent form.
const CARRIED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    app_name: &'a str,
    scopes: Vec<(String, &'static str)>,
    redirect_host: &'a str,
    owner: &'a str,
    fields: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    action: &'a str,
    fields: Vec<(&'static str, String)>,
    nonce: &'a str,
}

fn authorization_request(params: &Params) -> pb::AuthorizationRequest {
    pb::AuthorizationRequest {
        client_id: params.owned("client_id").unwrap_or_default(),
        redirect_uri: params.owned("redirect_uri").unwrap_or_default(),
        response_type: params.owned("response_type").unwrap_or_default(),
        response_mode: params.owned("response_mode"),
        scope: params.owned("scope"),
        state: params.owned("state"),
        code_challenge: params.owned("code_challenge"),
        code_challenge_method: params.owned("code_challenge_method"),
        nonce: params.owned("nonce"),
        prompt: params.owned("prompt"),
        max_age: params.get("max_age").and_then(|v| v.parse().ok()),
        has_request: params.contains("request"),
        has_request_uri: params.contains("request_uri"),
    }
}

fn page_error(error: &pb::OAuthError) -> HttpResponse {
    let status = match error.error.as_str() {
        "invalid_client" | "unauthorized_client" => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let heading = match error.error.as_str() {
        "invalid_redirect_uri" => "The redirect URI is not valid",
        "invalid_client" => "Unknown application",
        "unauthorized_client" => "This application cannot sign you in this way",
        _ => "The authorization request is not valid",
    };
    pages::error_page(status, heading, &error.error, &error.error_description)
}

/// `scheme://host[:port]` of a redirect URI, or `scheme:` for app schemes: what CSP's
/// `form-action` must allow for the response to reach the client.
fn csp_source(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url.origin().ascii_serialization(),
        Ok(url) => format!("{}:", url.scheme()),
        Err(_) => "'none'".into(),
    }
}

/// Sends the authorization response (success or error) to the client's redirect URI.
fn respond(
    state: &WebState,
    request: &pb::AuthorizationRequest,
    mut fields: Vec<(&'static str, String)>,
) -> HttpResponse {
    if let Some(value) = &request.state {
        fields.push(("state", value.clone()));
    }
    // RFC 9207 / SEC-AZ-04: the issuer in every response.
    fields.push(("iss", state.config.issuer().to_owned()));
    if request.response_mode.as_deref() == Some("form_post") {
        let nonce = base64url(&random_bytes::<16>());
        let csp = format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
            csp_source(&request.redirect_uri)
        );
        return render_with_csp(
            StatusCode::OK,
            &FormPostPage {
                action: &request.redirect_uri,
                fields,
                nonce: &nonce,
            },
            &csp,
        );
    }
    let query = serde_urlencoded::to_string(&fields).unwrap_or_default();
    let separator = if request.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    HttpResponse::Found()
        .insert_header((
            header::LOCATION,
            format!("{}{separator}{query}", request.redirect_uri),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn respond_error(
    state: &WebState,
    request: &pb::AuthorizationRequest,
    error: &pb::OAuthError,
) -> HttpResponse {
    respond(
        state,
        request,
        vec![
            ("error", error.error.clone()),
            ("error_description", error.error_description.clone()),
        ],
    )
}

/// Asks token-service for a code and sends it to the client.
async fn issue_and_respond(
    state: &WebState,
    request: pb::AuthorizationRequest,
    user: &SessionUser,
) -> HttpResponse {
    let response = state
        .upstream
        .authorizations
        .clone()
        .issue_code(pb::IssueCodeRequest {
            request: Some(request.clone()),
            user_id: user.id,
            auth_time: user.auth_time,
        })
        .await;
    match response.map(|r| r.into_inner().result) {
        Ok(Some(pb::issue_code_response::Result::Code(code))) => {
            respond(state, &request, vec![("code", code)])
        }
        Ok(Some(pb::issue_code_response::Result::Error(e))) => refused(state, &request, &e),
        Ok(None) | Err(_) => pages::unavailable_page(),
    }
}

fn refused(
    state: &WebState,
    request: &pb::AuthorizationRequest,
    error: &pb::AuthorizeError,
) -> HttpResponse {
    let oauth = error.error.clone().unwrap_or_default();
    if error.redirectable {
        respond_error(state, request, &oauth)
    } else {
        page_error(&oauth)
    }
}

/// The sign-in page, returning to `path_and_query` afterwards.
/// `GET /oauth/authorize`.
pub async fn show(req: HttpRequest, session: Session, state: web::Data<WebState>) -> HttpResponse {
    let params = match Params::parse_query(req.query_string()) {
        Ok(params) => params,
        Err(e) => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "The authorization request is not valid",
                &e.code,
                &e.description,
            );
        }
    };
    let request = authorization_request(&params);
    let now = state.now();
    // OIDC Core §3.1.2.1: prompt=login and a sign-in older than max_age both need a fresh
    // sign-in, so for this request the user counts as signed out (token-service then answers
    // prompt=none with login_required, as it must).
    let prompt_login = request
        .prompt
        .as_deref()
        .is_some_and(|p| p.split(' ').any(|w| w == "login"));
    let signed_in = session::current_user(&session, &state.config, now);
    let stale = signed_in.as_ref().is_some_and(|u| {
        prompt_login
            || request
                .max_age
                .is_some_and(|max_age| now - u.auth_time > max_age.max(0))
    });
    let user = if stale { None } else { signed_in };
    let pre = state
        .upstream
        .authorizations
        .clone()
        .pre_authorize(pb::PreAuthorizeRequest {
            request: Some(request.clone()),
            user_id: user.as_ref().map(|u| u.id),
        })
        .await;
    let pre = match pre.map(|r| r.into_inner().result) {
        Ok(Some(pb::pre_authorize_response::Result::Ok(pre))) => pre,
        Ok(Some(pb::pre_authorize_response::Result::Error(e))) => {
            return refused(&state, &request, &e);
        }
        Ok(None) | Err(_) => return pages::unavailable_page(),
    };
    // The return address after sign-in drops prompt=login and max_age, so that the fresh
    // sign-in satisfies them and is not asked for again.
    let fresh_sign_in = || {
        let kept: Vec<(String, String)> =
            serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, v)| {
                    k != "max_age" && !(k == "prompt" && v.split(' ').any(|w| w == "login"))
                })
                .collect();
        let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
        to_sign_in(&format!("{}?{query}", req.path()))
    };
    let Some(user) = user else {
        if stale {
            session::sign_out(&session);
        }
        return fresh_sign_in();
    };
    if pre.skip_consent {
        return issue_and_respond(&state, request, &user).await;
    }
    let app = pre.application.unwrap_or_default();
    let csrf = session::csrf_token(&session);
    // SEC-SC-02: the request waits in the session; the form carries only its id.
    let carried: Vec<(&str, String)> = CARRIED
        .iter()
        .filter_map(|name| params.owned(name).map(|value| (*name, value)))
        .collect();
    let carried = serde_urlencoded::to_string(&carried).unwrap_or_default();
    // The pending request lives in the session cookie, which browsers cap near 4 KB.
    if carried.len() > MAX_PENDING_BYTES {
        return respond_error(
            &state,
            &request,
            &pb::OAuthError {
                error: "invalid_request".into(),
                error_description: "The authorization request is too large.".into(),
                retry_after_seconds: 0,
            },
        );
    }
    let pending = session::remember_pending(&session, carried);
    let fields = vec![("pending", pending)];
    let redirect_host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    let owner = owner_name(&state, app.owner_id).await;
    let csp = STRICT_CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", csp_source(&request.redirect_uri)),
    );
    render_with_csp(
        StatusCode::OK,
        &ConsentPage {
            signed_in_as: Some(&user.username),
            csrf: &csrf,
            app_name: &app.name,
            scopes: pre
                .scopes
                .iter()
                .map(|s| (s.clone(), describe_scope(s)))
                .collect(),
            redirect_host: &redirect_host,
            owner: &owner,
            fields,
        },
        &csp,
    )
}

/// `POST /oauth/authorize`: the consent form's answer.
pub async fn decide(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> HttpResponse {
    let params = match page_form(&req, payload, &session).await {
        Ok(params) => params,
        Err(page) => return page,
    };
    let Some(user) = session::current_user(&session, &state.config, state.now()) else {
        return pages::error_page(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "login_required",
            "Sign in again, then return to the application and start over.",
        );
    };
    let Some(stored) = session::take_pending(&session, params.get("pending")) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "This consent form has expired",
            "invalid_request",
            "Return to the application and start over.",
        );
    };
    let stored = Params::parse_query(&stored).unwrap_or_default();
    let mut request = authorization_request(&stored);
    request.prompt = None;
    request.max_age = None;
    match params.get("decision") {
        Some("approve") => issue_and_respond(&state, request, &user).await,
        Some("deny") => {
            // The redirect URI is checked again before anything is sent to it.
            let pre = state
                .upstream
                .authorizations
                .clone()
                .pre_authorize(pb::PreAuthorizeRequest {
                    request: Some(request.clone()),
                    user_id: Some(user.id),
                })
                .await;
            match pre.map(|r| r.into_inner().result) {
                Ok(Some(pb::pre_authorize_response::Result::Error(e))) if !e.redirectable => {
                    page_error(&e.error.unwrap_or_default())
                }
                Ok(Some(_)) => respond_error(
                    &state,
                    &request,
                    &pb::OAuthError {
                        error: "access_denied".into(),
                        error_description:
                            "The resource owner or authorization server denied the request.".into(),
                        retry_after_seconds: 0,
                    },
                ),
                Ok(None) | Err(_) => pages::unavailable_page(),
            }
        }
        _ => pages::error_page(
            StatusCode::BAD_REQUEST,
            "The authorization request is not valid",
            "invalid_request",
            "Choose Authorize or Deny.",
        ),
    }
}
