//! The authorization endpoint's rules (RFC 6749 §4.1.1, OIDC Core §3.1.2): checking a
//! request in doorkeeper's order (`docs/tokens-and-security.md`, "The consent flow"), deciding whether
//! consent may be skipped, and issuing single-use codes stored as their SHA-256.
//!
//! Until `client_id` and `redirect_uri` are trusted an error is never redirectable
//! (SEC-AZ-01); after that, every error goes back to the client (SEC-AZ-02).

use std::collections::BTreeMap;

use doorward_shared::secret::random_token;
use doorward_shared::{ErrorCode, ScopeSet};

use crate::db::models::{ApplicationRow, NewAccessGrant};
use crate::db::{self, DbConnection};
use crate::error::{OAuthFailure, Outcome, ServiceError};
use crate::grants::rules::{registered_scopes, require_grant, resolve_scopes, stored_scopes};
use crate::pkce::{self, Method};
use crate::redirect_uri;
use crate::state::AppState;

/// Longest `state` or `nonce` accepted (SEC-DS-01).
pub const MAX_STATE_LEN: usize = 2048;

/// A refusal at the authorization endpoint.
#[derive(Debug, Clone)]
pub struct AuthorizeError {
    /// The error.
    pub failure: OAuthFailure,
    /// Whether it may be sent to the redirect URI (false: show a page).
    pub redirectable: bool,
}

impl AuthorizeError {
    fn page(failure: OAuthFailure) -> Self {
        Self {
            failure,
            redirectable: false,
        }
    }

    fn redirect(failure: OAuthFailure) -> Self {
        Self {
            failure,
            redirectable: true,
        }
    }
}

/// An authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), as auth-web read it.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`.
    pub redirect_uri: String,
    /// `response_type`.
    pub response_type: String,
    /// `response_mode`.
    pub response_mode: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// PKCE `code_challenge`.
    pub code_challenge: Option<String>,
    /// PKCE `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// OpenID Connect `nonce`.
    pub nonce: Option<String>,
    /// OpenID Connect `prompt`.
    pub prompt: Option<String>,
    /// OpenID Connect `max_age`.
    pub max_age: Option<i64>,
    /// Whether a `request` object was sent (only to refuse it, SEC-AZ-07).
    pub has_request: bool,
    /// Whether a `request_uri` was sent (only to refuse it, SEC-AZ-07).
    pub has_request_uri: bool,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct PreAuthorized {
    /// The client.
    pub app: ApplicationRow,
    /// The scopes the user is asked for.
    pub scopes: ScopeSet,
    /// Trusted application, or a confidential one the user already granted these scopes.
    pub skip_consent: bool,
    /// PKCE challenge and method, if any.
    pub challenge: Option<(String, Method)>,
}

fn invalid_request(description: &'static str) -> AuthorizeError {
    AuthorizeError::redirect(OAuthFailure::with(ErrorCode::InvalidRequest, description))
}

/// The `prompt` values of OIDC Core §3.1.2.1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Prompt {
    none: bool,
    consent: bool,
}

fn parse_prompt(value: Option<&str>) -> Result<Prompt, AuthorizeError> {
    let mut prompt = Prompt::default();
    let Some(value) = value else {
        return Ok(prompt);
    };
    let mut count = 0;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        count += 1;
        match word {
            "none" => prompt.none = true,
            "consent" => prompt.consent = true,
            // `login` (and `max_age`) concern the session, which auth-web owns.
            "login" => {}
            _ => {
                return Err(invalid_request(
                    "The prompt parameter has an unsupported value.",
                ));
            }
        }
    }
    if prompt.none && count > 1 {
        return Err(invalid_request(
            "prompt=none cannot be combined with other values.",
        ));
    }
    Ok(prompt)
}

/// Where the consent question stands when a request is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    /// Still to be asked (`PreAuthorize`): look up whether the page can be skipped.
    Open,
    /// Just given (`IssueCode`): earlier grants would change nothing, so none are looked up.
    Given,
}

/// Checks an authorization request for `user_id` (if signed in), in doorkeeper's order.
pub fn pre_authorize(
    conn: &mut DbConnection,
    request: &AuthorizationRequest,
    user_id: Option<i64>,
) -> Result<Outcome<PreAuthorized, AuthorizeError>, ServiceError> {
    check(conn, request, user_id, Consent::Open)
}

fn check(
    conn: &mut DbConnection,
    request: &AuthorizationRequest,
    user_id: Option<i64>,
    consent: Consent,
) -> Result<Outcome<PreAuthorized, AuthorizeError>, ServiceError> {
    // 1-3: the client, before anything else (SEC-AZ-01).
    if request.client_id.is_empty() {
        return Ok(Outcome::Refused(AuthorizeError::page(
            OAuthFailure::missing("client_id"),
        )));
    }
    let app = if request.client_id.contains('\0') {
        None
    } else {
        db::applications::find_by_uid(conn, &request.client_id)?
    };
    let Some(app) = app else {
        return Ok(Outcome::Refused(AuthorizeError::page(OAuthFailure::new(
            ErrorCode::InvalidClient,
        ))));
    };
    if let Err(failure) = require_grant(&app, doorward_shared::GrantType::AuthorizationCode) {
        return Ok(Outcome::Refused(AuthorizeError::page(failure)));
    }
    // 5: the redirect URI, compared exactly with the registered ones (SEC-RU-01/02/05).
    let registered = crate::apps::redirect_uris(&app);
    if request.redirect_uri.is_empty()
        || redirect_uri::find_match(registered.iter().map(String::as_str), &request.redirect_uri)
            .is_none()
    {
        return Ok(Outcome::Refused(AuthorizeError::page(OAuthFailure::new(
            ErrorCode::InvalidRedirectUri,
        ))));
    }
    let registered = registered_scopes(&app)?;
    // From here on the client and its redirect URI are trusted: errors are redirected.
    let checked = check_request(conn, request, app, &registered, user_id, consent);
    Ok(checked.map_or_else(Outcome::Refused, Outcome::Done))
}

fn check_request(
    conn: &mut DbConnection,
    request: &AuthorizationRequest,
    app: ApplicationRow,
    registered: &ScopeSet,
    user_id: Option<i64>,
    consent: Consent,
) -> Result<PreAuthorized, AuthorizeError> {
    check_form(request)?;
    // 9: scopes (SEC-AZ-06).
    let scopes =
        resolve_scopes(request.scope.as_deref(), registered).map_err(AuthorizeError::redirect)?;
    let challenge = check_pkce(request, &app)?;
    let prompt = parse_prompt(request.prompt.as_deref())?;
    let skip_consent = consent == Consent::Given
        || (!prompt.consent && may_skip_consent(conn, &app, user_id, &scopes)?);
    if prompt.none {
        if user_id.is_none() {
            return Err(AuthorizeError::redirect(OAuthFailure::new(
                ErrorCode::LoginRequired,
            )));
        }
        if !skip_consent {
            return Err(AuthorizeError::redirect(OAuthFailure::new(
                ErrorCode::ConsentRequired,
            )));
        }
    }
    Ok(PreAuthorized {
        app,
        scopes,
        skip_consent,
        challenge,
    })
}

/// The request's own form once its client is trusted: lengths, request objects (SEC-AZ-07:
/// refused, never fetched), and response type and mode (6-8, SEC-AZ-03: code only; query and
/// form_post only).
fn check_form(request: &AuthorizationRequest) -> Result<(), AuthorizeError> {
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > MAX_STATE_LEN);
    if too_long(&request.state) || too_long(&request.nonce) {
        return Err(invalid_request("The state or nonce parameter is too long."));
    }
    let refusal = if request.has_request {
        OAuthFailure::new(ErrorCode::RequestNotSupported)
    } else if request.has_request_uri {
        OAuthFailure::new(ErrorCode::RequestUriNotSupported)
    } else if request.response_type.is_empty() {
        OAuthFailure::missing("response_type")
    } else if request.response_type != "code" {
        OAuthFailure::new(ErrorCode::UnsupportedResponseType)
    } else if !matches!(
        request.response_mode.as_deref(),
        None | Some("query") | Some("form_post")
    ) {
        OAuthFailure::new(ErrorCode::UnsupportedResponseMode)
    } else {
        return Ok(());
    };
    Err(AuthorizeError::redirect(refusal))
}

/// 10-11: PKCE. Public clients must prove possession with S256 (SEC-PK-01); confidential
/// clients may use PKCE, with S256 or plain.
fn check_pkce(
    request: &AuthorizationRequest,
    app: &ApplicationRow,
) -> Result<Option<(String, Method)>, AuthorizeError> {
    let Some(challenge) = &request.code_challenge else {
        return match request.code_challenge_method {
            None if app.confidential => Ok(None),
            _ => Err(invalid_request("Code challenge is required.")),
        };
    };
    let method = match request
        .code_challenge_method
        .as_deref()
        .and_then(Method::parse)
    {
        Some(Method::Plain) if app.confidential => Method::Plain,
        Some(Method::S256) => Method::S256,
        _ => {
            return Err(invalid_request(
                "The code_challenge_method must be S256 (plain is accepted from confidential clients only).",
            ));
        }
    };
    if !pkce::is_valid_challenge(method, challenge) {
        return Err(invalid_request("The code_challenge is malformed."));
    }
    Ok(Some((challenge.clone(), method)))
}

/// Whether the consent page can be skipped for a signed-in user: a trusted application, or
/// a confidential one the user already granted these scopes.
fn may_skip_consent(
    conn: &mut DbConnection,
    app: &ApplicationRow,
    user_id: Option<i64>,
    scopes: &ScopeSet,
) -> Result<bool, AuthorizeError> {
    let Some(user_id) = user_id else {
        return Ok(app.trusted);
    };
    if app.trusted || !app.confidential {
        return Ok(app.trusted);
    }
    already_granted(conn, user_id, app.id, scopes)
        .map_err(|_| AuthorizeError::redirect(OAuthFailure::new(ErrorCode::ServerError)))
}

/// Whether the user holds a live (unrevoked, as doorkeeper's `matching_token_for`) token for
/// the application covering `scopes`. Walks the distinct scope strings of those tokens rather
/// than the tokens, so a user with thousands of them costs a few index probes.
fn already_granted(
    conn: &mut DbConnection,
    user_id: i64,
    application_id: i64,
    scopes: &ScopeSet,
) -> Result<bool, ServiceError> {
    let mut after = None;
    while let Some(granted) =
        db::grants::next_live_scopes(conn, user_id, application_id, after.as_deref())?
    {
        let row = format!("of user {user_id} and application {application_id}");
        if scopes.is_subset_of(&stored_scopes(&granted, "access_tokens", row, "scopes")?) {
            return Ok(true);
        }
        after = Some(granted);
    }
    Ok(false)
}

/// Issues a code for an approved request: the request is checked again (auth-web is not
/// trusted to have done it), the user must be active, and only the code's hash is stored.
pub fn issue_code(
    state: &AppState,
    conn: &mut DbConnection,
    request: &AuthorizationRequest,
    user_id: i64,
    auth_time: i64,
) -> Result<Outcome<String, AuthorizeError>, ServiceError> {
    // The user has just consented, so the prompt has been answered.
    let mut request = request.clone();
    request.prompt = None;
    let pre = match check(conn, &request, Some(user_id), Consent::Given)? {
        Outcome::Done(pre) => pre,
        Outcome::Refused(err) => return Ok(Outcome::Refused(err)),
    };
    if !db::users::find(conn, user_id)?.is_some_and(|u| u.is_active()) {
        return Ok(Outcome::Refused(AuthorizeError::redirect(
            OAuthFailure::new(ErrorCode::AccessDenied),
        )));
    }
    let now = state.now();
    let code = random_token();
    let scopes = pre.scopes.to_string();
    db::grants::insert(
        conn,
        &NewAccessGrant {
            code_hash: code.sha256().to_vec(),
            application_id: pre.app.id,
            user_id,
            scopes: &scopes,
            redirect_uri: &request.redirect_uri,
            code_challenge: pre.challenge.as_ref().map(|(c, _)| c.as_str()),
            code_challenge_method: pre.challenge.as_ref().map(|(_, m)| m.as_str()),
            nonce: request.nonce.as_deref(),
            auth_time: Some(auth_time),
            created_at: now,
            expires_at: now + state.config.tokens.authorization_code_ttl_seconds,
        },
    )?;
    Ok(Outcome::Done(code.expose().to_owned()))
}

/// An application a user has authorized, as the authorized-applications page lists it.
#[derive(Debug)]
pub struct Authorized {
    /// The application.
    pub application: ApplicationRow,
    /// The union of its live tokens' scopes.
    pub scopes: ScopeSet,
    /// When the first of them was issued.
    pub authorized_at: i64,
}

/// The applications holding live tokens of `user_id`.
pub fn authorized_applications(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<Vec<Authorized>, ServiceError> {
    let mut by_app: BTreeMap<i64, (ScopeSet, i64)> = BTreeMap::new();
    for (app_id, scopes, created_at) in db::grants::live_authorizations(conn, user_id)? {
        let row = format!("of user {user_id} and application {app_id}");
        let scopes = stored_scopes(&scopes, "access_tokens", row, "scopes")?;
        let entry = by_app
            .entry(app_id)
            .or_insert((ScopeSet::default(), created_at));
        for scope in scopes.iter() {
            entry.0.insert(scope);
        }
        entry.1 = entry.1.min(created_at);
    }
    let mut list = Vec::with_capacity(by_app.len());
    for (app_id, (scopes, authorized_at)) in by_app {
        if let Some(application) = db::applications::find(conn, app_id)? {
            list.push(Authorized {
                application,
                scopes,
                authorized_at,
            });
        }
    }
    Ok(list)
}

/// Revokes everything `user_id` granted the application `client_id` (its codes and tokens).
pub fn revoke_authorized(
    conn: &mut DbConnection,
    changes: &db::TokenChanges,
    user_id: i64,
    client_id: &str,
    now: i64,
) -> Result<(), ServiceError> {
    db::write_transaction(conn, |conn| {
        if let Some(app) = db::applications::find_by_uid(conn, client_id)? {
            let revoked = db::grants::revoke_authorization(conn, changes, user_id, app.id, now)?;
            crate::metrics::revoked(crate::metrics::RevokeCause::AuthorizationRevoked, revoked);
            tracing::info!(target: "audit", event = "authorization_revoked", user_id, client_id = %app.uid, revoked_rows = revoked, "a user revoked an application");
        }
        Ok(())
    })
}
