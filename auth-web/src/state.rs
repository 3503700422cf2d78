//! `WebState`: what every handler shares (the gRPC clients, the configuration, the trusted
//! proxies, the clock). Its own module, so that routes depend on it and `startup` on the
//! routes, with no way back.

use std::sync::Arc;

use actix_web::HttpRequest;
use doorward_proto::v1 as pb;
use doorward_shared::clock::SharedClock;
use doorward_shared::config::Config;

use crate::client_ip::TrustedProxies;
use crate::upstream::Upstream;
use doorward_shared::metrics::MonitoringIps;

/// What every handler shares.
pub struct WebState {
    /// gRPC clients of token-service.
    pub upstream: Upstream,
    /// Configuration.
    pub config: Arc<Config>,
    proxies: TrustedProxies,
    clock: SharedClock,
    /// Who may read `/-/metrics`.
    monitoring: MonitoringIps,
    /// The last readiness check and when it ran (see `routes::health`); held across a
    /// check, so that probes arriving meanwhile wait for its answer instead of asking too.
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, crate::readiness::Upstream)>>,
}

impl WebState {
    /// The state of one actix worker.
    pub fn new(
        upstream: Upstream,
        config: Arc<Config>,
        proxies: TrustedProxies,
        clock: SharedClock,
        monitoring: MonitoringIps,
    ) -> Self {
        Self {
            upstream,
            config,
            proxies,
            clock,
            monitoring,
            readiness: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether the client of `req` may read the metrics: its IP (the forwarded one behind
    /// a trusted proxy) is one of `web.monitoring_ips`.
    pub fn may_monitor(&self, req: &HttpRequest) -> bool {
        self.proxies
            .client_ip(req)
            .parse()
            .is_ok_and(|ip| self.monitoring.allows(ip))
    }

    /// The facts about `req` that token-service's rules need.
    pub fn request_context(&self, req: &HttpRequest) -> pb::RequestContext {
        pb::RequestContext {
            client_ip: self.proxies.client_ip(req),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(256)
                .collect(),
        }
    }

    /// Seconds since the epoch, from the injectable clock (session lifetimes).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.config.issuer()
    }
}
