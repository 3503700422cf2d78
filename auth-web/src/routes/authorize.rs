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
use doorward_shared::ErrorCode;
use doorward_shared::secret::{base64url, random_bytes};

use crate::error::wire_code;
use crate::page_error::PageError;
use crate::page_support::{owner_name, page_form};
use crate::pages::{STRICT_CSP, describe_scope, render_with_csp, to_sign_in};
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

/// A refusal that must not go to the redirect URI, because the client or the URI itself is
/// in doubt: the user sees it instead (RFC 6749 §4.1.2.1, SEC-AZ-01).
fn not_redirectable(error: pb::OAuthError) -> PageError {
    let code = wire_code(&error.error);
    let status = match code {
        ErrorCode::InvalidClient | ErrorCode::UnauthorizedClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let heading = match code {
        ErrorCode::InvalidRedirectUri => "The redirect URI is not valid",
        ErrorCode::InvalidClient => "Unknown application",
        ErrorCode::UnauthorizedClient => "This application cannot sign you in this way",
        _ => "The authorization request is not valid",
    };
    PageError::refused(status, heading, code, error.error_description)
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

/// token-service's verdict on an authorization request (a failed call is a `PageError`).
enum Verdict {
    /// What the consent page needs.
    Allowed(pb::PreAuthorized),
    /// The refusal, and whether it may go to the redirect URI.
    Refused(pb::AuthorizeError),
}

/// Asks token-service for its verdict on an authorization request.
async fn pre_authorize(
    state: &WebState,
    request: &pb::AuthorizationRequest,
    user_id: Option<i64>,
) -> Result<Verdict, PageError> {
    let answer = state
        .upstream
        .authorizations
        .clone()
        .pre_authorize(pb::PreAuthorizeRequest {
            request: Some(request.clone()),
            user_id,
        })
        .await?;
    match answer.into_inner().result {
        Some(pb::pre_authorize_response::Result::Ok(pre)) => Ok(Verdict::Allowed(pre)),
        Some(pb::pre_authorize_response::Result::Error(e)) => Ok(Verdict::Refused(e)),
        None => Err(PageError::empty_answer("PreAuthorize")),
    }
}

/// Asks token-service for a code and sends it to the client.
async fn issue_and_respond(
    state: &WebState,
    request: pb::AuthorizationRequest,
    user: &SessionUser,
) -> Result<HttpResponse, PageError> {
    let answer = state
        .upstream
        .authorizations
        .clone()
        .issue_code(pb::IssueCodeRequest {
            request: Some(request.clone()),
            user_id: user.id,
            auth_time: user.auth_time,
        })
        .await?;
    match answer.into_inner().result {
        Some(pb::issue_code_response::Result::Code(code)) => {
            Ok(respond(state, &request, vec![("code", code)]))
        }
        Some(pb::issue_code_response::Result::Error(e)) => refused(state, &request, e),
        None => Err(PageError::empty_answer("IssueCode")),
    }
}

/// A refusal from token-service: to the client when its redirect URI is trusted, else to
/// the user.
fn refused(
    state: &WebState,
    request: &pb::AuthorizationRequest,
    error: pb::AuthorizeError,
) -> Result<HttpResponse, PageError> {
    let oauth = error.error.unwrap_or_default();
    if error.redirectable {
        Ok(respond_error(state, request, &oauth))
    } else {
        Err(not_redirectable(oauth))
    }
}

/// Who is signed in, as far as this authorization request is concerned.
enum SignedIn {
    /// Signed in recently enough.
    Fresh(SessionUser),
    /// Signed in, but the request wants a fresh sign-in: the session must end first.
    Stale,
    /// Nobody.
    No,
}

/// OIDC Core §3.1.2.1: prompt=login and a sign-in older than max_age both need a fresh
/// sign-in, so for this request the user counts as signed out (token-service then answers
/// prompt=none with login_required, as it must).
fn signed_in(session: &Session, state: &WebState, request: &pb::AuthorizationRequest) -> SignedIn {
    let now = state.now();
    let Some(user) = session::current_user(session, &state.config, now) else {
        return SignedIn::No;
    };
    let prompt_login = request
        .prompt
        .as_deref()
        .is_some_and(|p| p.split(' ').any(|w| w == "login"));
    let too_old = request
        .max_age
        .is_some_and(|max_age| now - user.auth_time > max_age.max(0));
    if prompt_login || too_old {
        SignedIn::Stale
    } else {
        SignedIn::Fresh(user)
    }
}

/// The sign-in page, returning to this request afterwards without prompt=login and
/// max_age, so that the fresh sign-in satisfies them and is not asked for again.
fn fresh_sign_in(req: &HttpRequest) -> HttpResponse {
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
}

/// `GET /oauth/authorize`: the consent page, a detour through the sign-in page, or (for a
/// trusted application or a refusal) the answer to the client at once.
pub async fn show(
    req: HttpRequest,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let params = Params::parse_query(req.query_string()).map_err(|e| {
        PageError::refused(
            StatusCode::BAD_REQUEST,
            "The authorization request is not valid",
            e.code,
            e.description,
        )
    })?;
    let request = authorization_request(&params);
    let who = signed_in(&session, &state, &request);
    let user_id = match &who {
        SignedIn::Fresh(user) => Some(user.id),
        SignedIn::Stale | SignedIn::No => None,
    };
    let pre = match pre_authorize(&state, &request, user_id).await? {
        Verdict::Allowed(pre) => pre,
        Verdict::Refused(refusal) => return refused(&state, &request, refusal),
    };
    let user = match who {
        SignedIn::Fresh(user) => user,
        SignedIn::Stale => {
            session::sign_out(&session);
            return Ok(fresh_sign_in(&req));
        }
        SignedIn::No => return Ok(fresh_sign_in(&req)),
    };
    if pre.skip_consent {
        return issue_and_respond(&state, request, &user).await;
    }
    let Some(pending) = remember_request(&session, &params) else {
        return Ok(respond_error(
            &state,
            &request,
            &pb::OAuthError {
                error: ErrorCode::InvalidRequest.as_str().into(),
                error_description: "The authorization request is too large.".into(),
                retry_after_seconds: 0,
            },
        ));
    };
    Ok(consent_page(&session, &state, &request, &user, pre, pending).await)
}

/// SEC-SC-02: the request waits in the session and the form carries only its id, so
/// that nothing in the form can be changed on the way. `None` when it is too large for the
/// session cookie, which browsers cap near 4 KB.
fn remember_request(session: &Session, params: &Params) -> Option<String> {
    let carried: Vec<(&str, String)> = CARRIED
        .iter()
        .filter_map(|name| params.owned(name).map(|value| (*name, value)))
        .collect();
    let carried = serde_urlencoded::to_string(&carried).unwrap_or_default();
    (carried.len() <= MAX_PENDING_BYTES).then(|| session::remember_pending(session, carried))
}

/// The consent page. Its policy lets the form lead to the client's redirect URI, where
/// the answer goes after the POST.
async fn consent_page(
    session: &Session,
    state: &WebState,
    request: &pb::AuthorizationRequest,
    user: &SessionUser,
    pre: pb::PreAuthorized,
    pending: String,
) -> HttpResponse {
    let app = pre.application.unwrap_or_default();
    let csrf = session::csrf_token(session);
    let redirect_host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    let owner = owner_name(state, app.owner_id).await;
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
            fields: vec![("pending", pending)],
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
) -> Result<HttpResponse, PageError> {
    let params = page_form(&req, payload, &session).await?;
    let user = session::current_user(&session, &state.config, state.now()).ok_or_else(|| {
        PageError::refused(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            ErrorCode::LoginRequired,
            "Sign in again, then return to the application and start over.",
        )
    })?;
    let stored = session::take_pending(&session, params.get("pending")).ok_or_else(|| {
        PageError::refused(
            StatusCode::BAD_REQUEST,
            "This consent form has expired",
            ErrorCode::InvalidRequest,
            "Return to the application and start over.",
        )
    })?;
    let stored = Params::parse_query(&stored).unwrap_or_default();
    // The user has just answered: prompt and max_age were settled before the consent page.
    let mut request = authorization_request(&stored);
    request.prompt = None;
    request.max_age = None;
    match params.get("decision") {
        Some("approve") => issue_and_respond(&state, request, &user).await,
        Some("deny") => deny(&state, &request, &user).await,
        _ => Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            "The authorization request is not valid",
            ErrorCode::InvalidRequest,
            "Choose Authorize or Deny.",
        )),
    }
}

/// Tells the client that the user said no (RFC 6749 §4.1.2.1 `access_denied`), after
/// checking its redirect URI again: nothing is sent to an address token-service no longer
/// trusts.
async fn deny(
    state: &WebState,
    request: &pb::AuthorizationRequest,
    user: &SessionUser,
) -> Result<HttpResponse, PageError> {
    if let Verdict::Refused(refusal) = pre_authorize(state, request, Some(user.id)).await?
        && !refusal.redirectable
    {
        return Err(not_redirectable(refusal.error.unwrap_or_default()));
    }
    let denied = ErrorCode::AccessDenied;
    Ok(respond_error(
        state,
        request,
        &pb::OAuthError {
            error: denied.as_str().into(),
            error_description: denied.default_description().into(),
            retry_after_seconds: 0,
        },
    ))
}
