//! What every gRPC call records, as a tower layer in front of every service: its latency
//! and status in the metrics, and, when the caller sent a request id in the `x-request-id`
//! metadata (auth-web always does), a `rpc` span carrying it, so that every line logged
//! while the call runs, in either service, can be joined on it. A call without one (a
//! resource server's validation) gets no span: the hot path of validation pays nothing for
//! a log line it rarely writes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use doorward_shared::metrics::grpc_status_label;
use doorward_shared::request_id::{self, RequestId};
use prost::Message;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::METRICS;

/// The label of a call to a path no served descriptor names (an attacker's choice of path
/// never becomes a label value).
const UNKNOWN_RPC: &str = "unknown";

/// The RPCs served, by path, with their labels.
type Rpcs = HashMap<String, Arc<str>>;

/// The layer; cheap to clone.
#[derive(Clone)]
pub struct ObserveLayer {
    rpcs: Arc<Rpcs>,
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
                let label = Arc::from(&path[1..]);
                (path, label)
            })
            .collect();
        Self {
            rpcs: Arc::new(rpcs),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            rpcs: self.rpcs.clone(),
        }
    }
}

/// The service the layer wraps.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    rpcs: Arc<Rpcs>,
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
            .cloned()
            .unwrap_or_else(|| Arc::from(UNKNOWN_RPC));
        // Only a plain id is kept (SEC-OB-03); a bad one is replaced.
        let span = request
            .headers()
            .get(request_id::HEADER)
            .map(|v| RequestId::from_header(v.to_str().ok()))
            .map(|id| tracing::info_span!("rpc", rpc = %rpc, request_id = %id));
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
            METRICS
                .grpc_duration
                .with_label_values(&[&*rpc])
                .observe(started.elapsed().as_secs_f64());
            METRICS
                .grpc_requests
                .with_label_values(&[&*rpc, code])
                .inc();
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
                .map(|l| &**l),
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
