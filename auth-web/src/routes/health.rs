//! `GET /-/health`: auth-web is up (it does not probe token-service; use gRPC health for
//! that).

use actix_web::HttpResponse;

/// Liveness.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
