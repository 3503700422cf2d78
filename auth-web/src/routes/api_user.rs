//! `GET /api/v4/user` (and `/api/v3/user`): GitLab's current-user resource, for a token with
//! `read_user` or `api`. Errors are GitLab's bodies (`{"message": "401 Unauthorized"}`, and
//! `{"error": "insufficient_scope", ...}` with 403).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use doorward_proto::v1 as pb;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::{OAuthError, quoted};
use crate::params::Params;
use crate::state::WebState;

/// The realm GitLab's API uses in its challenges.
const API_REALM: &str = "The API";
/// Scopes that allow reading the current user.
const USER_SCOPES: &[&str] = &["api", "read_user"];

/// Where the bearer token came from, or why there is none.
enum Presented {
    Token(String),
    Missing,
    Ambiguous,
    Malformed,
}

/// RFC 6750 §2.1 header or §2.3 query parameter (GitLab accepts both); never both at once.
fn presented_token(req: &HttpRequest) -> Presented {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let from_query = match Params::parse_query(req.query_string()) {
        Ok(query) => query.owned("access_token"),
        // A repeated or oversized parameter must not silently drop the token.
        Err(_) => return Presented::Malformed,
    };
    match (from_header, from_query) {
        (Some(_), Some(_)) => Presented::Ambiguous,
        (Some(token), None) | (None, Some(token)) => Presented::Token(token),
        (None, None) => Presented::Missing,
    }
}

fn bearer_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    let challenge = format!(
        "Bearer realm=\"{API_REALM}\", error=\"{}\", error_description=\"{}\"",
        quoted(code),
        quoted(description)
    );
    let mut builder = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        builder.insert_header((header::WWW_AUTHENTICATE, value));
    }
    builder.json(json!({"error": code, "error_description": description}))
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            format!("Bearer realm=\"{API_REALM}\""),
        ))
        .json(json!({"message": "401 Unauthorized"}))
}

/// The current user as GitLab renders it.
pub async fn current_user(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    let token = match presented_token(&req) {
        Presented::Token(token) => token,
        Presented::Missing => return unauthorized(),
        Presented::Malformed => {
            return bearer_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The query string is malformed.",
            );
        }
        Presented::Ambiguous => {
            return bearer_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The access token was sent both in the Authorization header and in the URL.",
            );
        }
    };
    let request = pb::AuthenticateBearerRequest {
        access_token: token,
        any_of_scopes: USER_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        require_user: true,
    };
    let response = match state
        .upstream
        .tokens
        .clone()
        .authenticate_bearer(request)
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let err = OAuthError::from_status(&status);
            return HttpResponse::build(err.status)
                .json(json!({"message": format!("{} {}", err.status.as_u16(), err.description)}));
        }
    };
    match response.result {
        Some(pb::authenticate_bearer_response::Result::Grant(grant)) => match grant.user {
            Some(user) => HttpResponse::Ok().json(user_json(&user, state.public_url())),
            None => unauthorized(),
        },
        Some(pb::authenticate_bearer_response::Result::Error(error)) => refusal(&error),
        None => unauthorized(),
    }
}

fn refusal(error: &pb::BearerError) -> HttpResponse {
    use pb::BearerErrorKind as Kind;
    match Kind::try_from(error.kind).unwrap_or(Kind::Invalid) {
        Kind::Expired => bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token is expired. You can either do re-authorization or token refresh.",
        ),
        Kind::Revoked => bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token was revoked. You have to re-authorize from the user.",
        ),
        Kind::InsufficientScope => HttpResponse::Forbidden().json(json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": error.required_scope,
        })),
        // SEC-TK-07: a client acting for itself is nobody's user.
        Kind::NoResourceOwner => unauthorized(),
        Kind::Invalid | Kind::Unspecified => {
            bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "Bad Access Token.")
        }
    }
}

/// GitLab's timestamp form: `2012-05-23T08:00:58.000Z`.
fn gitlab_time(unix: i64) -> Option<String> {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&format)
        .ok()
}

/// GitLab's `GET /user` body for the token's own user.
fn user_json(user: &pb::User, public_url: &str) -> serde_json::Value {
    let mut body = json!({
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": user.state,
        "locked": user.state == "blocked",
        "avatar_url": null,
        "web_url": format!("{public_url}/{}", user.username),
        "created_at": gitlab_time(user.created_at),
        "bio": "",
        "location": "",
        "public_email": null,
        "website_url": "",
        "organization": "",
        "job_title": "",
        "bot": false,
        "last_sign_in_at": user.last_sign_in_at.and_then(gitlab_time),
        "confirmed_at": gitlab_time(user.created_at),
        "current_sign_in_at": user.current_sign_in_at.and_then(gitlab_time),
        "email": user.email,
        "commit_email": user.email,
        "two_factor_enabled": false,
        "external": false,
        "private_profile": false,
    });
    if user.admin {
        body["is_admin"] = true.into();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_look_like_gitlabs() {
        assert_eq!(
            gitlab_time(1_337_760_058).as_deref(),
            Some("2012-05-23T08:00:58.000Z")
        );
    }
}
