//! HTTP routes, one file per resource.

pub mod account;
pub mod api_user;
pub mod applications;
pub mod assets;
pub mod authorize;
pub mod device;
pub mod discovery;
pub mod health;
pub mod sign_in;
pub mod token;
pub mod token_lifecycle;
pub mod userinfo;

use actix_web::{HttpResponse, Resource, web};

/// Registers every route. The order matters only where patterns overlap
/// (`/oauth/applications/new` before `/oauth/applications/{uid}`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(client_endpoints)
        .configure(discovery_endpoints)
        .configure(account_pages)
        .configure(application_pages)
        .configure(authorization_pages);
}

/// What clients and resource servers call (JSON, RFC 6749 §5.2 errors).
fn client_endpoints(cfg: &mut web::ServiceConfig) {
    cfg.service(or_405(
        web::resource("/oauth/token").route(web::post().to(token::token)),
    ))
    .service(or_405(
        web::resource(["/api/v4/user", "/api/v3/user"])
            .route(web::get().to(api_user::current_user)),
    ))
    .service(or_405(
        web::resource("/oauth/revoke").route(web::post().to(token_lifecycle::revoke)),
    ))
    .service(or_405(
        web::resource("/oauth/introspect").route(web::post().to(token_lifecycle::introspect)),
    ))
    .route(
        "/oauth/token/info",
        web::get().to(token_lifecycle::token_info),
    )
    .service(
        web::resource("/oauth/userinfo")
            .route(web::get().to(userinfo::userinfo))
            .route(web::post().to(userinfo::userinfo)),
    )
    .service(or_405(
        web::resource("/oauth/authorize_device").route(web::post().to(device::authorize_device)),
    ));
}

/// What anyone may read to find out about this server, and the stylesheet.
fn discovery_endpoints(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/discovery/keys", web::get().to(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(discovery::oauth_metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            web::get().to(discovery::oauth_metadata),
        )
        .route(
            "/.well-known/webfinger",
            web::get().to(discovery::webfinger),
        )
        .route("/-/health", web::get().to(health::liveness))
        .route("/-/liveness", web::get().to(health::liveness))
        .route("/-/readiness", web::get().to(health::readiness))
        .route("/-/metrics", web::get().to(health::metrics))
        .route("/assets/doorward.css", web::get().to(assets::stylesheet));
}

/// The pages of a user's own account: signing in and out, signing up, and the
/// applications they have authorized.
fn account_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(sign_in::home))
        .service(
            web::resource("/users/sign_in")
                .route(web::get().to(sign_in::show))
                .route(web::post().to(sign_in::submit)),
        )
        .route("/users/sign_out", web::post().to(sign_in::sign_out))
        .service(
            web::resource("/users/sign_up")
                .route(web::get().to(account::sign_up_form))
                .route(web::post().to(account::sign_up)),
        )
        .route(
            "/oauth/authorized_applications",
            web::get().to(account::authorized),
        )
        .route(
            "/oauth/authorized_applications/{client_id}/revoke",
            web::post().to(account::revoke),
        );
}

/// The pages that manage registered applications.
fn application_pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/applications")
            .route(web::get().to(applications::list))
            .route(web::post().to(applications::create)),
    )
    .route("/oauth/applications/new", web::get().to(applications::new))
    .service(
        web::resource("/oauth/applications/{uid}")
            .route(web::get().to(applications::detail))
            .route(web::post().to(applications::update)),
    )
    .route(
        "/oauth/applications/{uid}/edit",
        web::get().to(applications::edit),
    )
    .route(
        "/oauth/applications/{uid}/delete",
        web::post().to(applications::delete),
    )
    .route(
        "/oauth/applications/{uid}/renew_secret",
        web::post().to(applications::renew_secret),
    );
}

/// The pages where a user lets an application or a device in.
fn authorization_pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/authorize")
            .route(web::get().to(authorize::show))
            .route(web::post().to(authorize::decide)),
    )
    .service(
        web::resource("/oauth/device")
            .route(web::get().to(device::show))
            .route(web::post().to(device::submit)),
    )
    .route("/oauth/device/decide", web::post().to(device::decide));
}

/// `resource`, answering any method it does not route with 405.
fn or_405(resource: Resource) -> Resource {
    resource.default_service(web::to(method_not_allowed))
}

/// 405 with an `Allow` header (RFC 9110 §15.5.6); `/oauth/token` takes only POST
/// (SEC-TK-01).
async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    let allow = if req.path().starts_with("/oauth/") {
        "POST"
    } else {
        "GET"
    };
    HttpResponse::MethodNotAllowed()
        .insert_header(("Allow", allow))
        .json(serde_json::json!({"error": "invalid_request", "error_description": "Method not allowed."}))
}
