//! Offline validation: the signature and claims are checked here, against Doorward's JWK
//! Set kept in memory.
//!
//! **Offline validation cannot see revocations.** A token revoked at Doorward (sign-out,
//! `/oauth/revoke`, refresh-token reuse, a deleted application) keeps working here until
//! its `exp` (2 hours by default). Use the gRPC mode where that matters.
//!
//! The rules (RFC 9068 §4, RFC 8725):
//! - only `alg: EdDSA` and `typ: at+jwt` are accepted; `crit` is refused;
//! - the key is looked up by `kid` in Doorward's JWK Set only, never from the token's own
//!   `jku`, `x5u`, `jwk` or `x5c` headers, and only Ed25519 keys of that set are used (the
//!   RSA key that signs id_tokens is ignored);
//! - `iss` must equal the issuer exactly, `aud` must contain the audience, `exp` is
//!   required and checked with at most 60 s of leeway;
//! - an unknown `kid` refetches the set, at most once every 30 s; the set is also refreshed
//!   periodically, so rotated keys arrive and retired ones leave.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::Principal;
use crate::bearer::Refusal;

/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECONDS: u64 = 60;
/// An unknown `kid` refetches the JWK Set at most this often.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Before the first successful fetch, requests retry at most this often.
const MIN_RETRY_BEFORE_FIRST_FETCH: Duration = Duration::from_secs(2);
/// A JWK Set larger than this is refused.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The claims this server reads; `iss`, `aud` and `exp` are checked by `jsonwebtoken`.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    scope: String,
    exp: i64,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    loaded: bool,
}

/// Verifies access tokens against the JWK Set.
pub struct JwksValidator {
    http: reqwest::Client,
    jwks_url: String,
    validation: Validation,
    required_scopes: Vec<String>,
    cache: RwLock<KeyCache>,
    /// When a request last triggered a fetch; also makes those fetches single-flight.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksValidator {
    /// A validator for tokens of `issuer` meant for `audience`; no fetch is made yet.
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_url: String,
        required_scopes: Vec<String>,
    ) -> anyhow::Result<Self> {
        Self::with_root_ca(issuer, audience, jwks_url, required_scopes, None)
    }

    /// As [`JwksValidator::new`], and an https `jwks_url` is also trusted when its
    /// certificate comes from the CA in `ca_file` (PEM, read now). A CA file with a
    /// non-https URL is an error: it would suggest a protection the fetch does not have.
    pub fn with_root_ca(
        issuer: &str,
        audience: &str,
        jwks_url: String,
        required_scopes: Vec<String>,
        ca_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            // Fetches are rare; no pooled connection outlives the runtime that opened it.
            .pool_max_idle_per_host(0)
            // A redirect could lead anywhere; the configured URL is the only source of keys.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca_file) = ca_file {
            if !jwks_url.to_ascii_lowercase().starts_with("https://") {
                anyhow::bail!(
                    "--jwks-ca-file (RESOURCE_SERVER_JWKS_CA_FILE) is set but the JWK Set URL \
                     {jwks_url:?} is not https"
                );
            }
            for certificate in read_root_certificates(ca_file)? {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build()?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(Self {
            http,
            jwks_url,
            validation,
            required_scopes,
            cache: RwLock::new(KeyCache::default()),
            last_refetch: tokio::sync::Mutex::new(None),
        })
    }

    /// Fetches the JWK Set and replaces the keys in memory (keys that left the set leave
    /// the cache). On failure the keys in memory stay as they were.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let response = self.http.get(&self.jwks_url).send().await?;
        if !response.status().is_success() {
            anyhow::bail!("the JWK Set answered {}", response.status());
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            anyhow::bail!("the JWK Set is larger than {MAX_JWKS_BYTES} bytes");
        }
        let body = response.bytes().await?;
        if body.len() > MAX_JWKS_BYTES {
            anyhow::bail!("the JWK Set is larger than {MAX_JWKS_BYTES} bytes");
        }
        let keys = parse_jwks(&body)?;
        let count = keys.len();
        if count == 0 {
            tracing::warn!("the JWK Set holds no Ed25519 signing key");
        }
        match self.cache.write() {
            Ok(mut cache) => {
                cache.keys = keys;
                cache.loaded = true;
            }
            Err(poisoned) => {
                let mut cache = poisoned.into_inner();
                cache.keys = keys;
                cache.loaded = true;
            }
        }
        Ok(count)
    }

    /// Refreshes the JWK Set every `interval` until the validator is dropped.
    pub fn spawn_periodic_refresh(self: &Arc<Self>, interval: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(validator) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = validator.refresh().await {
                    tracing::warn!(error = %e, "could not refresh the JWK Set; keeping the keys in memory");
                }
            }
        });
    }

    fn key(&self, kid: &str) -> (Option<DecodingKey>, bool) {
        let cache = match self.cache.read() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        (cache.keys.get(kid).cloned(), cache.loaded)
    }

    /// The key for `kid`, refetching the set once if it is unknown (rate limited).
    async fn key_refetching(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        if let (Some(key), _) = self.key(kid) {
            return Ok(key);
        }
        let mut last = self.last_refetch.lock().await;
        // Another request may have fetched while this one waited.
        let (key, loaded) = self.key(kid);
        if let Some(key) = key {
            return Ok(key);
        }
        let floor = if loaded {
            MIN_REFETCH_INTERVAL
        } else {
            MIN_RETRY_BEFORE_FIRST_FETCH
        };
        if last.is_none_or(|at| at.elapsed() >= floor) {
            *last = Some(Instant::now());
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not fetch the JWK Set");
            }
        }
        drop(last);
        match self.key(kid) {
            (Some(key), _) => Ok(key),
            // No key set ever arrived: this server cannot judge any token.
            (None, false) => Err(Refusal::Unavailable),
            (None, true) => {
                tracing::debug!("access token signed by a key not in the JWK Set");
                Err(Refusal::InvalidToken)
            }
        }
    }

    /// Verifies `token` and checks the required scopes.
    pub async fn validate(&self, token: &str) -> Result<Principal, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refusal::InvalidToken);
        }
        if !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(Refusal::InvalidToken);
        }
        // No extension this server understands; RFC 7515 §4.1.11 says refuse.
        if header.crit.is_some() {
            return Err(Refusal::InvalidToken);
        }
        // header.jku, x5u, jwk and x5c are deliberately never read.
        let kid = header.kid.ok_or(Refusal::InvalidToken)?;
        let key = self.key_refetching(&kid).await?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            tracing::debug!(reason = ?e.kind(), "access token refused");
            Refusal::InvalidToken
        })?;
        let claims = data.claims;
        let scopes: Vec<String> = claims.scope.split_whitespace().map(str::to_owned).collect();
        if !self
            .required_scopes
            .iter()
            .all(|required| scopes.contains(required))
        {
            return Err(Refusal::InsufficientScope(self.required_scopes.join(" ")));
        }
        Ok(Principal {
            sub: claims.sub,
            client_id: claims.client_id,
            scopes,
            expires_at: claims.exp,
        })
    }
}

/// The certificates of the PEM file `ca_file`; one that holds none is an error, since every
/// fetch would then fail with nothing at start to say why.
fn read_root_certificates(ca_file: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("could not read --jwks-ca-file {}", ca_file.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--jwks-ca-file {} is not PEM", ca_file.display()))?;
    if certificates.is_empty() {
        anyhow::bail!(
            "--jwks-ca-file {} holds no PEM certificate",
            ca_file.display()
        );
    }
    Ok(certificates)
}

/// RFC 9068 §4: `at+jwt`, or its full media type; compared without case (RFC 7515 §4.1.9).
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// The Ed25519 signing keys of a JWK Set, by `kid`. Any other key (the RSA key of
/// id_tokens, keys for encryption, kinds this library does not know) is skipped.
fn parse_jwks(body: &[u8]) -> anyhow::Result<HashMap<String, DecodingKey>> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(body)?;
    let mut keys = HashMap::new();
    for raw in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            continue;
        };
        if params.curve != EllipticCurve::Ed25519 {
            continue;
        }
        if jwk
            .common
            .key_algorithm
            .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
        {
            continue;
        }
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tls::{TestPki, keys_over_https};

    fn validator_of(url: &str, ca_file: Option<&Path>) -> anyhow::Result<JwksValidator> {
        JwksValidator::with_root_ca(
            "https://issuer.example",
            "https://issuer.example",
            url.to_owned(),
            vec![],
            ca_file,
        )
    }

    #[tokio::test]
    async fn an_https_jwk_set_is_fetched_with_the_configured_ca_only() {
        let pki = TestPki::new();
        let url = format!(
            "https://{}/oauth/discovery/keys",
            keys_over_https(&pki).await
        );
        let trusting = validator_of(&url, Some(&pki.path("ca.pem"))).unwrap();
        assert_eq!(trusting.refresh().await.unwrap(), 1);

        // No built-in roots: without the CA file, and with another CA, the fetch fails.
        assert!(validator_of(&url, None).unwrap().refresh().await.is_err());
        let other = TestPki::new();
        let distrusting = validator_of(&url, Some(&other.path("ca.pem"))).unwrap();
        assert!(distrusting.refresh().await.is_err());
    }

    #[test]
    fn a_jwks_ca_file_that_cannot_apply_is_refused() {
        let pki = TestPki::new();
        let message = |result: anyhow::Result<JwksValidator>| match result {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        };
        let plaintext = message(validator_of(
            "http://127.0.0.1:9/oauth/discovery/keys",
            Some(&pki.path("ca.pem")),
        ));
        assert!(
            plaintext.contains("RESOURCE_SERVER_JWKS_CA_FILE"),
            "{plaintext}"
        );
        let https = "https://127.0.0.1:9/oauth/discovery/keys";
        let missing = message(validator_of(https, Some(&pki.path("nowhere.pem"))));
        assert!(missing.contains("nowhere.pem"), "{missing}");
        let not_a_ca = message(validator_of(https, Some(&pki.path("server.ext"))));
        assert!(not_a_ca.contains("server.ext"), "{not_a_ca}");
    }

    #[test]
    fn only_ed25519_signing_keys_are_kept() {
        let body = br#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed","use":"sig","alg":"EdDSA"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"enc","use":"enc","alg":"EdDSA"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"sig"},
            {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","kid":"rsa","use":"sig","alg":"RS256"},
            {"kty":"XYZ","kid":"future"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(br#"{"keys":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn access_token_types() {
        assert!(is_access_token_type("at+jwt"));
        assert!(is_access_token_type("AT+JWT"));
        assert!(is_access_token_type("application/at+jwt"));
        assert!(!is_access_token_type("JWT"));
        assert!(!is_access_token_type("jwt"));
        assert!(!is_access_token_type(""));
    }

    #[tokio::test]
    async fn tokens_of_other_algorithms_or_types_are_refused_before_any_fetch() {
        let validator = JwksValidator::new(
            "https://issuer.example",
            "https://issuer.example",
            // Nothing listens here; a fetch would turn the answer into Unavailable.
            "http://127.0.0.1:9/oauth/discovery/keys".into(),
            vec!["read_user".into()],
        )
        .unwrap();
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let token = |header: &str| format!("{}.{}.c2ln", b64(header), b64("{}"));
        for header in [
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k"}"#,
            r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#,
            r#"{"alg":"EdDSA","typ":"JWT","kid":"k"}"#,
            r#"{"alg":"EdDSA","kid":"k"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k","crit":["exp"]}"#,
        ] {
            assert_eq!(
                validator.validate(&token(header)).await.unwrap_err(),
                Refusal::InvalidToken,
                "{header}"
            );
        }
        assert_eq!(
            validator.validate("garbage").await.unwrap_err(),
            Refusal::InvalidToken
        );
        // A plausible token whose key cannot be fetched: this server cannot judge it.
        assert_eq!(
            validator
                .validate(&token(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#))
                .await
                .unwrap_err(),
            Refusal::Unavailable
        );
    }
}
