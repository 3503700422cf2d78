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
        // Walk the hops from the right (the nearest proxy first), skipping trusted proxies;
        // the first hop that is not one of ours is the client. An unreadable hop ends the
        // walk: anything left of it was written by the client and cannot be believed.
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.0.contains(&ip) => client = ip,
                Ok(ip) => return ip.to_string(),
                Err(_) => break,
            }
        }
        client.to_string()
    }
}
