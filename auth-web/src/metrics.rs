//! auth-web's metrics (Prometheus; rendered by `doorward_shared::metrics::render`), as
//! process-wide statics (see `doorward_shared::metrics`). Labels come from fixed sets:
//! route templates (never raw paths), methods actix knows, status codes, grant types, error
//! codes and RPC names.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use doorward_shared::metrics::prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};
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

/// A worker's HTTP metric handles, by (route template, method, status).
type HttpHandles = HashMap<(String, &'static str, u16), (IntCounter, Histogram)>;

thread_local! {
    /// This worker's handles of the HTTP metrics, by route, method and status: the
    /// registry's lookup (a hash and a lock shared by every worker) once per combination.
    static HTTP: RefCell<HttpHandles> = RefCell::new(HashMap::new());
    /// This worker's histogram of each RPC's latency.
    static UPSTREAM: RefCell<HashMap<String, Histogram>> = RefCell::new(HashMap::new());
}

/// Counts an HTTP request and its latency. `route` is a route template (or `unmatched`).
pub fn http_request(route: String, method: &'static str, status: u16, seconds: f64) {
    HTTP.with(|handles| {
        let mut handles = handles.borrow_mut();
        let key = (route, method, status);
        if let Some((count, latency)) = handles.get(&key) {
            count.inc();
            latency.observe(seconds);
            return;
        }
        let status_label = status.to_string();
        let count = METRICS
            .http_requests
            .with_label_values(&[&key.0, method, &status_label]);
        let latency = METRICS.http_duration.with_label_values(&[&key.0]);
        count.inc();
        latency.observe(seconds);
        handles.insert(key, (count, latency));
    });
}

/// Records the latency of a call to `rpc` (`doorward.v1.TokenService/Exchange`).
pub fn upstream_call(rpc: &str, seconds: f64) {
    UPSTREAM.with(|handles| {
        let mut handles = handles.borrow_mut();
        if let Some(latency) = handles.get(rpc) {
            latency.observe(seconds);
            return;
        }
        let latency = METRICS.upstream_duration.with_label_values(&[rpc]);
        latency.observe(seconds);
        handles.insert(rpc.to_owned(), latency);
    });
}

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
