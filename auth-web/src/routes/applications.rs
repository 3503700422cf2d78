//! `/oauth/applications`: the applications a user registered (an administrator sees them
//! all and may mark one trusted): list, create, show, edit, delete, renew the secret. A
//! secret is shown once, on the page answering its creation or renewal, never cached.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use doorward_proto::v1 as pb;
use doorward_shared::GrantType;
use doorward_shared::scope::KNOWN_SCOPES;

use crate::page_error::PageError;
use crate::page_support::{page_form, require_current_user};
use crate::pages::{describe_scope, redirect, render};
use crate::params::Params;
use crate::session::{self, SessionUser};
use crate::state::WebState;

/// Grant types offered on the form (by registration name), with whether a new application
/// gets them by default (the password grant is opt-in here: RFC 9700 §2.4 discourages it).
fn grant_choices() -> impl Iterator<Item = (&'static str, bool)> {
    GrantType::ALL
        .into_iter()
        .map(|g| (g.registration_name(), g != GrantType::Password))
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ListPage<'a> {
    signed_in_as: Option<&'a str>,
    csrf: &'a str,
    admin: bool,
    applications: Vec<pb::Application>,
}

#[derive(Template)]
#[template(path = "application_form.html")]
struct FormPage {
    signed_in_as: Option<String>,
    csrf: String,
    editing: bool,
    action: String,
    errors: Vec<String>,
    name: String,
    redirect_uris: String,
    scopes: Vec<(&'static str, &'static str, bool)>,
    grants: Vec<(&'static str, bool)>,
    confidential: bool,
    trusted: bool,
    admin: bool,
}

/// How long the old secret may keep working after "Renew secret": the only values the
/// form may post (seconds, label).
const GRACE_CHOICES: &[(u32, &str)] = &[
    (0, "at once"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (604_800, "7 days"),
];
/// The grace the renew form offers first.
const DEFAULT_GRACE: u32 = 86_400;

/// The grace posted by the renew form, if it is one of [`GRACE_CHOICES`] (written exactly
/// as the form writes it).
fn grace_choice(posted: Option<&str>) -> Option<u32> {
    let posted = posted?;
    GRACE_CHOICES
        .iter()
        .map(|(seconds, _)| *seconds)
        .find(|seconds| seconds.to_string() == posted)
}

/// What the page says about the replaced secret right after a renewal.
struct Renewal {
    /// The chosen grace, as offered on the form ("at once", "1 hour", ...).
    grace: &'static str,
    /// Until when the old secret keeps working (UTC, and as a `datetime` attribute);
    /// `None` when it stopped at once.
    until: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "application.html")]
struct ShowPage {
    signed_in_as: Option<String>,
    csrf: String,
    app: pb::Application,
    secret: Option<String>,
    renewal: Option<Renewal>,
    error: Option<String>,
    grace_choices: &'static [(u32, &'static str)],
    default_grace: u32,
}

/// `unix` as shown on the page (`2024-05-01 12:00:00 UTC`) and as a `datetime` attribute.
fn utc_time(unix: i64) -> Option<(String, String)> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    let shown = t
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .ok()?;
    let machine = t
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .ok()?;
    Some((shown, machine))
}

/// The application `uid` if the user may manage it (its owner, or an administrator).
async fn owned(
    state: &WebState,
    user: &SessionUser,
    uid: &str,
) -> Result<pb::Application, PageError> {
    let found = state
        .upstream
        .applications
        .clone()
        .get_application(pb::GetApplicationRequest {
            uid: uid.to_owned(),
        })
        .await?
        .into_inner()
        .application;
    match found {
        Some(app) if user.admin || app.owner_id == Some(user.id) => Ok(app),
        _ => Err(PageError::NotFound {
            heading: "No such application",
            description: "It does not exist, or it is not yours.",
        }),
    }
}

/// The form, filled from `editing` (or with a new application's defaults).
fn form_page(user: &SessionUser, csrf: String, editing: Option<&pb::Application>) -> FormPage {
    let selected: Vec<String> =
        editing.map_or_else(|| vec!["read_user".into()], |a| a.scopes.clone());
    FormPage {
        signed_in_as: Some(user.username.clone()),
        csrf,
        editing: editing.is_some(),
        action: editing.map_or_else(
            || "/oauth/applications".to_owned(),
            |a| format!("/oauth/applications/{}", a.uid),
        ),
        errors: Vec::new(),
        name: editing.map(|a| a.name.clone()).unwrap_or_default(),
        redirect_uris: editing
            .map(|a| a.redirect_uris.join("\n"))
            .unwrap_or_default(),
        scopes: KNOWN_SCOPES
            .iter()
            .map(|s| (*s, describe_scope(s), selected.iter().any(|x| x == s)))
            .collect(),
        grants: grant_choices()
            .map(|(g, default)| {
                (
                    g,
                    editing.map_or(default, |a| a.grant_types.iter().any(|x| x == g)),
                )
            })
            .collect(),
        confidential: editing.is_none_or(|a| a.confidential),
        trusted: editing.is_some_and(|a| a.trusted),
        admin: user.admin,
    }
}

/// The submitted form as proto fields, and the form page refilled with it (for errors).
fn submitted(
    params: &Params,
    user: &SessionUser,
    mut page: FormPage,
) -> (pb::ApplicationFields, FormPage) {
    let scopes: Vec<String> = KNOWN_SCOPES
        .iter()
        .filter(|s| params.get(&format!("scope_{s}")).is_some())
        .map(|s| (*s).to_owned())
        .collect();
    let grants: Vec<String> = grant_choices()
        .filter(|(g, _)| params.get(&format!("grant_{g}")).is_some())
        .map(|(g, _)| g.to_owned())
        .collect();
    let confidential = if page.editing {
        page.confidential
    } else {
        params.get("confidential").is_some()
    };
    // A public application cannot hold a secret, so it never gets the grants that need one.
    let grants: Vec<String> = grants
        .into_iter()
        .filter(|g| {
            confidential
                || !GrantType::from_registration(g).is_some_and(GrantType::needs_client_secret)
        })
        .collect();
    let trusted = if user.admin {
        params.get("trusted").is_some()
    } else {
        page.trusted
    };
    page.name = params.get("name").unwrap_or("").trim().to_owned();
    page.redirect_uris = params.get("redirect_uri").unwrap_or("").to_owned();
    page.scopes = page
        .scopes
        .into_iter()
        .map(|(s, d, _)| (s, d, scopes.iter().any(|x| x == s)))
        .collect();
    page.grants = page
        .grants
        .into_iter()
        .map(|(g, _)| (g, grants.iter().any(|x| x == g)))
        .collect();
    page.confidential = confidential;
    page.trusted = trusted;
    let fields = pb::ApplicationFields {
        name: page.name.clone(),
        redirect_uris: page
            .redirect_uris
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
        scopes,
        confidential,
        trusted,
        grant_types: if grants.is_empty() {
            vec!["authorization_code".into()]
        } else {
            grants
        },
        owner_id: Some(user.id),
    };
    (fields, page)
}

fn show_page(user: &SessionUser, csrf: String, app: pb::Application) -> ShowPage {
    ShowPage {
        signed_in_as: Some(user.username.clone()),
        csrf,
        app,
        secret: None,
        renewal: None,
        error: None,
        grace_choices: GRACE_CHOICES,
        default_grace: DEFAULT_GRACE,
    }
}

fn show(
    user: &SessionUser,
    csrf: String,
    app: pb::Application,
    secret: Option<String>,
) -> HttpResponse {
    render(
        StatusCode::OK,
        &ShowPage {
            secret,
            ..show_page(user, csrf, app)
        },
    )
}

/// Renders the outcome of a create or update: the application (with its secret, once), or
/// the form again with the validation errors.
fn saved(
    user: &SessionUser,
    csrf: String,
    page: FormPage,
    result: Option<pb::create_application_response::Result>,
) -> Result<HttpResponse, PageError> {
    match result {
        Some(pb::create_application_response::Result::Created(created)) => {
            let secret = Some(created.secret).filter(|s| !s.is_empty());
            let app = created
                .application
                .ok_or_else(|| PageError::empty_answer("CreateApplication"))?;
            Ok(show(user, csrf, app, secret))
        }
        Some(pb::create_application_response::Result::Errors(errors)) => {
            let page = FormPage {
                errors: errors
                    .errors
                    .into_iter()
                    .map(|e| format!("{} {}", e.field.replace('_', " "), e.message))
                    .collect(),
                csrf,
                ..page
            };
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        None => Err(PageError::empty_answer("CreateApplication")),
    }
}

/// `GET /oauth/applications`.
pub async fn list(
    req: HttpRequest,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    let owner_id = (!user.admin).then_some(user.id);
    let listed = state
        .upstream
        .applications
        .clone()
        .list_applications(pb::ListApplicationsRequest { owner_id })
        .await?;
    let csrf = session::csrf_token(&session);
    Ok(render(
        StatusCode::OK,
        &ListPage {
            signed_in_as: Some(&user.username),
            csrf: &csrf,
            admin: user.admin,
            applications: listed.into_inner().applications,
        },
    ))
}

/// `GET /oauth/applications/new`.
pub async fn new(
    req: HttpRequest,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    Ok(render(
        StatusCode::OK,
        &form_page(&user, session::csrf_token(&session), None),
    ))
}

/// `POST /oauth/applications`: registers an application; the page shows its secret once.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    let params = page_form(&req, payload, &session).await?;
    let csrf = session::csrf_token(&session);
    let (fields, page) = submitted(&params, &user, form_page(&user, csrf.clone(), None));
    let response = state
        .upstream
        .applications
        .clone()
        .create_application(pb::CreateApplicationRequest {
            fields: Some(fields),
        })
        .await?;
    // A reload of the page that shows the secret must not register a second application.
    saved(
        &user,
        session::rotate_csrf(&session),
        page,
        response.into_inner().result,
    )
}

/// For the forms that change an application: the signed-in user (as token-service knows
/// them now), the form with its CSRF token checked, and the application if the user may
/// manage it.
async fn owned_form(
    req: &HttpRequest,
    uid: &str,
    payload: web::Payload,
    session: &Session,
    state: &WebState,
) -> Result<(SessionUser, Params, pb::Application), PageError> {
    let user = require_current_user(req, session, state).await?;
    let params = page_form(req, payload, session).await?;
    let app = owned(state, &user, uid).await?;
    Ok((user, params, app))
}

/// `GET /oauth/applications/{uid}`.
pub async fn detail(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    let app = owned(&state, &user, &path).await?;
    Ok(show(&user, session::csrf_token(&session), app, None))
}

/// `GET /oauth/applications/{uid}/edit`.
pub async fn edit(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let user = require_current_user(&req, &session, &state).await?;
    let app = owned(&state, &user, &path).await?;
    Ok(render(
        StatusCode::OK,
        &form_page(&user, session::csrf_token(&session), Some(&app)),
    ))
}

/// `POST /oauth/applications/{uid}`: saves an edit.
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let (user, params, app) = owned_form(&req, &path, payload, &session, &state).await?;
    let csrf = session::csrf_token(&session);
    let (mut fields, page) = submitted(&params, &user, form_page(&user, csrf.clone(), Some(&app)));
    // The owner stays the owner, even when an administrator edits.
    fields.owner_id = app.owner_id;
    let response = state
        .upstream
        .applications
        .clone()
        .update_application(pb::UpdateApplicationRequest {
            uid: app.uid.clone(),
            fields: Some(fields),
        })
        .await?;
    match response.into_inner().result {
        Some(pb::create_application_response::Result::Created(_)) => {
            Ok(redirect(&format!("/oauth/applications/{}", app.uid)))
        }
        other => saved(&user, csrf, page, other),
    }
}

/// `POST /oauth/applications/{uid}/delete`: the application, its codes and tokens.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let (_, _, app) = owned_form(&req, &path, payload, &session, &state).await?;
    state
        .upstream
        .applications
        .clone()
        .delete_application(pb::GetApplicationRequest { uid: app.uid })
        .await?;
    Ok(redirect("/oauth/applications"))
}

/// `POST /oauth/applications/{uid}/renew_secret`: a new secret, shown once; the old one
/// may keep working for a grace period so that clients can be redeployed without downtime.
pub async fn renew_secret(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let (user, params, app) = owned_form(&req, &path, payload, &session, &state).await?;
    // Only the offered choices: a forged value changes nothing.
    let Some(grace) = grace_choice(params.get("grace")) else {
        let choices: Vec<&str> = GRACE_CHOICES.iter().map(|(_, label)| *label).collect();
        let error = format!(
            "The secret was not renewed: choose how long the old secret keeps working ({}).",
            choices.join(", ")
        );
        return Ok(not_renewed(&user, &session, app, error));
    };
    let response = state
        .upstream
        .applications
        .clone()
        .rotate_secret(pb::RotateSecretRequest {
            uid: app.uid.clone(),
            grace_seconds: grace,
        })
        .await?
        .into_inner();
    let Some(secret) = response.secret else {
        // A public application has no secret (nor a renew form); or it was deleted since.
        let error = "The secret was not renewed: this application has none.".to_owned();
        return Ok(not_renewed(&user, &session, app, error));
    };
    let renewal = Renewal {
        grace: GRACE_CHOICES
            .iter()
            .find(|(seconds, _)| *seconds == grace)
            .map_or("", |(_, label)| *label),
        until: response.previous_secret_expires_at.and_then(utc_time),
    };
    // A reload of the page that shows the secret must not renew it again.
    let page = ShowPage {
        secret: Some(secret),
        renewal: Some(renewal),
        ..show_page(&user, session::rotate_csrf(&session), app)
    };
    Ok(render(StatusCode::OK, &page))
}

/// The application's page again, saying why its secret was not renewed.
fn not_renewed(
    user: &SessionUser,
    session: &Session,
    app: pb::Application,
    error: String,
) -> HttpResponse {
    let page = ShowPage {
        error: Some(error),
        ..show_page(user, session::csrf_token(session), app)
    };
    render(StatusCode::BAD_REQUEST, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_offered_graces_are_accepted() {
        for (seconds, _) in GRACE_CHOICES {
            assert_eq!(grace_choice(Some(&seconds.to_string())), Some(*seconds));
        }
        assert!(GRACE_CHOICES.iter().any(|(s, _)| *s == DEFAULT_GRACE));
        for forged in [
            "", "1", "7200", "604801", "-1", "03600", "3600 ", "+3600", "1e3",
        ] {
            assert_eq!(grace_choice(Some(forged)), None, "{forged:?}");
        }
        assert_eq!(grace_choice(None), None);
    }
}
