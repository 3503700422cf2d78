//! Verification of access tokens: only what we sign passes, by rules that never come from
//! the token (SEC-JW-01 to 05).

use jsonwebtoken::{Algorithm, Validation};

use super::claims::{ACCESS_TOKEN_TYP, AccessClaims};
use super::ring::KeyRing;

/// Longest bearer token looked at before any decoding (SEC-DS-04).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew allowed on `nbf` (SEC-JW-05: at most 60 s).
pub const NBF_LEEWAY_SECONDS: i64 = 60;

/// Why a presented JWT was refused before any database lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRejection {
    /// Malformed, wrong type, unknown key, bad signature, wrong issuer or audience.
    Invalid,
    /// Signed by us, but past `exp`.
    Expired,
}

impl KeyRing {
    /// Checks signature, type, issuer and audience of an access token, and its expiry
    /// against `now` (the injectable clock, not the library's).
    pub fn verify_access_token(&self, token: &str, now: i64) -> Result<AccessClaims, JwtRejection> {
        let claims = self.verify_access_token_signature(token, now)?;
        if claims.exp <= now {
            return Err(JwtRejection::Expired);
        }
        Ok(claims)
    }

    /// Checks everything but expiry: for revocation, where an expired token may still be
    /// named, and for introspection, which reports it inactive. A token whose `nbf` is more
    /// than a minute ahead of `now` is invalid.
    ///
    /// Only `EdDSA` with one of our Ed25519 keys, found by exact `kid` match in memory,
    /// and `typ: at+jwt` pass (SEC-JW-01/02/04); headers that carry or point to keys, or
    /// that the verifier would have to understand (`crit`), are refused (SEC-JW-03).
    pub fn verify_access_token_signature(
        &self,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, JwtRejection> {
        if token.len() > MAX_TOKEN_LEN || token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(JwtRejection::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRejection::Invalid)?;
        if header.alg != Algorithm::EdDSA
            || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP)
            || header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || has_crit_header(token)
        {
            return Err(JwtRejection::Invalid);
        }
        let keys = self.current();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.verifying.get(kid))
            .ok_or(JwtRejection::Invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[self.issuer()]);
        validation.set_audience(&[self.audience()]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map_err(|_| JwtRejection::Invalid)?;
        if data
            .claims
            .nbf
            .is_some_and(|nbf| nbf > now + NBF_LEEWAY_SECONDS)
        {
            return Err(JwtRejection::Invalid);
        }
        Ok(data.claims)
    }
}

/// Whether the JWS header has a `crit` member (RFC 7515 §4.1.11: we understand no
/// extension, so any is refused). `jsonwebtoken`'s header type does not keep it.
fn has_crit_header(token: &str) -> bool {
    use base64::Engine;
    let Some(encoded) = token.split('.').next() else {
        return true;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
        return true;
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
        Ok(header) => header.contains_key("crit"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::claims::tests::claims;
    use crate::keys::ring::tests::ring;
    use doorward_shared::secret::base64url;

    #[test]
    fn signed_tokens_verify_until_they_expire() {
        let ring = ring();
        let token = ring.sign_access_token(&claims(2_000)).unwrap();
        assert_eq!(
            ring.verify_access_token(&token, 1_999).unwrap(),
            claims(2_000)
        );
        assert_eq!(
            ring.verify_access_token(&token, 2_000),
            Err(JwtRejection::Expired)
        );
    }

    #[test]
    fn tampered_and_foreign_tokens_are_invalid() {
        let ring = ring();
        let token = ring.sign_access_token(&claims(2_000)).unwrap();
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            ring.verify_access_token(&tampered, 0),
            Err(JwtRejection::Invalid)
        );
        let other = super::tests::ring()
            .sign_access_token(&claims(2_000))
            .unwrap();
        assert_eq!(
            ring.verify_access_token(&other, 0),
            Err(JwtRejection::Invalid)
        );
        assert_eq!(
            ring.verify_access_token("garbage", 0),
            Err(JwtRejection::Invalid)
        );
    }

    #[test]
    fn a_token_with_our_kid_signed_by_another_key_is_invalid() {
        use ed25519_dalek::Signer;
        let ours = ring();
        let theirs = ring();
        let genuine = ours.sign_access_token(&claims(2_000)).unwrap();
        let signing_input = genuine.rsplit_once('.').unwrap().0;
        let forged_signature = theirs.current().access.key.sign(signing_input.as_bytes());
        let forged = format!(
            "{signing_input}.{}",
            base64url(&forged_signature.to_bytes())
        );
        assert_eq!(
            ours.verify_access_token(&genuine, 0).map(|c| c.jti),
            Ok("j".into())
        );
        assert_eq!(
            ours.verify_access_token(&forged, 0),
            Err(JwtRejection::Invalid)
        );
    }
}
