//! Signing keys: generated on first start and stored in the database, parsed once and
//! kept in memory, so that no request parses a key (one of the invariants in
//! ARCHITECTURE.md: hot paths do no slow work).
//!
//! Access tokens are RFC 9068 JWTs signed with Ed25519 (`EdDSA`); id_tokens are signed
//! with RSA (`RS256`, OpenID Connect's mandatory algorithm) by keys of their own. The `kid`
//! of every key is its RFC 7638 JWK thumbprint. Each purpose has its own rotation: a new
//! key is published `publish_ahead` seconds before it signs (so that every replica and
//! every cached key set knows it first, SEC-JW-08), the key it replaces stays published
//! until the tokens it signed have expired, and a revoked (compromised) key leaves at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};

use crate::db::models::SigningKeyRow;
use crate::db::{self, DbConnection};
use doorward_shared::secret::{base64url, random_bytes, sha256};

/// Keys that sign access tokens (Ed25519).
pub const PURPOSE_ACCESS_TOKEN: &str = "access_token";
/// Keys that sign id_tokens (RSA).
pub const PURPOSE_ID_TOKEN: &str = "id_token";
/// Every purpose, in the order `keys rotate` handles them.
pub const PURPOSES: [&str; 2] = [PURPOSE_ACCESS_TOKEN, PURPOSE_ID_TOKEN];
/// The JWS `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Longest bearer token looked at before any decoding (SEC-DS-04).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// RSA modulus size of id_token keys (RFC 7518 §3.3: at least 2048).
pub const RSA_BITS: usize = 2048;
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

/// Clock skew allowed on `nbf` (SEC-JW-05: at most 60 s).
pub const NBF_LEEWAY_SECONDS: i64 = 60;

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

/// Why a presented JWT was refused before any database lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRejection {
    /// Malformed, wrong type, unknown key, bad signature, wrong issuer or audience.
    Invalid,
    /// Signed by us, but past `exp`.
    Expired,
}

/// A parsed private key with its JWS header already encoded: signing a token is one JSON
/// encoding of the claims and one signature.
struct Signer<K> {
    kid: String,
    key: K,
    encoded_header: String,
}

type RsaSigningKey = rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>;

struct LoadedKeys {
    access: Signer<ed25519_dalek::SigningKey>,
    id: Signer<RsaSigningKey>,
    /// Ed25519 keys only: nothing but an `EdDSA` access token ever verifies (SEC-JW-01).
    verifying: HashMap<String, DecodingKey>,
    jwks_json: String,
}

/// Where a key stands, as `keys list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens of its purpose.
    Signing,
    /// Published, and signs once its publication lead has passed.
    Published,
    /// No longer signs; published until the tokens it signed have expired.
    Retired,
    /// Retired long enough that no token it signed is still valid: not published.
    Expired,
    /// Marked compromised: not published, its tokens fail.
    Revoked,
}

impl KeyState {
    /// The name `keys list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Published => "published",
            Self::Retired => "retired",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// How long keys are published around their signing life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    /// How long a retired key stays published and trusted: until every token it signed has
    /// expired.
    pub published_for: i64,
    /// How long a new key is published before it signs.
    pub publish_ahead: i64,
}

impl KeyTimes {
    /// From the configuration: a retired key stays trusted until the last token it signed
    /// has expired (plus five minutes of clock skew and caching).
    pub fn from_config(config: &doorward_shared::config::Config) -> Self {
        Self {
            published_for: config
                .tokens
                .access_token_ttl_seconds
                .max(ID_TOKEN_TTL_SECONDS)
                + 300,
            publish_ahead: config.tokens.key_publish_ahead_seconds.max(0),
        }
    }
}

/// The state of every key of `rows` at `now`, in the order of `rows`.
pub fn key_states(rows: &[SigningKeyRow], now: i64, times: KeyTimes) -> Vec<KeyState> {
    let signers: Vec<Option<&str>> = PURPOSES
        .iter()
        .map(|purpose| signer(rows, purpose, now, times).map(|r| r.kid.as_str()))
        .collect();
    rows.iter()
        .map(|row| {
            if row.revoked_at.is_some() {
                KeyState::Revoked
            } else if signers.contains(&Some(row.kid.as_str())) {
                KeyState::Signing
            } else if !published(row, now, times) {
                KeyState::Expired
            } else if row.retired_at.is_some_and(|t| t <= now) {
                KeyState::Retired
            } else {
                KeyState::Published
            }
        })
        .collect()
}

fn published(row: &SigningKeyRow, now: i64, times: KeyTimes) -> bool {
    row.revoked_at.is_none()
        && row
            .retired_at
            .is_none_or(|retired| now - retired < times.published_for)
}

/// The key that signs tokens of `purpose` at `now`: the newest one that has been published
/// for `publish_ahead` and is not retired; failing that, the oldest one that is not retired
/// (the first key ever, the key being replaced, or the successor of a revoked key).
/// `rows` come live-first, newest first.
fn signer<'a>(
    rows: &'a [SigningKeyRow],
    purpose: &str,
    now: i64,
    times: KeyTimes,
) -> Option<&'a SigningKeyRow> {
    let may_sign = rows.iter().filter(|r| {
        r.purpose == purpose && r.revoked_at.is_none() && r.retired_at.is_none_or(|t| t > now)
    });
    may_sign
        .clone()
        .find(|r| r.created_at + times.publish_ahead <= now)
        // On a tie, the key being replaced (already given its retirement) is the older one.
        .or_else(|| may_sign.min_by_key(|r| (r.created_at, r.retired_at.is_none())))
}

/// The keys in memory; swapped whole when keys change.
pub struct KeyRing {
    keys: RwLock<Arc<LoadedKeys>>,
    issuer: String,
    audience: String,
    times: KeyTimes,
    /// Counts changes of the published key set: caches of verified tokens are valid for
    /// one generation.
    generation: AtomicU64,
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
    /// Key generation failed.
    #[error("could not generate a key: {0}")]
    Generate(String),
    /// `keys revoke` named no such key.
    #[error("no signing key has the kid {0}")]
    UnknownKid(String),
}

impl KeyRing {
    /// Loads the keys, generating the first one of each purpose if the database has none.
    pub fn load_or_create(
        conn: &mut DbConnection,
        issuer: &str,
        audience: &str,
        times: KeyTimes,
        now: i64,
    ) -> Result<Self, KeyError> {
        // Replicas starting together on an empty database must agree on one first key: the
        // check and the insert run in one write transaction, serialised by the table lock.
        let rows = db::write_transaction(conn, |conn| -> Result<_, KeyError> {
            db::signing_keys::lock_for_first_key(conn)?;
            let rows = db::signing_keys::list(conn)?;
            let mut generated = false;
            for purpose in PURPOSES {
                if signer(&rows, purpose, now, times).is_none() {
                    let row = generate(purpose, now)?;
                    db::signing_keys::insert(conn, &row)?;
                    tracing::info!(kid = %row.kid, purpose, "generated a first signing key");
                    generated = true;
                }
            }
            Ok(if generated {
                db::signing_keys::list(conn)?
            } else {
                rows
            })
        })?;
        let keys = build(&rows, now, times)?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            times,
            generation: AtomicU64::new(0),
        })
    }

    /// Reads the keys again, so that a `keys rotate` run anywhere reaches this process
    /// (called periodically by the token service). Returns whether a signing key changed.
    pub fn reload(&self, conn: &mut DbConnection, now: i64) -> Result<bool, KeyError> {
        let rows = db::signing_keys::list(conn)?;
        let loaded = build(&rows, now, self.times)?;
        let current = self.current();
        let changed = loaded.access.kid != current.access.kid || loaded.id.kid != current.id.kid;
        let republished = loaded.jwks_json != current.jwks_json;
        match self.keys.write() {
            Ok(mut keys) => *keys = Arc::new(loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
        }
        if republished {
            self.generation.fetch_add(1, Ordering::Release);
        }
        Ok(changed)
    }

    /// The generation of the published key set (see `validation`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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

    /// How long keys are published around their signing life.
    pub fn times(&self) -> KeyTimes {
        self.times
    }

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

    /// The `kid` that signs new access tokens.
    pub fn signing_kid(&self) -> String {
        self.current().access.kid.clone()
    }

    /// The `kid` that signs new id_tokens.
    pub fn id_token_kid(&self) -> String {
        self.current().id.kid.clone()
    }

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
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
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

    /// The JWK Set of every published key, as served at `/oauth/discovery/keys`.
    pub fn jwks_json(&self) -> String {
        self.current().jwks_json.clone()
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

fn build(rows: &[SigningKeyRow], now: i64, times: KeyTimes) -> Result<LoadedKeys, KeyError> {
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    for row in rows.iter().filter(|r| published(r, now, times)) {
        let corrupt = |reason: &str| KeyError::Corrupt {
            kid: row.kid.clone(),
            reason: reason.to_owned(),
        };
        let jwk: serde_json::Value =
            serde_json::from_str(&row.public_jwk).map_err(|_| corrupt("public JWK is not JSON"))?;
        if row.purpose == PURPOSE_ACCESS_TOKEN {
            let x = jwk
                .get("x")
                .and_then(|x| x.as_str())
                .ok_or_else(|| corrupt("public JWK has no x"))?;
            let decoding = DecodingKey::from_ed_components(x).map_err(|_| corrupt("bad x"))?;
            verifying.insert(row.kid.clone(), decoding);
        }
        jwks.push(jwk);
    }
    let missing = |purpose: &str| KeyError::Corrupt {
        kid: String::new(),
        reason: format!("no live {purpose} signing key"),
    };
    let access_row =
        signer(rows, PURPOSE_ACCESS_TOKEN, now, times).ok_or_else(|| missing("access-token"))?;
    let id_row = signer(rows, PURPOSE_ID_TOKEN, now, times).ok_or_else(|| missing("id_token"))?;
    let corrupt = |row: &SigningKeyRow, reason: &str| KeyError::Corrupt {
        kid: row.kid.clone(),
        reason: reason.to_owned(),
    };
    let access_key = ed25519_dalek::SigningKey::from_pkcs8_der(&access_row.private_key)
        .map_err(|_| corrupt(access_row, "private key is not PKCS#8 Ed25519"))?;
    let rsa_key = rsa::PrivateKey::from_pkcs1_der(&id_row.private_key)
        .map_err(|_| corrupt(id_row, "private key is not PKCS#1 RSA"))?;
    Ok(LoadedKeys {
        access: Signer {
            kid: access_row.kid.clone(),
            key: access_key,
            encoded_header: encoded_header(Algorithm::EdDSA, ACCESS_TOKEN_TYP, &access_row.kid)?,
        },
        id: Signer {
            kid: id_row.kid.clone(),
            key: RsaSigningKey::new(rsa_key),
            encoded_header: encoded_header(Algorithm::RS256, "JWT", &id_row.kid)?,
        },
        verifying,
        jwks_json: serde_json::json!({ "keys": jwks }).to_string(),
    })
}

fn encoded_header(alg: Algorithm, typ: &str, kid: &str) -> Result<String, KeyError> {
    let mut header = Header::new(alg);
    header.typ = Some(typ.to_owned());
    header.kid = Some(kid.to_owned());
    let json = serde_json::to_vec(&header).map_err(|e| KeyError::Corrupt {
        kid: kid.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(base64url(&json))
}

/// `keys rotate`: for each purpose, a new key is published now and signs once
/// `publish_ahead` has passed; the key it replaces signs until then and stays published
/// until its tokens have expired. Returns the new keys.
pub fn rotate(
    conn: &mut DbConnection,
    purposes: &[&str],
    publish_ahead: i64,
    now: i64,
) -> Result<Vec<SigningKeyRow>, KeyError> {
    // Generated before the transaction: RSA key generation takes a while, and the write
    // lock should not wait for it.
    let rows = purposes
        .iter()
        .map(|purpose| generate(purpose, now))
        .collect::<Result<Vec<_>, _>>()?;
    db::write_transaction(conn, |conn| {
        db::signing_keys::lock_for_first_key(conn)?;
        for row in &rows {
            db::signing_keys::retire_live(conn, &row.purpose, now + publish_ahead)?;
            db::signing_keys::insert(conn, row)?;
            tracing::info!(target: "audit", event = "signing_key_rotated", kid = %row.kid, purpose = %row.purpose, signs_from = now + publish_ahead, "a new signing key is published");
        }
        Ok(rows)
    })
}

/// `keys revoke KID`: a compromised key leaves the key set at once and every token it
/// signed fails (SEC-JW-08). If it was signing, a new key of its purpose takes over
/// immediately. Returns the replacement, if one was made.
pub fn revoke(
    conn: &mut DbConnection,
    kid: &str,
    now: i64,
) -> Result<Option<SigningKeyRow>, KeyError> {
    let purpose = db::signing_keys::list(conn)?
        .into_iter()
        .find(|r| r.kid == kid)
        .map(|r| r.purpose)
        .ok_or_else(|| KeyError::UnknownKid(kid.to_owned()))?;
    let replacement = generate(&purpose, now)?;
    db::write_transaction(conn, |conn| {
        db::signing_keys::lock_for_first_key(conn)?;
        db::signing_keys::revoke(conn, kid, now)?;
        tracing::warn!(target: "audit", event = "signing_key_revoked", kid, purpose = %purpose, "a signing key was revoked; its tokens fail from now on");
        let rows = db::signing_keys::list(conn)?;
        let at_once = KeyTimes {
            published_for: 0,
            publish_ahead: 0,
        };
        if signer(&rows, &purpose, now, at_once).is_some() {
            return Ok(None);
        }
        db::signing_keys::insert(conn, &replacement)?;
        Ok(Some(replacement))
    })
}

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

    const TIMES: KeyTimes = KeyTimes {
        published_for: 7_500,
        publish_ahead: 0,
    };

    fn rsa_row() -> SigningKeyRow {
        static RSA: std::sync::OnceLock<SigningKeyRow> = std::sync::OnceLock::new();
        RSA.get_or_init(|| generate_rsa(1_000).expect("rsa key"))
            .clone()
    }

    fn ring() -> KeyRing {
        let rows = [generate_ed25519(1_000).expect("key"), rsa_row()];
        KeyRing {
            keys: RwLock::new(Arc::new(build(&rows, 1_000, TIMES).expect("build"))),
            issuer: "http://issuer".into(),
            audience: "http://issuer".into(),
            times: TIMES,
            generation: AtomicU64::new(0),
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
            nbf: None,
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
        let rows = [new.clone(), rsa_row(), old.clone()];
        let keys = build(&rows, 2_100, TIMES).unwrap();
        assert_eq!(keys.access.kid, new.kid, "the newest live key signs");
        assert!(
            keys.verifying.contains_key(&old.kid),
            "the retired key still verifies"
        );
        assert!(keys.jwks_json.contains(&old.kid));
        let later = build(&rows, 2_000 + 7_500, TIMES).unwrap();
        assert!(!later.verifying.contains_key(&old.kid) && !later.jwks_json.contains(&old.kid));
    }

    #[test]
    fn a_new_key_is_published_before_it_signs() {
        let times = KeyTimes {
            published_for: 7_500,
            publish_ahead: 60,
        };
        // `keys rotate` at 2_000: the old key signs until 2_060, the new one from then on.
        let old = SigningKeyRow {
            retired_at: Some(2_060),
            ..generate_ed25519(1_000).unwrap()
        };
        let new = generate_ed25519(2_000).unwrap();
        let rows = [new.clone(), rsa_row(), old.clone()];
        let during = build(&rows, 2_030, times).unwrap();
        assert_eq!(during.access.kid, old.kid, "the old key still signs");
        assert!(
            during.jwks_json.contains(&new.kid),
            "the new key is published"
        );
        assert!(during.verifying.contains_key(&new.kid));
        let after = build(&rows, 2_060, times).unwrap();
        assert_eq!(after.access.kid, new.kid, "the new key signs");
        assert!(
            after.jwks_json.contains(&old.kid),
            "the old key stays published"
        );
        let states = key_states(&rows, 2_030, times);
        assert_eq!(
            states,
            [KeyState::Published, KeyState::Signing, KeyState::Signing]
        );
        let states = key_states(&rows, 2_060 + 7_500, times);
        assert_eq!(
            states,
            [KeyState::Signing, KeyState::Signing, KeyState::Expired]
        );
    }

    #[test]
    fn a_rotation_right_after_the_first_start_still_publishes_first() {
        let times = KeyTimes {
            published_for: 7_500,
            publish_ahead: 10,
        };
        // First key and its replacement made in the same second.
        let first = SigningKeyRow {
            retired_at: Some(1_010),
            ..generate_ed25519(1_000).unwrap()
        };
        let next = generate_ed25519(1_000).unwrap();
        let rows = [next.clone(), rsa_row(), first.clone()];
        assert_eq!(build(&rows, 1_005, times).unwrap().access.kid, first.kid);
        assert_eq!(build(&rows, 1_010, times).unwrap().access.kid, next.kid);
    }

    #[test]
    fn a_revoked_key_is_neither_published_nor_trusted() {
        let revoked = SigningKeyRow {
            revoked_at: Some(1_500),
            ..generate_ed25519(1_000).unwrap()
        };
        let live = generate_ed25519(1_500).unwrap();
        let rows = [live.clone(), rsa_row(), revoked.clone()];
        let keys = build(&rows, 1_600, TIMES).unwrap();
        assert!(!keys.jwks_json.contains(&revoked.kid));
        assert!(!keys.verifying.contains_key(&revoked.kid));
        assert_eq!(key_states(&rows, 1_600, TIMES)[2], KeyState::Revoked);
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

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OpenID Connect Core, Appendix A.4 (an RS256 id_token and its access token).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

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
