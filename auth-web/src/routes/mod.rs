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

use actix_web::{HttpResponse, web};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/token")
            .route(web::post().to(token::token))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(["/api/v4/user", "/api/v3/user"])
            .route(web::get().to(api_user::current_user))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/oauth/revoke")
            .route(web::post().to(token_lifecycle::revoke))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/oauth/introspect")
            .route(web::post().to(token_lifecycle::introspect))
            .default_service(web::to(method_not_allowed)),
    )
    .route(
        "/oauth/token/info",
        web::get().to(token_lifecycle::token_info),
    )
    .service(
        web::resource("/oauth/userinfo")
            .route(web::get().to(userinfo::userinfo))
            .route(web::post().to(userinfo::userinfo)),
    )
    .route("/oauth/discovery/keys", web::get().to(discovery::jwks))
    .service(
        web::resource("/oauth/authorize_device")
            .route(web::post().to(device::authorize_device))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/oauth/device")
            .route(web::get().to(device::show))
            .route(web::post().to(device::submit)),
    )
    .route("/oauth/device/decide", web::post().to(device::decide))
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
    .route("/-/health", web::get().to(health::health))
    .route("/assets/doorward.css", web::get().to(assets::stylesheet))
    .route("/", web::get().to(sign_in::home))
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
    .service(
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
    )
    .route(
        "/oauth/authorized_applications",
        web::get().to(account::authorized),
    )
    .route(
        "/oauth/authorized_applications/{client_id}/revoke",
        web::post().to(account::revoke),
    )
    .service(
        web::resource("/oauth/authorize")
            .route(web::get().to(authorize::show))
            .route(web::post().to(authorize::decide)),
    );
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
