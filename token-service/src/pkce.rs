//! PKCE (RFC 7636): challenge syntax at the authorization endpoint and verification at the
//! token endpoint, in constant time (SEC-PK-01..04).

use doorward_shared::secret::{base64url, constant_time_eq, sha256};

/// A challenge method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `S256`: BASE64URL(SHA256(verifier)).
    S256,
    /// `plain`: the verifier itself (RFC 7636 §4.2); accepted for confidential clients only.
    Plain,
}

impl Method {
    /// Parses `code_challenge_method`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "S256" => Some(Self::S256),
            "plain" => Some(Self::Plain),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_verifier_syntax(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `challenge` is well formed for `method` (SEC-PK-04): exactly 43 base64url
/// characters for S256, verifier syntax for plain.
pub fn is_valid_challenge(method: Method, challenge: &str) -> bool {
    match method {
        Method::S256 => {
            challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        Method::Plain => is_verifier_syntax(challenge),
    }
}

/// Whether `verifier` proves possession of `challenge` (RFC 7636 §4.6).
pub fn verify(method: Method, challenge: &str, verifier: &str) -> bool {
    if !is_verifier_syntax(verifier) {
        return false;
    }
    match method {
        Method::S256 => constant_time_eq(
            base64url(&sha256(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        ),
        Method::Plain => constant_time_eq(verifier.as_bytes(), challenge.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_valid_challenge(Method::S256, challenge));
        assert!(verify(Method::S256, challenge, verifier));
        assert!(!verify(
            Method::S256,
            challenge,
            &verifier.replace('d', "e")
        ));
    }

    #[test]
    fn sec_pk_04_syntax_bounds_on_challenge_and_verifier() {
        assert!(!is_valid_challenge(Method::S256, &"a".repeat(42)));
        assert!(!is_valid_challenge(Method::S256, &"a".repeat(10_000)));
        assert!(!is_valid_challenge(
            Method::S256,
            &format!("{}+", "a".repeat(42))
        ));
        let challenge = base64url(&sha256(b"x"));
        for verifier in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(42)),
        ] {
            assert!(!verify(Method::S256, &challenge, &verifier), "{verifier}");
            assert!(!verify(Method::Plain, &verifier, &verifier), "{verifier}");
        }
    }
}
