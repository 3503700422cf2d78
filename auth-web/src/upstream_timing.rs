//! Latency and failures of every gRPC call to token-service, as a tower layer under the
//! generated clients: `doorward_web_upstream_duration_seconds` and
//! `doorward_web_upstream_errors_total`, labelled by RPC (auth-web makes only the calls of
//! its own code, so the set is fixed).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use doorward_shared::metrics::grpc_status_label;
use tower::Service;

use crate::metrics::METRICS;

/// `inner` (a channel), timed.
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
}

impl<S> Timed<S> {
    /// Times the calls made through `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B, RB> Service<http::Request<B>> for Timed<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Shares the request's buffer: no copy per call.
        let path = request.uri().path_and_query().cloned();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            // `/doorward.v1.TokenService/Exchange` -> `doorward.v1.TokenService/Exchange`.
            let rpc = path
                .as_ref()
                .map_or("", |p| p.path().trim_start_matches('/'));
            crate::metrics::upstream_call(rpc, started.elapsed().as_secs_f64());
            let code = match &result {
                Ok(response) => {
                    grpc_status_label(response.headers().get("grpc-status").map(|v| v.as_bytes()))
                }
                // Not reached, or no answer within the deadline.
                Err(_) => "UNAVAILABLE",
            };
            if code != "OK" {
                METRICS
                    .upstream_errors
                    .with_label_values(&[rpc, code])
                    .inc();
            }
            result
        })
    }
}
