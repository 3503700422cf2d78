//! The request id: one value per HTTP request, taken from the client's `x-request-id` when it
//! is a plain token (so that a proxy's id carries through), made up otherwise, sent back on
//! the response, passed to token-service in the gRPC metadata of the same name, and logged
//! on both sides.

use std::fmt;

/// The header (HTTP) and metadata key (gRPC) that carries it.
pub const HEADER: &str = "x-request-id";

/// Longest id taken from a client; longer ones are replaced, never cut.
const MAX_LEN: usize = 64;

/// A request id: 1 to 64 characters of `A-Z a-z 0-9 - _ .` (nothing a log reader or a
/// terminal could mistake for structure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id a client or a proxy sent, if it is acceptable.
    pub fn parse(value: &str) -> Option<Self> {
        let acceptable = !value.is_empty()
            && value.len() <= MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        acceptable.then(|| Self(value.to_owned()))
    }

    /// A new random id: 16 bytes, hex.
    pub fn generate() -> Self {
        Self(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// The id sent, or a new one when none (or a bad one) was.
    pub fn from_header(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_id_is_kept() {
        let id = RequestId::from_header(Some("req-1.a_B"));
        assert_eq!(id.as_str(), "req-1.a_B");
    }

    #[test]
    fn a_bad_or_missing_id_is_replaced() {
        let long = "a".repeat(65);
        for bad in [
            None,
            Some(""),
            Some("a b"),
            Some("x\ny"),
            Some("\"}"),
            Some(&*long),
        ] {
            let id = RequestId::from_header(bad);
            assert_eq!(id.as_str().len(), 32, "{bad:?}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
