//! What every gRPC call records, as a tower layer in front of every service: its latency
//! and status in the metrics, and, when the caller sent a request id in the `x-request-id`
//! metadata (auth-web always does), a `rpc` span carrying it, so that every line logged
//! while the call runs, in either service, can be joined on it. A call without one (a
//! resource server's validation) gets no span: the hot path of validation pays nothing for
//! a log line it rarely writes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use doorward_shared::metrics::grpc_status_label;
use doorward_shared::request_id::{self, RequestId};
use prost::Message;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::METRICS;
use doorward_shared::metrics::prometheus::{Histogram, IntCounter};

/// The label of a call to a path no served descriptor names (an attacker's choice of path
/// never becomes a label value).
const UNKNOWN_RPC: &str = "unknown";

/// The RPCs served, by path.
type Rpcs = HashMap<String, Arc<Rpc>>;

/// One RPC's label and its metrics, looked up in the registry at its first call only (a
/// registry lookup per call costs more than the rest of this layer).
struct Rpc {
    label: String,
    duration: OnceLock<Histogram>,
    ok: OnceLock<IntCounter>,
}

impl Rpc {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            duration: OnceLock::new(),
            ok: OnceLock::new(),
        }
    }

    fn record(&self, code: &str, elapsed: std::time::Duration) {
        self.duration
            .get_or_init(|| METRICS.grpc_duration.with_label_values(&[&self.label]))
            .observe(elapsed.as_secs_f64());
        if code == "OK" {
            self.ok
                .get_or_init(|| {
                    METRICS
                        .grpc_requests
                        .with_label_values(&[&self.label, "OK"])
                })
                .inc();
        } else {
            METRICS
                .grpc_requests
                .with_label_values(&[&self.label, code])
                .inc();
        }
    }
}

/// The layer; cheap to clone.
#[derive(Clone)]
pub struct ObserveLayer {
    rpcs: Arc<Rpcs>,
    unknown: Arc<Rpc>,
}

impl ObserveLayer {
    /// Knows the RPCs of `descriptor_sets` (encoded `FileDescriptorSet`s) and `extra` paths.
    pub fn new(descriptor_sets: &[&[u8]], extra: &[&str]) -> Self {
        let mut paths: Vec<String> = extra.iter().map(|p| (*p).to_owned()).collect();
        for encoded in descriptor_sets {
            // The sets are compiled into the binary: one that does not decode is skipped,
            // and its calls are labelled `unknown`.
            let Ok(set) = prost_types::FileDescriptorSet::decode(*encoded) else {
                continue;
            };
            for file in set.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        paths.push(format!("/{package}.{}/{}", service.name(), method.name()));
                    }
                }
            }
        }
        // The label is the path without its slash: `doorward.v1.TokenService/Exchange`.
        let rpcs = paths
            .into_iter()
            .map(|path| {
                let rpc = Arc::new(Rpc::new(&path[1..]));
                (path, rpc)
            })
            .collect();
        Self {
            rpcs: Arc::new(rpcs),
            unknown: Arc::new(Rpc::new(UNKNOWN_RPC)),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            rpcs: self.rpcs.clone(),
            unknown: self.unknown.clone(),
        }
    }
}

/// The service the layer wraps.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    rpcs: Arc<Rpcs>,
    unknown: Arc<Rpc>,
}

impl<S, B, RB> Service<http::Request<B>> for Observe<S>
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
        let rpc = self
            .rpcs
            .get(request.uri().path())
            .unwrap_or(&self.unknown)
            .clone();
        // Only a plain id is kept (SEC-OB-03); a bad one is replaced.
        let span = request
            .headers()
            .get(request_id::HEADER)
            .map(|v| RequestId::from_header(v.to_str().ok()))
            .map(|id| tracing::info_span!("rpc", rpc = %rpc.label, request_id = %id));
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = match span {
                Some(span) => call.instrument(span).await,
                None => call.await,
            };
            let code = match &result {
                Ok(response) => {
                    grpc_status_label(response.headers().get("grpc-status").map(|v| v.as_bytes()))
                }
                Err(_) => "INTERNAL",
            };
            rpc.record(code, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_rpcs_are_known_and_nothing_else() {
        let layer = ObserveLayer::new(
            &[doorward_proto::v1::FILE_DESCRIPTOR_SET],
            &["/grpc.health.v1.Health/Check"],
        );
        assert_eq!(
            layer
                .rpcs
                .get("/doorward.v1.TokenService/Exchange")
                .map(|rpc| rpc.label.as_str()),
            Some("doorward.v1.TokenService/Exchange")
        );
        assert!(
            layer
                .rpcs
                .contains_key("/doorward.v1.TokenValidation/Validate")
        );
        assert!(layer.rpcs.contains_key("/grpc.health.v1.Health/Check"));
        assert!(!layer.rpcs.contains_key("/doorward.v1.TokenService/Nope"));
    }
}
