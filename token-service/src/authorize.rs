//! The authorization endpoint's rules (RFC 6749 §4.1.1, OIDC Core §3.1.2): checking a
//! request in doorkeeper's order (`docs/tokens-and-security.md`, "The consent flow"), deciding whether
//! consent may be skipped, and issuing single-use codes stored as their SHA-256.
//!
//! Until `client_id` and `redirect_uri` are trusted an error is never redirectable
//! (SEC-AZ-01); after that, every error goes back to the client (SEC-AZ-02).

use doorward_proto::v1 as pb;
use doorward_shared::secret::random_token;
use doorward_shared::{ErrorCode, ScopeSet};

use crate::db::models::{ApplicationRow, NewAccessGrant};
use crate::db::{self, DbConnection};
use crate::error::{OAuthFailure, ServiceError};
use crate::grants::{require_grant, resolve_scopes};
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

    /// The proto form.
    pub fn to_proto(&self) -> pb::AuthorizeError {
        pb::AuthorizeError {
            error: Some(self.failure.to_proto()),
            redirectable: self.redirectable,
        }
    }
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
    request: &pb::AuthorizationRequest,
    user_id: Option<i64>,
) -> Result<Result<PreAuthorized, AuthorizeError>, ServiceError> {
    check(conn, request, user_id, Consent::Open)
}

fn check(
    conn: &mut DbConnection,
    request: &pb::AuthorizationRequest,
    user_id: Option<i64>,
    consent: Consent,
) -> Result<Result<PreAuthorized, AuthorizeError>, ServiceError> {
    // 1-3: the client, before anything else (SEC-AZ-01).
    if request.client_id.is_empty() {
        return Ok(Err(AuthorizeError::page(OAuthFailure::missing(
            "client_id",
        ))));
    }
    let app = if request.client_id.contains('\0') {
        None
    } else {
        db::applications::find_by_uid(conn, &request.client_id)?
    };
    let Some(app) = app else {
        return Ok(Err(AuthorizeError::page(OAuthFailure::new(
            ErrorCode::InvalidClient,
        ))));
    };
    if let Err(failure) = require_grant(&app, doorward_shared::GrantType::AuthorizationCode) {
        return Ok(Err(AuthorizeError::page(failure)));
    }
    // 5: the redirect URI, compared exactly with the registered ones (SEC-RU-01/02/05).
    let registered = crate::apps::redirect_uris(&app);
    if request.redirect_uri.is_empty()
        || redirect_uri::find_match(registered.iter().map(String::as_str), &request.redirect_uri)
            .is_none()
    {
        return Ok(Err(AuthorizeError::page(OAuthFailure::new(
            ErrorCode::InvalidRedirectUri,
        ))));
    }
    // From here on the client and its redirect URI are trusted: errors are redirected.
    Ok(check_request(conn, request, app, user_id, consent))
}

fn check_request(
    conn: &mut DbConnection,
    request: &pb::AuthorizationRequest,
    app: ApplicationRow,
    user_id: Option<i64>,
    consent: Consent,
) -> Result<PreAuthorized, AuthorizeError> {
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > MAX_STATE_LEN);
    if too_long(&request.state) || too_long(&request.nonce) {
        return Err(invalid_request("The state or nonce parameter is too long."));
    }
    // SEC-AZ-07: request objects are refused, and never fetched.
    if request.has_request {
        return Err(AuthorizeError::redirect(OAuthFailure::new(
            ErrorCode::RequestNotSupported,
        )));
    }
    if request.has_request_uri {
        return Err(AuthorizeError::redirect(OAuthFailure::new(
            ErrorCode::RequestUriNotSupported,
        )));
    }
    // 6-8: response type and mode (SEC-AZ-03: code only; query and form_post only).
    match request.response_type.as_str() {
        "" => {
            return Err(AuthorizeError::redirect(OAuthFailure::missing(
                "response_type",
            )));
        }
        "code" => {}
        _ => {
            return Err(AuthorizeError::redirect(OAuthFailure::new(
                ErrorCode::UnsupportedResponseType,
            )));
        }
    }
    match request.response_mode.as_deref() {
        None | Some("query") | Some("form_post") => {}
        Some(_) => {
            return Err(AuthorizeError::redirect(OAuthFailure::new(
                ErrorCode::UnsupportedResponseMode,
            )));
        }
    }
    // 9: scopes (SEC-AZ-06).
    let scopes =
        resolve_scopes(request.scope.as_deref(), &app).map_err(AuthorizeError::redirect)?;
    // 10-11: PKCE. Public clients must prove possession with S256 (SEC-PK-01); confidential
    // clients may use PKCE, with S256 or plain.
    let challenge = match (&request.code_challenge, &request.code_challenge_method) {
        (None, None) if app.confidential => None,
        (None, _) => return Err(invalid_request("Code challenge is required.")),
        (Some(challenge), method) => {
            let method = match method.as_deref() {
                Some(m) => Method::parse(m),
                None => None,
            };
            let method = match method {
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
            Some((challenge.clone(), method))
        }
    };
    let prompt = parse_prompt(request.prompt.as_deref())?;
    let skip_consent = consent == Consent::Given
        || (!prompt.consent
            && match user_id {
                Some(user_id) => {
                    app.trusted
                        || (app.confidential
                            && already_granted(conn, user_id, app.id, &scopes).map_err(|_| {
                                AuthorizeError::redirect(OAuthFailure::new(ErrorCode::ServerError))
                            })?)
                }
                None => app.trusted,
            });
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
        if ScopeSet::parse(&granted).is_ok_and(|granted| scopes.is_subset_of(&granted)) {
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
    request: &pb::AuthorizationRequest,
    user_id: i64,
    auth_time: i64,
) -> Result<Result<String, AuthorizeError>, ServiceError> {
    // The user has just consented, so the prompt has been answered.
    let mut request = request.clone();
    request.prompt = None;
    let pre = match check(conn, &request, Some(user_id), Consent::Given)? {
        Ok(pre) => pre,
        Err(err) => return Ok(Err(err)),
    };
    if !db::users::find(conn, user_id)?.is_some_and(|u| u.is_active()) {
        return Ok(Err(AuthorizeError::redirect(OAuthFailure::new(
            ErrorCode::AccessDenied,
        ))));
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
    Ok(Ok(code.expose().to_owned()))
}
