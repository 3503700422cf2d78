//! auth-web's metrics (Prometheus; rendered by `doorward_shared::metrics::render`), as
//! process-wide statics (see `doorward_shared::metrics`). Labels come from fixed sets:
//! route templates (never raw paths), methods actix knows, status codes, grant types, error
//! codes and RPC names.

use std::sync::LazyLock;

use doorward_shared::metrics::prometheus::{HistogramVec, IntCounterVec, IntGauge};
use doorward_shared::metrics::{counter_vec, gauge, histogram_vec};
use doorward_shared::{ErrorCode, GrantType};

/// Every metric auth-web records.
pub struct Metrics {
    /// HTTP requests by route template, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by route template.
    pub http_duration: HistogramVec,
    /// Token endpoint answers by grant type and outcome.
    pub token_responses: IntCounterVec,
    /// Latency of calls to token-service, by RPC.
    pub upstream_duration: HistogramVec,
    /// Failed calls to token-service, by RPC and gRPC status.
    pub upstream_errors: IntCounterVec,
    /// Sign-ins on the pages, by outcome.
    pub sign_ins: IntCounterVec,
    /// 1 when the last readiness check reached token-service.
    pub token_service_ready: IntGauge,
}

/// The process's metrics, registered at first use.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    http_requests: counter_vec(
        "doorward_web_http_requests_total",
        "HTTP requests, by route template, method and status.",
        &["route", "method", "status"],
    ),
    http_duration: histogram_vec(
        "doorward_web_http_request_duration_seconds",
        "HTTP request latency, by route template.",
        &["route"],
    ),
    token_responses: counter_vec(
        "doorward_web_token_responses_total",
        "Token endpoint answers, by grant type and outcome (issued, or the OAuth error code).",
        &["grant_type", "outcome"],
    ),
    upstream_duration: histogram_vec(
        "doorward_web_upstream_duration_seconds",
        "Latency of gRPC calls to token-service, by RPC.",
        &["rpc"],
    ),
    upstream_errors: counter_vec(
        "doorward_web_upstream_errors_total",
        "Failed gRPC calls to token-service, by RPC and status code.",
        &["rpc", "code"],
    ),
    sign_ins: counter_vec(
        "doorward_web_sign_ins_total",
        "Sign-ins on the pages, by outcome (succeeded, failed, throttled, unavailable).",
        &["outcome"],
    ),
    token_service_ready: gauge(
        "doorward_web_token_service_ready",
        "1 when the last readiness check reached a serving token-service, else 0.",
    ),
});

/// Counts a token endpoint answer. `grant_type` is what the client sent.
pub fn token_response(grant_type: Option<&str>, outcome: Result<(), ErrorCode>) {
    let grant = grant_type
        .and_then(GrantType::from_wire)
        .map_or("unsupported", GrantType::registration_name);
    let outcome = match outcome {
        Ok(()) => "issued",
        Err(code) => code.as_str(),
    };
    METRICS
        .token_responses
        .with_label_values(&[grant, outcome])
        .inc();
}

/// How a sign-in on the pages ended.
#[derive(Debug, Clone, Copy)]
pub enum SignIn {
    /// Signed in.
    Succeeded,
    /// Wrong login or password.
    Failed,
    /// Refused by the throttle.
    Throttled,
    /// token-service was unreachable or overloaded.
    Unavailable,
}

/// Counts a sign-in.
pub fn sign_in(outcome: SignIn) {
    let name = match outcome {
        SignIn::Succeeded => "succeeded",
        SignIn::Failed => "failed",
        SignIn::Throttled => "throttled",
        SignIn::Unavailable => "unavailable",
    };
    METRICS.sign_ins.with_label_values(&[name]).inc();
}
