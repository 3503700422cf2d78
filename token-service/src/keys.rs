//! Signing keys: generated on first start and stored in the database, parsed once and
//! kept in memory, so that no request parses a key (DESIGN.md "Performance rules").
//!
//! Access tokens are RFC 9068 JWTs signed with Ed25519 (`EdDSA`); the `kid` of every key is
//! its RFC 7638 JWK thumbprint.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::models::SigningKeyRow;
use crate::db::{self, DbConnection};
use doorward_shared::secret::{base64url, random_bytes, sha256};

/// What a key signs.
pub const PURPOSE_ACCESS_TOKEN: &str = "access_token";
/// The JWS `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Longest bearer token looked at before any decoding (SEC-DS-04).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

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
}

/// Why a presented JWT was refused before any database lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRejection {
    /// Malformed, wrong type, unknown key, bad signature, wrong issuer or audience.
    Invalid,
    /// Signed by us, but past `exp`.
    Expired,
}

struct LoadedKeys {
    signing_kid: String,
    /// The parsed key and the JWS header (with its `kid`) already encoded: signing a token
    /// is one JSON encoding of the claims and one Ed25519 signature.
    signing_key: ed25519_dalek::SigningKey,
    encoded_header: String,
    verifying: HashMap<String, DecodingKey>,
    jwks_json: String,
}

/// The keys in memory; swapped whole when keys change.
pub struct KeyRing {
    keys: RwLock<Arc<LoadedKeys>>,
    issuer: String,
    audience: String,
    /// How long a retired key stays published and trusted: until every token it signed
    /// has expired.
    published_for: i64,
}

/// Errors loading or creating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    /// A stored key could not be read.
    #[error("stored key {kid} is unreadable: {reason}")]
    Corrupt {
        /// Key id.
        kid: String,
        /// Why.
        reason: String,
    },
}

impl KeyRing {
    /// Loads the keys, generating the first one if the database has none.
    pub fn load_or_create(
        conn: &mut DbConnection,
        issuer: &str,
        audience: &str,
        published_for: i64,
        now: i64,
    ) -> Result<Self, KeyError> {
        // Replicas starting together on an empty database must agree on one first key: the
        // check and the insert run in one write transaction, serialised by the table lock.
        let rows = db::write_transaction(conn, |conn| -> Result<_, KeyError> {
            db::signing_keys::lock_for_first_key(conn)?;
            let rows = db::signing_keys::list(conn)?;
            if rows
                .iter()
                .any(|r| r.purpose == PURPOSE_ACCESS_TOKEN && r.retired_at.is_none())
            {
                return Ok(rows);
            }
            let row = generate_ed25519(now)?;
            db::signing_keys::insert(conn, &row)?;
            tracing::info!(kid = %row.kid, "generated the first access-token signing key");
            Ok(db::signing_keys::list(conn)?)
        })?;
        let keys = build(&rows, now, published_for)?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            published_for,
        })
    }

    /// Reads the keys again, so that a `keys rotate` run anywhere reaches this process
    /// (called periodically by the token service). Returns whether the signing key changed.
    pub fn reload(&self, conn: &mut DbConnection, now: i64) -> Result<bool, KeyError> {
        let rows = db::signing_keys::list(conn)?;
        let loaded = build(&rows, now, self.published_for)?;
        let changed = loaded.signing_kid != self.current().signing_kid;
        match self.keys.write() {
            Ok(mut keys) => *keys = Arc::new(loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
        }
        Ok(changed)
    }

    fn current(&self) -> Arc<LoadedKeys> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The issuer written into tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience written into access tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs access-token claims with the current key: a JWS compact serialization
    /// (RFC 7515 §7.1), made here rather than by `jsonwebtoken::encode`, which would parse
    /// the PKCS#8 key (and derive its public half) on every call. Tokens are verified with
    /// `jsonwebtoken`, here and in the tests.
    pub fn sign_access_token(&self, claims: &AccessClaims) -> Result<String, serde_json::Error> {
        use ed25519_dalek::Signer;
        let keys = self.current();
        let mut token = String::with_capacity(512);
        token.push_str(&keys.encoded_header);
        token.push('.');
        token.push_str(&base64url(&serde_json::to_vec(claims)?));
        let signature = keys.signing_key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&base64url(&signature.to_bytes()));
        Ok(token)
    }

    /// The `kid` that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.current().signing_kid.clone()
    }

    /// Checks signature, type, issuer and audience of an access token, and its expiry
    /// against `now` (the injectable clock, not the library's).
    pub fn verify_access_token(&self, token: &str, now: i64) -> Result<AccessClaims, JwtRejection> {
        let claims = self.verify_access_token_signature(token)?;
        if claims.exp <= now {
            return Err(JwtRejection::Expired);
        }
        Ok(claims)
    }

    /// Checks everything but expiry: for revocation, where an expired token may still be
    /// named, and for introspection, which reports it inactive.
    pub fn verify_access_token_signature(&self, token: &str) -> Result<AccessClaims, JwtRejection> {
        if token.len() > MAX_TOKEN_LEN || token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(JwtRejection::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRejection::Invalid)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
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
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map_err(|_| JwtRejection::Invalid)?;
        Ok(data.claims)
    }

    /// The JWK Set of every published key, as served at `/oauth/discovery/keys`.
    pub fn jwks_json(&self) -> String {
        self.current().jwks_json.clone()
    }
}

fn build(rows: &[SigningKeyRow], now: i64, published_for: i64) -> Result<LoadedKeys, KeyError> {
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    let mut signing: Option<(String, ed25519_dalek::SigningKey)> = None;
    // Rows come newest first: the newest live key signs.
    // A retired key stays published (and trusted) until the tokens it signed have expired.
    let live = |r: &&SigningKeyRow| {
        r.retired_at
            .is_none_or(|retired| now - retired < published_for)
    };
    for row in rows
        .iter()
        .filter(|r| r.purpose == PURPOSE_ACCESS_TOKEN)
        .filter(live)
    {
        let corrupt = |reason: &str| KeyError::Corrupt {
            kid: row.kid.clone(),
            reason: reason.to_owned(),
        };
        let jwk: serde_json::Value =
            serde_json::from_str(&row.public_jwk).map_err(|_| corrupt("public JWK is not JSON"))?;
        let x = jwk
            .get("x")
            .and_then(|x| x.as_str())
            .ok_or_else(|| corrupt("public JWK has no x"))?;
        let decoding = DecodingKey::from_ed_components(x).map_err(|_| corrupt("bad x"))?;
        verifying.insert(row.kid.clone(), decoding);
        jwks.push(jwk);
        if signing.is_none() && row.retired_at.is_none() {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(&row.private_key)
                .map_err(|_| corrupt("private key is not PKCS#8 Ed25519"))?;
            signing = Some((row.kid.clone(), key));
        }
    }
    let (signing_kid, signing_key) = signing.ok_or_else(|| KeyError::Corrupt {
        kid: String::new(),
        reason: "no live access-token signing key".into(),
    })?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(signing_kid.clone());
    let encoded_header =
        base64url(&serde_json::to_vec(&header).map_err(|e| KeyError::Corrupt {
            kid: signing_kid.clone(),
            reason: e.to_string(),
        })?);
    Ok(LoadedKeys {
        signing_kid,
        signing_key,
        encoded_header,
        verifying,
        jwks_json: serde_json::json!({ "keys": jwks }).to_string(),
    })
}

/// `keys rotate`: a new signing key signs from now on; the keys it replaces are retired
/// (published and trusted until their tokens expire). Returns the new key.
pub fn rotate(conn: &mut DbConnection, now: i64) -> Result<SigningKeyRow, KeyError> {
    db::write_transaction(conn, |conn| {
        db::signing_keys::lock_for_first_key(conn)?;
        db::signing_keys::retire_live(conn, PURPOSE_ACCESS_TOKEN, now)?;
        let row = generate_ed25519(now)?;
        db::signing_keys::insert(conn, &row)?;
        tracing::info!(target: "audit", event = "signing_key_rotated", kid = %row.kid, "a new access-token signing key signs from now on");
        Ok(row)
    })
}

/// A new Ed25519 key: PKCS#8 private key, public JWK, and its RFC 7638 thumbprint as `kid`.
pub fn generate_ed25519(now: i64) -> Result<SigningKeyRow, KeyError> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>());
    let der = signing.to_pkcs8_der().map_err(|e| KeyError::Corrupt {
        kid: String::new(),
        reason: e.to_string(),
    })?;
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
    })
}

/// RFC 7638 §3 thumbprint of an OKP key (RFC 8037 §2): SHA-256 over the required members
/// in lexicographic order, without whitespace.
fn ed25519_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    base64url(&sha256(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        let row = generate_ed25519(1_000).expect("key");
        KeyRing {
            keys: RwLock::new(Arc::new(build(&[row], 1_000, 7_500).expect("build"))),
            issuer: "http://issuer".into(),
            audience: "http://issuer".into(),
            published_for: 7_500,
        }
    }

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: "1".into(),
            aud: "http://issuer".into(),
            exp,
            iat: 0,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "api".into(),
        }
    }

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
        let forged_signature = theirs.current().signing_key.sign(signing_input.as_bytes());
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
    fn retired_keys_stay_published_until_their_tokens_expire() {
        let old = SigningKeyRow {
            retired_at: Some(2_000),
            ..generate_ed25519(1_000).unwrap()
        };
        let new = generate_ed25519(2_000).unwrap();
        let rows = [new.clone(), old.clone()];
        let keys = build(&rows, 2_100, 7_500).unwrap();
        assert_eq!(keys.signing_kid, new.kid, "the newest live key signs");
        assert!(
            keys.verifying.contains_key(&old.kid),
            "the retired key still verifies"
        );
        assert!(keys.jwks_json.contains(&old.kid));
        let later = build(&rows, 2_000 + 7_500, 7_500).unwrap();
        assert!(!later.verifying.contains_key(&old.kid) && !later.jwks_json.contains(&old.kid));
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
