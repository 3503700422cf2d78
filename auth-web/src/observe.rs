//! What every HTTP request records, as the outermost middleware: its request id (the
//! client's `x-request-id` when it is a plain token, otherwise a new one; sent back on the
//! response, and to token-service with every gRPC call made for the request), one access
//! log line, and the request metrics by route template.
//!
//! The id reaches the gRPC client and auth-web's own log lines through a task-local
//! (`current_request_id`, `request_id_field`): the handler runs inside this middleware's
//! future, on the same task. A task-local rather than a tracing span: entering and leaving a
//! span on every poll of every request cost about 1% of a token request's CPU, for the few
//! lines auth-web logs inside a request.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use doorward_shared::request_id::{self, RequestId};

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// The id of the request being handled, if any.
pub fn current_request_id() -> Option<RequestId> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The id as a log field (`request_id = request_id_field()`), absent outside a request.
pub fn request_id_field() -> Option<tracing::field::DisplayValue<RequestId>> {
    current_request_id().map(tracing::field::display)
}

/// The label of a request no route matched (a raw path never becomes a label value).
const UNMATCHED: &str = "unmatched";

/// The middleware (`actix_web::middleware::from_fn(observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = RequestId::from_header(
        req.headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let method = method_label(req.method());
    // The path without its query string: tokens passed as `?access_token=` never reach
    // the log (SEC-SL-03).
    let path = req.path().to_owned();
    let peer = req.peer_addr().map(|a| a.ip());
    let started = Instant::now();
    let result = REQUEST_ID.scope(id.clone(), next.call(req)).await;
    let elapsed = started.elapsed();
    let (status, route) = match &result {
        Ok(res) => (res.status(), res.request().match_pattern()),
        Err(err) => (err.as_response_error().status_code(), None),
    };
    let route = route.unwrap_or_else(|| UNMATCHED.to_owned());
    tracing::info!(
        target: "access",
        request_id = %id,
        method,
        path,
        route,
        status = status.as_u16(),
        latency_us = elapsed.as_micros() as u64,
        peer = peer.map(tracing::field::display),
        "request"
    );
    crate::metrics::http_request(route, method, status.as_u16(), elapsed.as_secs_f64());
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut()
            .insert(HeaderName::from_static(request_id::HEADER), value);
    }
    Ok(res)
}

/// The standard methods by name; anything else (a client may send any token) is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
