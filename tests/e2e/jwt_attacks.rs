//! Attacks on the access-token JWT (SEC-JW-* in docs/security-model.md): algorithm
//! confusion, `kid` games, embedded and remote keys, id_tokens passed off as access
//! tokens, claims that only the signature vouches for, and what the JWK Set publishes.
//!
//! Every endpoint looks the `jti` up after checking the signature, so a forged token with a
//! made-up `jti` would fail for that reason alone. The forgeries here reuse the claims of a
//! real, live token and change only the one thing under test, and each test first shows
//! that the same forging code with nothing changed is accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use doorward_shared::secret::base64url;
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use token_service::db::models::SigningKeyRow;

both_backends!(
    sec_jw_01_algorithm_is_pinned,
    sec_jw_02_kid_is_a_lookup_key_only,
    sec_jw_03_embedded_and_remote_keys_are_ignored,
    sec_jw_04_an_id_token_is_not_an_access_token,
    sec_jw_05_claims_are_validated_not_just_the_signature,
    sec_jw_07_jwks_publishes_public_material_only,
);

/// A running app, a client allowed `api read_user openid`, and a live access token of
/// jane's with scope `api openid` (so that every bearer endpoint accepts it), taken apart.
struct Fixture {
    app: TestApp,
    client: TestClient,
    tokens: Value,
    /// The real access token.
    token: String,
    /// Its `kid`.
    kid: String,
    /// Its claims, as the server encoded them (base64url).
    claims_b64: String,
    /// Its claims, decoded.
    claims: Value,
    /// Every stored signing key.
    keys: Vec<SigningKeyRow>,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        let app = TestApp::spawn(backend).await;
        app.create_user("jane", "sekret-password").await;
        let client = app.create_client("api read_user openid", true, true).await;
        let tokens = app
            .password_grant_scoped(&client, "jane", "sekret-password", "api openid")
            .await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_segment(parts[0]);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "at+jwt");
        let kid = header["kid"].as_str().unwrap().to_owned();
        let claims_b64 = parts[1].to_owned();
        let claims = decode_segment(&claims_b64);
        let keys = app
            .state
            .db(|conn| {
                Ok::<_, token_service::error::ServiceError>(token_service::db::signing_keys::list(
                    conn,
                )?)
            })
            .await
            .unwrap();
        Self {
            app,
            client,
            tokens,
            token,
            kid,
            claims_b64,
            claims,
            keys,
        }
    }

    /// The stored Ed25519 key that signed the real token.
    fn access_key(&self) -> &SigningKeyRow {
        let row = self
            .keys
            .iter()
            .find(|r| r.kid == self.kid)
            .expect("the real token's key is stored");
        assert_eq!(
            (row.algorithm.as_str(), row.purpose.as_str()),
            ("EdDSA", "access_token")
        );
        row
    }

    fn access_encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ed_der(&self.access_key().private_key)
    }

    /// The stored RSA key that signs id_tokens.
    fn id_token_key(&self) -> &SigningKeyRow {
        let row = self
            .keys
            .iter()
            .find(|r| r.purpose == "id_token" && r.revoked_at.is_none())
            .expect("an id_token key is stored");
        assert_eq!(row.algorithm, "RS256");
        row
    }

    /// The header the server puts on access tokens, rebuilt by hand.
    fn genuine_header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid})
    }

    /// The real claims re-signed by our real key under `header`.
    fn resigned(&self, header: &Value) -> String {
        sign(
            header,
            &self.claims_b64,
            &self.access_encoding_key(),
            Algorithm::EdDSA,
        )
    }

    /// `claims` signed by our real key under the genuine header.
    fn with_claims(&self, claims: &Value) -> String {
        sign(
            &self.genuine_header(),
            &b64_json(claims),
            &self.access_encoding_key(),
            Algorithm::EdDSA,
        )
    }

    /// Presents `token` to every endpoint that takes an access token.
    async fn present(&self, token: &str) -> Outcome {
        let app = &self.app;
        let (api, _) = app.api_user(token).await;
        let response = app
            .http
            .post(app.url("/oauth/introspect"))
            .basic_auth(&self.client.id, Some(&self.client.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let introspect_status = response.status().as_u16();
        let introspect = response.json::<Value>().await.unwrap_or(Value::Null);
        let userinfo = app
            .http
            .get(app.url("/oauth/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let token_info = app
            .http
            .get(app.url("/oauth/token/info"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        Outcome {
            api,
            introspect_status,
            introspect,
            userinfo,
            token_info,
        }
    }

    /// The forged `token` is refused everywhere, and nothing answers 5xx.
    async fn assert_rejected(&self, token: &str, what: &str) {
        if let Some(failure) = self.rejection_failure(token, what).await {
            panic!("{failure}");
        }
    }

    /// Why `token` was not refused everywhere, if it was not.
    async fn rejection_failure(&self, token: &str, what: &str) -> Option<String> {
        let outcome = self.present(token).await;
        outcome.assert_no_server_error(what);
        // Introspection refuses a form parameter over the length cap (SEC-DS-01) before
        // looking at it: 400 invalid_request instead of `{"active":false}`, a refusal too.
        let introspection = if token.len() > auth_web::params::MAX_PARAM_BYTES
            && outcome.introspect_status == 400
        {
            assert_eq!(outcome.introspect["error"], "invalid_request", "{what}");
            (200, json!({"active": false}))
        } else {
            (outcome.introspect_status, outcome.introspect.clone())
        };
        let seen = (
            outcome.api,
            introspection.0,
            introspection.1,
            outcome.userinfo,
            outcome.token_info,
        );
        let expected = (401, 200, json!({"active": false}), 401, 401);
        (seen != expected).then(|| {
            format!(
                "{what} must be rejected: (api, introspect status, introspect body, userinfo, \
                 token/info) was {seen:?}, expected {expected:?}"
            )
        })
    }

    /// The positive control: `token` is accepted everywhere.
    async fn assert_accepted(&self, token: &str, what: &str) {
        let outcome = self.present(token).await;
        assert_eq!(
            (
                outcome.api,
                outcome.introspect_status,
                &outcome.introspect["active"],
                outcome.userinfo,
                outcome.token_info
            ),
            (200, 200, &json!(true), 200, 200),
            "{what} must be accepted (api, introspect status, introspect active, userinfo, token/info)"
        );
    }
}

/// What each endpoint said about one token.
#[derive(Debug)]
struct Outcome {
    api: u16,
    introspect_status: u16,
    introspect: Value,
    userinfo: u16,
    token_info: u16,
}

impl Outcome {
    fn assert_no_server_error(&self, what: &str) {
        for status in [
            self.api,
            self.introspect_status,
            self.userinfo,
            self.token_info,
        ] {
            assert!(status < 500, "{what}: a server error ({self:?})");
        }
    }
}

fn decode_segment(segment: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn b64_json(value: &Value) -> String {
    base64url(&serde_json::to_vec(value).unwrap())
}

/// A JWS compact serialization assembled by hand, so that the header can say anything:
/// `header` as given, the (already encoded) claims, and a signature by `key` with `alg`.
fn sign(header: &Value, claims_b64: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{claims_b64}", b64_json(header));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn published_key<'a>(jwks: &'a Value, kid: &str) -> &'a Value {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} is published"))
}

async fn sec_jw_01_algorithm_is_pinned(backend: Backend) {
    let f = Fixture::new(backend).await;
    // Positive controls: the token as issued, and the same claims re-signed by hand.
    f.assert_accepted(&f.token, "the real token").await;
    f.assert_accepted(
        &f.resigned(&f.genuine_header()),
        "the re-signed real claims",
    )
    .await;

    // (a) `alg: none`, with an empty signature, in several spellings.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": f.kid});
        let unsigned = format!("{}.{}.", b64_json(&header), f.claims_b64);
        f.assert_rejected(&unsigned, &format!("alg {alg} with an empty signature"))
            .await;
        let no_kid = format!("{}.{}.", b64_json(&json!({"alg": alg})), f.claims_b64);
        f.assert_rejected(&no_kid, &format!("bare alg {alg}")).await;
    }

    // (b) HS256 keyed with public material: the raw Ed25519 `x`, its base64url text, the
    // JWK as published and as stored, and the whole JWK Set.
    let response = f
        .app
        .http
        .get(f.app.url("/oauth/discovery/keys"))
        .send()
        .await
        .unwrap();
    let jwks_text = response.text().await.unwrap();
    let jwks: Value = serde_json::from_str(&jwks_text).unwrap();
    let jwk = published_key(&jwks, &f.kid);
    let x = jwk["x"].as_str().unwrap();
    let raw_x = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .unwrap()
    };
    assert_eq!(raw_x.len(), 32);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("raw x", raw_x),
        ("x text", x.as_bytes().to_vec()),
        ("published JWK", jwk.to_string().into_bytes()),
        ("stored JWK", f.access_key().public_jwk.clone().into_bytes()),
        ("JWK Set", jwks_text.clone().into_bytes()),
    ];
    for (name, secret) in secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let header = json!({"alg": format!("{alg:?}"), "typ": "at+jwt", "kid": f.kid});
            let forged = sign(
                &header,
                &f.claims_b64,
                &EncodingKey::from_secret(&secret).unwrap(),
                alg,
            );
            f.assert_rejected(&forged, &format!("{alg:?} keyed with the {name}"))
                .await;
        }
    }

    // (c) RS256, validly signed by our own (published) id_token key, typed as an access
    // token, under the RSA key's kid and under the Ed25519 key's kid.
    let rsa = f.id_token_key();
    let rsa_key = EncodingKey::from_rsa_der(&rsa.private_key);
    for kid in [rsa.kid.as_str(), f.kid.as_str()] {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
        let forged = sign(&header, &f.claims_b64, &rsa_key, Algorithm::RS256);
        f.assert_rejected(&forged, &format!("RS256 by our id_token key, kid {kid}"))
            .await;
    }

    // (d) A valid Ed25519 signature under a misspelt algorithm name.
    for alg in ["eddsa", "EDDSA", "Ed25519", "EdDSA "] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": f.kid});
        let forged = sign(
            &header,
            &f.claims_b64,
            &f.access_encoding_key(),
            Algorithm::EdDSA,
        );
        f.assert_rejected(&forged, &format!("alg {alg:?}")).await;
    }

    // The real token still works: nothing above revoked it.
    f.assert_accepted(&f.token, "the real token, afterwards")
        .await;
}

async fn sec_jw_02_kid_is_a_lookup_key_only(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.assert_accepted(&f.resigned(&f.genuine_header()), "the right kid")
        .await;
    let rsa_kid = f.id_token_key().kid.clone();
    let long = "A".repeat(10 * 1024);
    let kids: Vec<(&str, Value)> = vec![
        ("a path", json!("../../dev/null")),
        ("SQL", json!("' OR 1=1--")),
        ("empty", json!("")),
        ("10 KB", json!(long)),
        ("2 KB (under every length cap)", json!(long[..2 * 1024])),
        ("a URL", json!("http://127.0.0.1:9/keys.json")),
        ("a number", json!(1)),
        ("null", Value::Null),
        (
            "the kid with a trailing space",
            json!(format!("{} ", f.kid)),
        ),
        ("the kid upper-cased", json!(f.kid.to_uppercase())),
        ("the kid's prefix", json!(f.kid[..f.kid.len() - 1])),
        ("the published RSA key's kid", json!(rsa_kid)),
    ];
    for (what, kid) in kids {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let forged = f.resigned(&header);
        if what.starts_with("2 KB") {
            assert!(forged.len() < auth_web::params::MAX_PARAM_BYTES);
        }
        f.assert_rejected(&forged, &format!("kid: {what}")).await;
    }
    let missing = json!({"alg": "EdDSA", "typ": "at+jwt"});
    f.assert_rejected(&f.resigned(&missing), "no kid").await;
    f.assert_accepted(&f.token, "the real token, afterwards")
        .await;
}

/// A loopback HTTP server that counts its connections and serves `body` to each.
async fn trap(body: String) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, hits, task)
}

async fn sec_jw_03_embedded_and_remote_keys_are_ignored(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.assert_accepted(&f.resigned(&f.genuine_header()), "our key, plain header")
        .await;

    let attacker = token_service::keys::generate_ed25519(f.app.state.now()).unwrap();
    let attacker_key = EncodingKey::from_ed_der(&attacker.private_key);
    let attacker_jwk: Value = serde_json::from_str(&attacker.public_jwk).unwrap();
    let forge = |header: Value| sign(&header, &f.claims_b64, &attacker_key, Algorithm::EdDSA);

    // An embedded `jwk`, under the attacker's kid and under ours.
    for kid in [attacker.kid.as_str(), f.kid.as_str()] {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": attacker_jwk});
        f.assert_rejected(&forge(header), &format!("embedded jwk, kid {kid}"))
            .await;
    }

    // `jku` and `x5u` pointing to a server of the attacker's that serves the attacker's key.
    let (base, hits, task) = trap(json!({"keys": [attacker_jwk]}).to_string()).await;
    for member in ["jku", "x5u"] {
        for kid in [attacker.kid.as_str(), f.kid.as_str()] {
            let header = json!({
                "alg": "EdDSA",
                "typ": "at+jwt",
                "kid": kid,
                member: format!("{base}/{member}.json"),
            });
            f.assert_rejected(&forge(header), &format!("{member}, kid {kid}"))
                .await;
        }
    }
    // Give any background fetch time to arrive before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    task.abort();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the server fetched a key from a URL in a token header"
    );

    // `crit` on a token our real key signed: we understand no extension, so refuse it.
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": f.kid, "crit": crit});
        f.assert_rejected(&f.resigned(&header), &format!("crit {crit}"))
            .await;
    }
    f.assert_accepted(&f.token, "the real token, afterwards")
        .await;
}

async fn sec_jw_04_an_id_token_is_not_an_access_token(backend: Backend) {
    let f = Fixture::new(backend).await;
    // The access token of the same response is accepted everywhere.
    f.assert_accepted(&f.token, "the access token").await;
    let id_token = f.tokens["id_token"]
        .as_str()
        .expect("an openid password grant returns an id_token")
        .to_owned();
    let header = decode_segment(id_token.split('.').next().unwrap());
    assert_eq!(header["alg"], "RS256");
    f.assert_rejected(&id_token, "the id_token").await;
    // Also as a GitLab-style query parameter of /oauth/token/info and as userinfo's form.
    let status = f
        .app
        .http
        .get(f.app.url("/oauth/token/info"))
        .query(&[("access_token", id_token.as_str())])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 401,
        "token/info with the id_token as query parameter"
    );
    let status = f
        .app
        .http
        .post(f.app.url("/oauth/userinfo"))
        .form(&[("access_token", id_token.as_str())])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "userinfo with the id_token in the form");
}

async fn sec_jw_05_claims_are_validated_not_just_the_signature(backend: Backend) {
    let f = Fixture::new(backend).await;
    let now = f.app.state.now();
    let control = f.claims.clone();
    f.assert_accepted(&f.with_claims(&control), "the real claims, re-encoded")
        .await;
    // `nbf` within the 60 s leeway is honoured, not refused.
    let mut early = f.claims.clone();
    early["nbf"] = json!(now + 30);
    f.assert_accepted(&f.with_claims(&early), "nbf 30 s ahead")
        .await;

    let issuer = f.claims["iss"].as_str().unwrap().to_owned();
    let change = |name: &str, value: Option<Value>| {
        let mut claims = f.claims.clone();
        let map = claims.as_object_mut().unwrap();
        match value {
            Some(v) => {
                map.insert(name.to_owned(), v);
            }
            None => {
                map.remove(name);
            }
        }
        claims
    };
    let cases = [
        ("exp 61 s ago", change("exp", Some(json!(now - 61)))),
        ("exp now", change("exp", Some(json!(now)))),
        ("no exp", change("exp", None)),
        ("nbf in 300 s", change("nbf", Some(json!(now + 300)))),
        (
            "iss with a trailing slash",
            change("iss", Some(json!(format!("{issuer}/")))),
        ),
        ("no iss", change("iss", None)),
        (
            "another audience",
            change("aud", Some(json!("https://other.example"))),
        ),
        (
            "another audience in a list",
            change("aud", Some(json!(["https://other.example"]))),
        ),
        ("no aud", change("aud", None)),
    ];
    // Every case is tried, and every failure reported.
    let mut failures = Vec::new();
    for (what, claims) in cases {
        failures.extend(f.rejection_failure(&f.with_claims(&claims), what).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    f.assert_accepted(&f.token, "the real token, afterwards")
        .await;
}

/// The INTEGERs of a DER SEQUENCE (enough of DER to read a PKCS#1 RSA private key).
fn der_integers(der: &[u8]) -> Vec<Vec<u8>> {
    fn length(der: &[u8], at: &mut usize) -> usize {
        let first = der[*at];
        *at += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let mut n = 0;
        for _ in 0..(first & 0x7f) {
            n = (n << 8) | usize::from(der[*at]);
            *at += 1;
        }
        n
    }
    let mut at = 0;
    assert_eq!(der[at], 0x30, "a SEQUENCE");
    at += 1;
    let end = length(der, &mut at) + at;
    let mut integers = Vec::new();
    while at < end {
        assert_eq!(der[at], 0x02, "an INTEGER");
        at += 1;
        let len = length(der, &mut at);
        let mut value = &der[at..at + len];
        while value.len() > 1 && value[0] == 0 {
            value = &value[1..];
        }
        integers.push(value.to_vec());
        at += len;
    }
    integers
}

/// The 32-byte seed of a PKCS#8 Ed25519 key (RFC 8410: an OCTET STRING in an OCTET STRING).
fn ed25519_seed(der: &[u8]) -> Vec<u8> {
    let at = der
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .expect("a PKCS#8 Ed25519 private key");
    der[at + 4..at + 36].to_vec()
}

async fn sec_jw_07_jwks_publishes_public_material_only(backend: Backend) {
    // The issuer is auth-web's own address, so that `jwks_uri` can point right here.
    let app = TestApp::spawn_with(backend, |config| {
        config.public_url = doorward_tests::ISSUER_ON_BOUND_PORT.into();
    })
    .await;
    let response = app
        .http
        .get(app.url("/oauth/discovery/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let jwks: Value = serde_json::from_str(&body).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());

    const ALLOWED: [&str; 8] = ["kty", "kid", "use", "alg", "crv", "x", "n", "e"];
    const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];
    let mut kids = Vec::new();
    let (mut okp, mut rsa) = (0, 0);
    for key in keys {
        let members = key.as_object().unwrap();
        for name in members.keys() {
            assert!(ALLOWED.contains(&name.as_str()), "member {name} in {key}");
            assert!(!PRIVATE.contains(&name.as_str()), "private member {name}");
        }
        for name in ["kty", "kid", "alg"] {
            assert!(
                members
                    .get(name)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty()),
                "{name} in {key}"
            );
        }
        assert_eq!(key["use"], "sig", "{key}");
        kids.push(key["kid"].as_str().unwrap().to_owned());
        match key["kty"].as_str().unwrap() {
            "OKP" => {
                okp += 1;
                assert_eq!(
                    (&key["crv"], &key["alg"]),
                    (&json!("Ed25519"), &json!("EdDSA"))
                );
                assert!(key.get("x").is_some(), "{key}");
            }
            "RSA" => {
                rsa += 1;
                assert_eq!(key["alg"], "RS256");
                use base64::Engine;
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(key["n"].as_str().unwrap())
                    .unwrap();
                assert!(n.len() >= 256, "an RSA modulus of {} bytes", n.len());
                assert!(key["e"].as_str().is_some_and(|e| !e.is_empty()));
            }
            other => panic!("unexpected kty {other}"),
        }
    }
    assert!(okp >= 1 && rsa >= 1, "{okp} Ed25519 and {rsa} RSA keys");
    let mut unique = kids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), kids.len(), "kids are unique: {kids:?}");

    // No private material of any stored key appears in the body, in any member.
    let rows = app
        .state
        .db(|conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::db::signing_keys::list(
                conn,
            )?)
        })
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert!(kids.contains(&row.kid), "{} is published", row.kid);
        assert!(!body.contains(&base64url(&row.private_key)));
        match row.algorithm.as_str() {
            "EdDSA" => {
                let seed = ed25519_seed(&row.private_key);
                assert!(!body.contains(&base64url(&seed)), "the Ed25519 seed");
            }
            "RS256" => {
                // version, n, e, d, p, q, dp, dq, qi
                let integers = der_integers(&row.private_key);
                assert_eq!(integers.len(), 9, "a PKCS#1 RSA private key");
                let published = published_key(&jwks, &row.kid);
                assert_eq!(
                    published["n"].as_str().unwrap(),
                    base64url(&integers[1]),
                    "the parse found the public modulus"
                );
                for (name, value) in PRIVATE.iter().zip(&integers[3..]) {
                    assert!(!body.contains(&base64url(value)), "RSA {name} is published");
                }
            }
            other => panic!("unexpected algorithm {other}"),
        }
    }

    // The discovery document points to this very key set.
    let discovery: Value = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["jwks_uri"], app.url("/oauth/discovery/keys"));
    let again = app
        .http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(again, body);
}
