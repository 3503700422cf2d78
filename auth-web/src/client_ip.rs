//! The client's IP for rate limits (SEC-RL-04): the socket peer, unless the peer is a
//! configured trusted proxy, in which case the right-most untrusted `X-Forwarded-For` hop.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// Trusted proxy addresses.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    /// Parses the configured list, skipping entries that are not IP addresses.
    pub fn new(entries: &[String]) -> Self {
        Self(
            entries
                .iter()
                .filter_map(|e| e.trim().parse().ok())
                .collect(),
        )
    }

    /// The client IP of `req`.
    pub fn client_ip(&self, req: &HttpRequest) -> String {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return String::new();
        };
        if !self.0.contains(&peer) {
            return peer.to_string();
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.0.contains(ip))
            .unwrap_or(peer)
            .to_string()
    }
}
