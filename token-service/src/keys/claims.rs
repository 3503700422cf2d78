//! What tokens say: the claims of access tokens (RFC 9068) and of id_tokens (OpenID
//! Connect), the type and lifetime they are issued with, and `at_hash`, which ties the two.

use serde::{Deserialize, Serialize};

use doorward_shared::secret::{base64url, sha256};

/// The JWS `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Lifetime of an id_token (GitLab: 120 s).
pub const ID_TOKEN_TTL_SECONDS: i64 = 120;

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// Not issued by Doorward; honoured when present (SEC-JW-05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// The claims of an id_token (OpenID Connect Core §2 and §3.1.3.6; the GitLab claims of
/// the reference §4.3 that Doorward has data for). Absent values are omitted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// `at_hash` (OpenID Connect Core §3.1.3.6): the left half of the SHA-256 of the access
/// token's ASCII octets, base64url-encoded (SHA-256 because id_tokens are RS256).
pub fn at_hash(access_token: &str) -> String {
    base64url(&sha256(access_token.as_bytes())[..16])
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Access-token claims of the test issuer, expiring at `exp`.
    pub(in crate::keys) fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: "1".into(),
            aud: "http://issuer".into(),
            exp,
            iat: 0,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "api".into(),
            nbf: None,
        }
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OpenID Connect Core, Appendix A.4 (an RS256 id_token and its access token).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
