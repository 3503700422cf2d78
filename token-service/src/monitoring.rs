//! token-service's health and metrics for operators: a probe of the database that drives
//! gRPC health (NOT_SERVING while the database does not answer) and
//! `doorward_database_up`, and the plain-HTTP listener of `metrics_addr` with
//! `/-/metrics`, `/-/liveness` and `/-/readiness` (for probes that cannot speak gRPC over
//! mTLS, such as Kubernetes' and Compose's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use diesel::connection::SimpleConnection;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::metrics::METRICS;
use crate::state::AppState;

/// How often the database is probed: the bound on how late health notices it.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long a probe waits for a connection before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client of the metrics listener may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the database answered the last probe; shared by the probe and the listener.
#[derive(Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Default for Readiness {
    /// Ready: the database answered moments ago, when the service opened it.
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl Readiness {
    /// Whether the database answered the last probe.
    pub fn ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, ready: bool) -> bool {
        self.0.swap(ready, Ordering::Relaxed)
    }
}

/// Probes the database every `PROBE_EVERY`: sets `readiness`, the gRPC health of
/// `services` (and of the server as a whole, the empty name), `doorward_database_up` and
/// the pool's gauges. A change is logged once.
pub fn spawn_probe(
    state: AppState,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    readiness: Readiness,
) -> tokio::task::JoinHandle<()> {
    METRICS.database_up.set(1);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PROBE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let up = database_answers(&state).await;
            METRICS.database_up.set(i64::from(up));
            record_pool(&state);
            if readiness.set(up) == up {
                continue;
            }
            let status = if up {
                tracing::info!("the database answers again; health is SERVING");
                ServingStatus::Serving
            } else {
                tracing::error!("the database does not answer; health is NOT_SERVING");
                ServingStatus::NotServing
            };
            for service in std::iter::once("").chain(services.iter().copied()) {
                reporter.set_service_status(service, status).await;
            }
        }
    })
}

async fn database_answers(state: &AppState) -> bool {
    let pool = state.pool.clone();
    let probe = tokio::task::spawn_blocking(move || {
        pool.get_timeout(PROBE_TIMEOUT)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| conn.batch_execute("SELECT 1").map_err(|e| e.to_string()))
    });
    match probe.await {
        Ok(Ok(())) => true,
        Ok(Err(why)) => {
            tracing::debug!(error = %why, "database probe failed");
            false
        }
        Err(_) => false,
    }
}

fn record_pool(state: &AppState) {
    let pool = state.pool.state();
    let in_use = pool.connections.saturating_sub(pool.idle_connections);
    let gauges = &METRICS.pool_connections;
    gauges.with_label_values(&["in_use"]).set(i64::from(in_use));
    gauges
        .with_label_values(&["idle"])
        .set(i64::from(pool.idle_connections));
}

/// Serves `/-/metrics`, `/-/liveness` and `/-/readiness` on `listener` over HTTP/1.1.
pub fn spawn_listener(listener: TcpListener, readiness: Readiness) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    tracing::warn!(error = %err, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let readiness = readiness.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = answer(&request, &readiness);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The answer to one request of the metrics listener.
fn answer<B>(request: &Request<B>, readiness: &Readiness) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/-/metrics" => plain(
            StatusCode::OK,
            doorward_shared::metrics::CONTENT_TYPE,
            doorward_shared::metrics::render(),
        ),
        "/-/liveness" => json(StatusCode::OK, r#"{"status":"ok"}"#),
        "/-/readiness" if readiness.ready() => json(
            StatusCode::OK,
            r#"{"status":"ok","checks":{"database":"ok"}}"#,
        ),
        "/-/readiness" => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"failed","checks":{"database":"unreachable"}}"#,
        ),
        _ => plain(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    plain(status, "application/json", body.into())
}

fn plain(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, readiness: &Readiness) -> Response<Full<Bytes>> {
        let request = Request::get(path).body(()).unwrap();
        answer(&request, readiness)
    }

    #[test]
    fn readiness_follows_the_probe_and_liveness_does_not() {
        let readiness = Readiness::default();
        assert_eq!(get("/-/readiness", &readiness).status(), StatusCode::OK);
        readiness.set(false);
        assert_eq!(
            get("/-/readiness", &readiness).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get("/-/liveness", &readiness).status(), StatusCode::OK);
    }

    #[test]
    fn only_the_three_paths_and_only_get() {
        let readiness = Readiness::default();
        assert_eq!(get("/-/metrics", &readiness).status(), StatusCode::OK);
        assert_eq!(get("/metrics", &readiness).status(), StatusCode::NOT_FOUND);
        let post = Request::post("/-/metrics").body(()).unwrap();
        assert_eq!(
            answer(&post, &readiness).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
