//! Server-rendered pages: askama templates, the headers every page carries
//! (`Content-Security-Policy`, `X-Frame-Options: DENY`, `Cache-Control: no-store`), and the
//! redirects between pages. Error pages are drawn here but chosen in `page_error.rs`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use askama::Template;

/// The strict policy of ordinary pages: our stylesheet, forms posting to us, no scripts, no
/// framing (SEC-SC / SEC-WP).
pub const STRICT_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Renders `page` with `status` and the strict policy.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    render_with_csp(status, page, STRICT_CSP)
}

/// Renders `page` with a specific policy (the consent page lets its form lead to the
/// client's redirect URI; the form_post page runs one script by nonce).
pub fn render_with_csp(status: StatusCode, page: &impl Template, csp: &str) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(err) => {
            tracing::error!(error = %err, "a page failed to render");
            HttpResponse::InternalServerError()
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body("The page could not be rendered.")
        }
    }
}

/// The HTML error page, for errors that must not be redirected (SEC-AZ-01).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Header bar user.
    pub signed_in_as: Option<&'a str>,
    /// CSRF token for the sign-out form.
    pub csrf: &'a str,
    /// Heading.
    pub heading: &'a str,
    /// What went wrong.
    pub description: &'a str,
    /// The OAuth error code.
    pub code: &'a str,
}

/// An error page with no session chrome; handlers get one by returning a `PageError`.
pub fn error_page(
    status: StatusCode,
    heading: &str,
    code: &str,
    description: &str,
) -> HttpResponse {
    render(
        status,
        &ErrorPage {
            signed_in_as: None,
            csrf: "",
            heading,
            description,
            code,
        },
    )
}

/// A 303 to a local path.
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A redirect to the sign-in page that comes back to `path_and_query` afterwards.
pub fn to_sign_in(path_and_query: &str) -> HttpResponse {
    let query = serde_urlencoded::to_string([("return_to", path_and_query)]).unwrap_or_default();
    redirect(&format!("/users/sign_in?{query}"))
}

/// What a scope lets an application do, for the consent page.
pub fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "api" => "Read and write everything you can, through the API.",
        "read_api" => "Read everything you can, through the API.",
        "read_user" => "Read your profile: user name, name and e-mail address.",
        "read_repository" => "Read your repositories.",
        "write_repository" => "Read and write your repositories.",
        "read_registry" => "Read your container registries.",
        "write_registry" => "Read and write your container registries.",
        "sudo" => "Act as any user (administrators only).",
        "admin_mode" => "Perform administrator actions.",
        "openid" => "Sign you in with Doorward (your user id).",
        "profile" => "Read your name and profile.",
        "email" => "Read your primary e-mail address.",
        _ => "Use this permission of your account.",
    }
}
