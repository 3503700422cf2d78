//! The one error policy of the HTML pages. A page handler returns
//! `Result<HttpResponse, PageError>` and uses `?`; the error becomes the error page here, in
//! `error_response`, and [`log_page_errors`] logs its cause once, with the request's method
//! and path. The JSON endpoints have their own policy (`error.rs`): a browser gets a page,
//! never a JSON body.

use std::borrow::Cow;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use doorward_shared::ErrorCode;

use crate::error::{OAuthError, UNAVAILABLE_RETRY_AFTER_SECONDS, UpstreamFailure};
use crate::pages::{error_page, redirect, to_sign_in};

/// Why a page is not the one asked for.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Nobody is signed in (or the account was just signed out because it is blocked or
    /// gone). Not a failure but a detour: it is a variant so that handlers can write
    /// `require_user(..)?`, and it is answered with a redirect and never logged.
    #[error("sign-in needed")]
    SignInNeeded {
        /// Where the sign-in page sends the user afterwards; `None` for its default.
        return_to: Option<String>,
    },
    /// The body or query could not be read: too large, malformed, a parameter repeated
    /// (SEC-DS-01). The status is the one the JSON endpoints would answer.
    #[error("request could not be read: {0}")]
    Unreadable(OAuthError),
    /// The form's CSRF token is missing or not this session's: most often a form left open
    /// across a sign-out, so the page says to reload rather than "forbidden".
    #[error("form's CSRF token is missing or stale")]
    FormExpired,
    /// No such thing, or not this user's: the same 404 either way, so that a page does not
    /// tell who owns what.
    #[error("not found: {heading}")]
    NotFound {
        /// The page's heading.
        heading: &'static str,
        /// What the user can do about it.
        description: &'static str,
    },
    /// A request refused for a reason the page explains in its own words.
    #[error("refused ({code}): {description}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The page's heading.
        heading: &'static str,
        /// The OAuth code shown on the page.
        code: ErrorCode,
        /// What went wrong.
        description: Cow<'static, str>,
    },
    /// A token-service call failed (a gRPC status; refusals come as data, not as this).
    #[error("token-service call failed: {}", .0.message())]
    Upstream(#[from] tonic::Status),
    /// The password check could not run: [`Self::Upstream`] in the sign-in page's words,
    /// which blame the password check rather than all of Doorward.
    #[error("password check failed: {}", .0.message())]
    SignInUnavailable(tonic::Status),
}

impl PageError {
    /// A refusal in the page's own words.
    pub fn refused(
        status: StatusCode,
        heading: &'static str,
        code: ErrorCode,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Refused {
            status,
            heading,
            code,
            description: description.into(),
        }
    }

    /// token-service answered without the part a page needs: a broken promise of its
    /// protocol, so a 500 like the JSON endpoints answer (`back_channel_answer`).
    pub fn empty_answer(rpc: &'static str) -> Self {
        Self::Upstream(tonic::Status::internal(format!("empty {rpc} response")))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::SignInNeeded { .. } => StatusCode::SEE_OTHER,
            Self::Unreadable(error) => error.status,
            Self::FormExpired => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Refused { status, .. } => *status,
            Self::Upstream(status) | Self::SignInUnavailable(status) => {
                UpstreamFailure::of(status).http_status()
            }
        }
    }

    /// Logs the cause: our own failures as warnings or errors (they page someone), the
    /// user's mistakes at info, the sign-in detour not at all. The query string is left out
    /// because it can carry tokens (SEC-SL-03).
    fn log(&self, method: &Method, path: &str) {
        let status = self.status().as_u16();
        let request_id = crate::observe::request_id_field();
        match self {
            Self::SignInNeeded { .. } => {}
            Self::Upstream(grpc) | Self::SignInUnavailable(grpc) => {
                let code = grpc.code();
                let message = grpc.message();
                match UpstreamFailure::of(grpc) {
                    UpstreamFailure::Unavailable => tracing::warn!(
                        %method, path, status, ?code, message, request_id,
                        "page unavailable: token-service unreachable"
                    ),
                    UpstreamFailure::Internal => tracing::error!(
                        %method, path, status, ?code, message, request_id,
                        "page failed: token-service call failed"
                    ),
                }
            }
            _ => tracing::info!(%method, path, status, request_id, cause = %self, "page refused"),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignInNeeded {
                return_to: Some(return_to),
            } => to_sign_in(return_to),
            Self::SignInNeeded { return_to: None } => redirect("/users/sign_in"),
            Self::Unreadable(error) => error_page(
                error.status,
                "That request could not be read",
                error.code.as_str(),
                &error.description,
            ),
            Self::FormExpired => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                ErrorCode::InvalidRequest.as_str(),
                "The form's security token is missing or does not match your session. Go back, reload the page and try again.",
            ),
            Self::NotFound {
                heading,
                description,
            } => error_page(StatusCode::NOT_FOUND, heading, "not_found", description),
            Self::Refused {
                status,
                heading,
                code,
                description,
            } => error_page(*status, heading, code.as_str(), description),
            Self::Upstream(status) => match UpstreamFailure::of(status) {
                UpstreamFailure::Unavailable => unavailable_page(),
                UpstreamFailure::Internal => something_went_wrong_page(),
            },
            Self::SignInUnavailable(status) => {
                let failure = UpstreamFailure::of(status);
                error_page(
                    failure.http_status(),
                    "Sign-in is unavailable",
                    failure.code().as_str(),
                    "Doorward cannot check passwords right now. Try again in a moment.",
                )
            }
        }
    }
}

/// The page shown when token-service cannot be reached: nothing is redirected to a client
/// whose redirect URI could not be checked (SEC-DS-05), and `Retry-After` says when to
/// come back.
fn unavailable_page() -> HttpResponse {
    let mut page = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Doorward is temporarily unavailable",
        ErrorCode::TemporarilyUnavailable.as_str(),
        "Try again in a moment.",
    );
    page.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECONDS),
    );
    page
}

/// The page shown when token-service failed inside: waiting will not help, so no
/// `Retry-After`.
fn something_went_wrong_page() -> HttpResponse {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        ErrorCode::ServerError.as_str(),
        "Doorward could not finish this request. Try again later; if it keeps happening, tell the administrator.",
    )
}

/// Logs the cause of every page answered with a [`PageError`], once. A middleware because
/// only here are the error and the request (method, path) both at hand; actix turns the
/// handler's `Err` into the response before any code of ours sees the two together.
pub async fn log_page_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    if let Some(error) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<PageError>())
    {
        error.log(res.request().method(), res.request().path());
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(response: &HttpResponse, name: header::HeaderName) -> Option<String> {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[test]
    fn an_unreachable_token_service_is_a_503_with_retry_after() {
        for status in [
            tonic::Status::unavailable("down"),
            tonic::Status::deadline_exceeded("slow"),
            tonic::Status::resource_exhausted("busy"),
            tonic::Status::cancelled("gone"),
        ] {
            let page = PageError::from(status).error_response();
            assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(header_of(&page, header::RETRY_AFTER).as_deref(), Some("1"));
        }
    }

    #[test]
    fn a_failure_inside_token_service_is_a_500_without_retry_after() {
        for status in [
            tonic::Status::internal("bug"),
            tonic::Status::unimplemented("old"),
            tonic::Status::invalid_argument("skew"),
            tonic::Status::unauthenticated("caller"),
        ] {
            let page = PageError::from(status).error_response();
            assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(header_of(&page, header::RETRY_AFTER), None);
        }
        let empty = PageError::empty_answer("GetUser");
        assert_eq!(empty.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn every_page_error_is_a_strict_html_page() {
        let errors = [
            PageError::FormExpired,
            PageError::NotFound {
                heading: "h",
                description: "d",
            },
            PageError::refused(StatusCode::BAD_REQUEST, "h", ErrorCode::InvalidRequest, "d"),
            PageError::Unreadable(OAuthError::invalid_request("d")),
            PageError::SignInUnavailable(tonic::Status::unavailable("down")),
            PageError::from(tonic::Status::internal("bug")),
        ];
        for error in errors {
            let page = error.error_response();
            assert_eq!(page.status(), error.status_code(), "{error}");
            assert_eq!(
                header_of(&page, header::CONTENT_TYPE).as_deref(),
                Some("text/html; charset=utf-8")
            );
            assert_eq!(
                header_of(&page, header::X_FRAME_OPTIONS).as_deref(),
                Some("DENY")
            );
        }
    }

    #[test]
    fn the_sign_in_detour_is_a_redirect_that_comes_back() {
        let detour = PageError::SignInNeeded {
            return_to: Some("/oauth/device?user_code=A".to_owned()),
        }
        .error_response();
        assert_eq!(detour.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            header_of(&detour, header::LOCATION).as_deref(),
            Some("/users/sign_in?return_to=%2Foauth%2Fdevice%3Fuser_code%3DA")
        );
        let plain = PageError::SignInNeeded { return_to: None }.error_response();
        assert_eq!(
            header_of(&plain, header::LOCATION).as_deref(),
            Some("/users/sign_in")
        );
    }

    #[test]
    fn a_failed_password_check_keeps_its_own_words_and_status() {
        let down = PageError::SignInUnavailable(tonic::Status::unavailable("down"));
        assert_eq!(down.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        // The sign-in page never said when to come back; it still does not.
        assert_eq!(header_of(&down.error_response(), header::RETRY_AFTER), None);
        let broken = PageError::SignInUnavailable(tonic::Status::internal("bug"));
        assert_eq!(broken.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[actix_web::test]
    async fn the_logging_middleware_passes_the_page_through() {
        use actix_web::{App, test, web};
        async fn expired() -> Result<HttpResponse, PageError> {
            Err(PageError::FormExpired)
        }
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(log_page_errors))
                .route("/form", web::post().to(expired)),
        )
        .await;
        let response =
            test::call_service(&app, test::TestRequest::post().uri("/form").to_request()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = test::read_body(response).await;
        assert!(String::from_utf8_lossy(&body).contains("This form has expired"));
    }
}
