//! What auth-web's readiness check found of token-service (`routes::health` checks; the
//! answer is kept per worker in `WebState`).

/// What the readiness check found of token-service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Serving, and it takes auth-web's credentials.
    Ready,
    /// No answer within the timeout (down, or the network or TLS handshake fails).
    Unreachable,
    /// It answers NOT_SERVING (its database does not answer).
    NotServing,
    /// It refuses auth-web as an internal caller (a missing client certificate, a wrong
    /// service token): every request would fail, so auth-web is not ready either.
    Refused,
}

impl Upstream {
    /// The word `/-/readiness` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ok",
            Self::Unreachable => "unreachable",
            Self::NotServing => "not_serving",
            Self::Refused => "refused",
        }
    }
}
