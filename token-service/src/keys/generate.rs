//! New keys, one kind per purpose: Ed25519 for access tokens, RSA for id_tokens, each with
//! its public JWK and its RFC 7638 thumbprint as `kid`.

use ed25519_dalek::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;

use super::error::KeyError;
use crate::db::models::SigningKeyRow;
use doorward_shared::secret::{base64url, random_bytes, sha256};

/// Keys that sign access tokens (Ed25519).
pub const PURPOSE_ACCESS_TOKEN: &str = "access_token";
/// Keys that sign id_tokens (RSA).
pub const PURPOSE_ID_TOKEN: &str = "id_token";
/// Every purpose, in the order `keys rotate` handles them.
pub const PURPOSES: [&str; 2] = [PURPOSE_ACCESS_TOKEN, PURPOSE_ID_TOKEN];
/// RSA modulus size of id_token keys (RFC 7518 §3.3: at least 2048).
pub const RSA_BITS: usize = 2048;

/// A new key for `purpose`.
pub fn generate(purpose: &str, now: i64) -> Result<SigningKeyRow, KeyError> {
    match purpose {
        PURPOSE_ID_TOKEN => generate_rsa(now),
        _ => generate_ed25519(now),
    }
}

/// A new Ed25519 key: PKCS#8 private key, public JWK, and its RFC 7638 thumbprint as `kid`.
pub fn generate_ed25519(now: i64) -> Result<SigningKeyRow, KeyError> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>());
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let x = base64url(signing.verifying_key().as_bytes());
    let kid = ed25519_thumbprint(&x);
    let jwk = serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    });
    Ok(SigningKeyRow {
        kid,
        algorithm: "EdDSA".into(),
        purpose: PURPOSE_ACCESS_TOKEN.into(),
        private_key: der.as_bytes().to_vec(),
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
        revoked_at: None,
    })
}

/// A new RSA key for id_tokens: PKCS#1 private key, public JWK, RFC 7638 thumbprint.
pub fn generate_rsa(now: i64) -> Result<SigningKeyRow, KeyError> {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let n = base64url(&key.n().to_be_bytes_trimmed_vartime());
    let e = base64url(&key.e().to_be_bytes_trimmed_vartime());
    let kid = rsa_thumbprint(&n, &e);
    let jwk = serde_json::json!({
        "kty": "RSA",
        "n": n,
        "e": e,
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
    });
    Ok(SigningKeyRow {
        kid,
        algorithm: "RS256".into(),
        purpose: PURPOSE_ID_TOKEN.into(),
        private_key: der.as_bytes().to_vec(),
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
        revoked_at: None,
    })
}

/// RFC 7638 §3 thumbprint of an OKP key (RFC 8037 §2): SHA-256 over the required members
/// in lexicographic order, without whitespace.
fn ed25519_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    base64url(&sha256(canonical.as_bytes()))
}

/// RFC 7638 §3.1 thumbprint of an RSA key: `{"e":..,"kty":"RSA","n":..}`.
fn rsa_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    base64url(&sha256(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_kid_is_the_rfc_7638_thumbprint() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037 Appendix A.3: the thumbprint of its example key.
        assert_eq!(
            ed25519_thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
