//! Probes and metrics: `GET /-/liveness` (auth-web answers), `GET /-/readiness` (and
//! token-service answers its gRPC health check as SERVING), `GET /-/metrics` (Prometheus,
//! for `web.monitoring_ips` only). `/-/health` stays as liveness's older name.
//!
//! Readiness reaches token-service at most once a second per worker, however often it is
//! asked: the probe is open to anyone, and must not become a way to load token-service.

use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::metrics::METRICS;
use crate::readiness::Upstream;
use crate::state::WebState;

/// How long one readiness answer is reused.
const READINESS_REUSED_FOR: Duration = Duration::from_secs(1);
/// How long the check waits for token-service (less than any probe's own timeout).
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// Liveness: the process serves HTTP. Nothing else is checked, so that a token-service
/// outage never gets auth-web restarted.
pub async fn liveness() -> HttpResponse {
    no_store(HttpResponse::Ok()).json(serde_json::json!({"status": "ok"}))
}

/// Readiness: 200 while token-service is serving and takes auth-web's credentials, 503
/// otherwise (a load balancer then sends no one here).
pub async fn readiness(state: web::Data<WebState>) -> HttpResponse {
    let upstream = token_service_ready(&state).await;
    METRICS
        .token_service_ready
        .set(i64::from(upstream == Upstream::Ready));
    let checks = serde_json::json!({"token_service": upstream.as_str()});
    if upstream == Upstream::Ready {
        no_store(HttpResponse::Ok()).json(serde_json::json!({"status": "ok", "checks": checks}))
    } else {
        no_store(HttpResponse::ServiceUnavailable())
            .json(serde_json::json!({"status": "failed", "checks": checks}))
    }
}

async fn token_service_ready(state: &WebState) -> Upstream {
    // Held across the check: a burst of probes makes one check, not one each.
    let mut last = state.readiness.lock().await;
    if let Some((at, upstream)) = *last
        && at.elapsed() < READINESS_REUSED_FOR
    {
        return upstream;
    }
    let upstream = check_token_service(state).await;
    *last = Some((Instant::now(), upstream));
    upstream
}

/// gRPC health (open to anyone, so it cannot tell whether auth-web's own credentials are
/// taken), then `GetJwks`, the cheapest call that needs an internal caller.
async fn check_token_service(state: &WebState) -> Upstream {
    let mut health = state.upstream.health.clone();
    let check = health.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(READINESS_TIMEOUT, check).await {
        Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32 => {}
        Ok(Ok(_)) => return Upstream::NotServing,
        _ => return Upstream::Unreachable,
    }
    let mut tokens = state.upstream.tokens.clone();
    let internal = tokens.get_jwks(doorward_proto::v1::Empty {});
    match tokio::time::timeout(READINESS_TIMEOUT, internal).await {
        Ok(Ok(_)) => Upstream::Ready,
        Ok(Err(status))
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) =>
        {
            Upstream::Refused
        }
        _ => Upstream::Unreachable,
    }
}

/// Every metric of this process, in Prometheus's text format; 404 for clients outside
/// `web.monitoring_ips` (as if there were nothing here).
pub async fn metrics(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    if !state.may_monitor(&req) {
        return HttpResponse::NotFound().finish();
    }
    no_store(HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, doorward_shared::metrics::CONTENT_TYPE))
        .body(doorward_shared::metrics::render())
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}
