//! Signing: a token is one JSON encoding of its claims and one signature, under the header
//! that was encoded when its key was loaded.

use rsa::signature::{SignatureEncoding, Signer as _};
use serde::Serialize;

use super::claims::{AccessClaims, IdTokenClaims};
use super::error::KeyError;
use super::ring::KeyRing;
use doorward_shared::secret::base64url;

impl KeyRing {
    /// Signs access-token claims with the current key: a JWS compact serialization
    /// (RFC 7515 §7.1), made here rather than by `jsonwebtoken::encode`, which would parse
    /// the PKCS#8 key (and derive its public half) on every call. Tokens are verified with
    /// `jsonwebtoken`, here and in the tests.
    pub fn sign_access_token(&self, claims: &AccessClaims) -> Result<String, serde_json::Error> {
        use ed25519_dalek::Signer as _;
        let keys = self.current();
        let mut token = signing_input(&keys.access.encoded_header, claims)?;
        let signature = keys.access.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&base64url(&signature.to_bytes()));
        Ok(token)
    }

    /// Signs id_token claims with the current RSA key (`RS256`, RSASSA-PKCS1-v1_5 with
    /// SHA-256, RFC 7518 §3.3).
    pub fn sign_id_token(&self, claims: &IdTokenClaims) -> Result<String, KeyError> {
        let keys = self.current();
        let mut token = signing_input(&keys.id.encoded_header, claims)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let signature = keys
            .id
            .key
            .try_sign(token.as_bytes())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        token.push('.');
        token.push_str(&base64url(&signature.to_bytes()));
        Ok(token)
    }
}

/// `base64url(header) . base64url(claims)`, with room for the signature.
fn signing_input(encoded_header: &str, claims: &impl Serialize) -> serde_json::Result<String> {
    let mut token = String::with_capacity(1024);
    token.push_str(encoded_header);
    token.push('.');
    token.push_str(&base64url(&serde_json::to_vec(claims)?));
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::claims::at_hash;
    use crate::keys::claims::tests::claims;
    use crate::keys::ring::tests::ring;
    use crate::keys::verify::JwtRejection;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[test]
    fn signed_tokens_carry_the_rfc_9068_header() {
        let ring = ring();
        let token = ring.sign_access_token(&claims(2_000)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid, Some(ring.signing_kid()));
    }

    #[test]
    fn id_tokens_are_rs256_and_verify_against_the_published_key() {
        let ring = ring();
        let claims = IdTokenClaims {
            iss: "http://issuer".into(),
            sub: "1".into(),
            aud: "client".into(),
            exp: 2_000,
            iat: 1_880,
            auth_time: Some(1_800),
            nonce: Some("n-ü".into()),
            at_hash: Some(at_hash("token")),
            email: None,
            email_verified: None,
        };
        let token = ring.sign_id_token(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid, Some(ring.id_token_kid()));
        let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == ring.id_token_kid().as_str())
            .unwrap();
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&["client"]);
        let decoded = jsonwebtoken::decode::<IdTokenClaims>(&token, &key, &validation).unwrap();
        assert_eq!(decoded.claims, claims);
        // The RSA key is published, but never verifies an access token (SEC-JW-01).
        assert!(!ring.current().verifying.contains_key(&ring.id_token_kid()));
        assert_eq!(
            ring.verify_access_token_signature(&token, 0),
            Err(JwtRejection::Invalid)
        );
    }
}
