//! Prometheus metrics, shared by both services: the text rendering of `/-/metrics`, the
//! bucket layouts, and who may read the metrics (`web.monitoring_ips`).
//!
//! Every metric lives in the `prometheus` crate's default registry, one per process: the
//! all-in-one binary runs both services in one process, and one scrape of auth-web's
//! `/-/metrics` then shows both. Metric handles are process-wide statics for the same
//! reason (a registry refuses a second metric of one name). Labels take values from fixed
//! sets only (route templates, RPC names, grant types, error codes), never from input.

use std::net::IpAddr;

pub use prometheus;
use prometheus::{Encoder, TextEncoder};

/// The `Content-Type` of Prometheus's text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric of this process in Prometheus's text format.
pub fn render() -> String {
    let mut out = Vec::with_capacity(16 * 1024);
    // Encoding into a Vec fails only on a metric family without metrics, which the
    // registry never hands out.
    if let Err(err) = TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        tracing::error!(error = %err, "could not encode the metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Latency buckets, in seconds: from 0.5 ms (a cached validation) to 10 s (a deadline).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram registered in the default registry; a name taken twice is a bug.
pub fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::HistogramVec {
    let opts = prometheus::HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(prometheus::HistogramVec::new(opts, labels))
}

/// A histogram without labels, with `buckets` (in the metric's unit).
pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> prometheus::Histogram {
    let opts = prometheus::HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(prometheus::Histogram::with_opts(opts))
}

/// A counter with labels, registered in the default registry.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
    register(prometheus::IntCounterVec::new(
        prometheus::Opts::new(name, help),
        labels,
    ))
}

/// A gauge with labels, registered in the default registry.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::IntGaugeVec {
    register(prometheus::IntGaugeVec::new(
        prometheus::Opts::new(name, help),
        labels,
    ))
}

/// A counter without labels, registered in the default registry.
pub fn counter(name: &str, help: &str) -> prometheus::IntCounter {
    register(prometheus::IntCounter::new(name, help))
}

/// A gauge without labels, registered in the default registry.
pub fn gauge(name: &str, help: &str) -> prometheus::IntGauge {
    register(prometheus::IntGauge::new(name, help))
}

/// Registers `metric`. The names are constants of this code base, so a bad name or a name
/// registered twice can only be a programming error: it fails loudly at first use.
fn register<M>(metric: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    #[allow(clippy::expect_used)]
    let metric = metric.expect("a metric's name and labels are constants");
    #[allow(clippy::expect_used)]
    prometheus::register(Box::new(metric.clone())).expect("each metric is registered once");
    metric
}

/// The label of a gRPC call's status, from its `grpc-status` header: a refusal travels in
/// the headers (a trailers-only response), while a success's `OK` comes in the trailers
/// after the body, so no header means OK. gRPC's canonical names.
pub fn grpc_status_label(header: Option<&[u8]>) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    let Some(header) = header else {
        return "OK";
    };
    std::str::from_utf8(header)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .and_then(|n| NAMES.get(n).copied())
        .unwrap_or("UNKNOWN")
}

/// Who may read `/-/metrics`: the addresses and ranges of `web.monitoring_ips`.
#[derive(Debug, Clone, Default)]
pub struct MonitoringIps(Vec<ipnet::IpNet>);

/// A `web.monitoring_ips` entry that is neither an address nor a CIDR range.
#[derive(Debug, thiserror::Error)]
#[error("web.monitoring_ips: {0:?} is not an IP address or a CIDR range (10.0.0.0/8)")]
pub struct MonitoringIpsError(String);

impl MonitoringIps {
    /// Parses addresses (`127.0.0.1`, a /32 or /128) and ranges (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, MonitoringIpsError> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| MonitoringIpsError(entry.clone()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` may read the metrics. An IPv4 client seen as an IPv4-mapped IPv6
    /// address (a dual-stack listener) counts as its IPv4 address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(entries: &[&str]) -> MonitoringIps {
        MonitoringIps::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn monitoring_ips_take_addresses_and_ranges() {
        let allowed = ips(&["127.0.0.0/8", "::1", "10.1.2.3"]);
        assert!(allowed.allows("127.0.0.1".parse().unwrap()));
        assert!(allowed.allows("127.9.9.9".parse().unwrap()));
        assert!(allowed.allows("::1".parse().unwrap()));
        assert!(allowed.allows("10.1.2.3".parse().unwrap()));
        assert!(allowed.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!allowed.allows("10.1.2.4".parse().unwrap()));
        assert!(!allowed.allows("192.0.2.1".parse().unwrap()));
        assert!(!ips(&[]).allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn grpc_status_labels_are_the_canonical_names() {
        assert_eq!(grpc_status_label(None), "OK");
        assert_eq!(grpc_status_label(Some(b"0")), "OK");
        assert_eq!(grpc_status_label(Some(b"14")), "UNAVAILABLE");
        assert_eq!(grpc_status_label(Some(b"16")), "UNAUTHENTICATED");
        assert_eq!(grpc_status_label(Some(b"17")), "UNKNOWN");
        assert_eq!(grpc_status_label(Some(b"x")), "UNKNOWN");
    }

    #[test]
    fn monitoring_ips_refuse_what_is_not_an_address() {
        for bad in ["localhost", "10.0.0.0/33", "", "1.2.3"] {
            let err = MonitoringIps::parse(&[bad.to_string()]).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
