//! OpenID Connect as a relying party sees it: a standard RP library (`openidconnect`) runs
//! discovery, the code flow with PKCE and `nonce` through the real pages, verifies the
//! id_token against the published keys, and calls userinfo. Then the id_token rules of
//! OpenID Connect Core §3.1.3.7 one by one (SEC-JW-06), the password and refresh grants,
//! and WebFinger.

use base64::Engine;
use doorward_tests::browser::Browser;
use doorward_tests::{Backend, ISSUER_ON_BOUND_PORT, TestApp, TestClient, both_backends};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse as _,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use token_service::apps::ApplicationFields;

both_backends!(
    openid_connect_relying_party_signs_in_with_code_pkce_and_nonce,
    sec_jw_06_id_token_passes_every_rp_check,
    id_tokens_come_with_the_password_grant_and_refresh_without_nonce,
    no_id_token_without_the_openid_scope,
    openid_configuration_and_webfinger,
);

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The services, with the issuer on auth-web's own address.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.public_url = ISSUER_ON_BOUND_PORT.into();
    })
    .await
}

async fn oidc_client(app: &TestApp) -> TestClient {
    app.register(ApplicationFields {
        name: "Relying Party".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "read_user".into(),
        ],
        confidential: true,
        trusted: false,
        grant_types: vec![],
        owner_id: None,
    })
    .await
}

/// Follows an authorization URL through sign-in and consent; the redirect's query pairs.
async fn authorize_in_browser(app: &TestApp, authorize_url: &str) -> Vec<(String, String)> {
    let path = authorize_url
        .strip_prefix(&app.base)
        .expect("the authorization endpoint is on the issuer");
    let browser = Browser::new(&app.base);
    let first = browser.get(path).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let signed_in = browser
        .sign_in(&first.location().unwrap(), "jane", "sekret-password")
        .await;
    let consent = browser.get(&signed_in.location().unwrap()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let mut fields = consent.form("/oauth/authorize");
    fields.push(("decision".into(), "approve".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    let location = answer.location().expect("a redirect to the client");
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str(query).unwrap()
}

fn param(params: &[(String, String)], name: &str) -> String {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {params:?}"))
}

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn openid_connect_relying_party_signs_in_with_code_pkce_and_nonce(backend: Backend) {
    let app = spawn(backend).await;
    let user_id = app.create_user("jane", "sekret-password").await;
    let registered = oidc_client(&app).await;
    let http = rp_http();

    let issuer = IssuerUrl::new(app.base.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.id.clone()),
        Some(ClientSecret::new(registered.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let params = authorize_in_browser(&app, url.as_str()).await;
    assert_eq!(&param(&params, "state"), csrf.secret());
    assert_eq!(param(&params, "iss"), app.base, "RFC 9207 iss");

    let tokens = client
        .exchange_code(AuthorizationCode::new(param(&params, "code")))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an id_token with openid");
    // Signature against the JWKS, issuer, audience, expiry and nonce: the library's checks.
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("a valid id_token");
    assert_eq!(claims.subject().as_str(), user_id.to_string());
    assert_eq!(claims.email().map(|e| e.as_str()), Some("jane@example.com"));
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    // Userinfo, checked by the library against the id_token's subject (SEC-IR-05).
    let userinfo: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(userinfo.subject(), claims.subject());
    assert_eq!(
        userinfo.preferred_username().map(|u| u.as_str()),
        Some("jane")
    );
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("jane@example.com")
    );

    // A wrong nonce is caught by the relying party: the id_token is bound to its request.
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("another".into()))
            .is_err()
    );
}

fn b64(part: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap()
}

/// Runs the checks of OpenID Connect Core §3.1.3.7 over `id_token` by hand.
async fn check_id_token(
    app: &TestApp,
    id_token: &str,
    client_id: &str,
    access_token: &str,
    nonce: Option<&str>,
) -> Value {
    let parts: Vec<&str> = id_token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialization");
    let header: Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    let claims: Value = serde_json::from_slice(&b64(parts[1])).unwrap();
    // 6-8: RS256, with a kid that is in the JWKS; verify the signature with that key.
    assert_eq!(header["alg"], "RS256");
    let jwks: Value = app.get_json("/oauth/discovery/keys").await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the id_token's kid is published");
    assert_eq!(jwk["kty"], "RSA");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_audience(&[client_id]);
    jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("signature verifies");
    // 2: iss equals the discovery issuer exactly.
    let discovery: Value = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(claims["iss"], discovery["issuer"]);
    // 3-5: aud is (or contains) the client_id; with one audience no azp is needed.
    assert_eq!(claims["aud"], client_id);
    // 9-10: exp and iat present; 120 seconds of life, issued now.
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 120);
    // (The test clock follows real time: allow the second that may have passed.)
    assert!((app.state.now() - iat).abs() <= 1, "iat {iat}");
    // 11: nonce exactly as sent, or absent when none was sent.
    assert_eq!(claims["nonce"].as_str(), nonce);
    // sub: stable, at most 255 ASCII characters.
    let sub = claims["sub"].as_str().unwrap();
    assert!(!sub.is_empty() && sub.len() <= 255 && sub.is_ascii());
    // at_hash: the left half of SHA-256 of the access token, computed independently.
    let digest = Sha256::digest(access_token.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    assert_eq!(claims["at_hash"], expected.as_str());
    claims
}

async fn sec_jw_06_id_token_passes_every_rp_check(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = oidc_client(&app).await;
    // A Unicode nonce with characters that need escaping, and max_age: auth_time is due.
    let nonce = "n-ü-東京-\"quoted\"-<&>";
    let authorize = format!(
        "{}/oauth/authorize?{}",
        app.base,
        serde_urlencoded::to_string([
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
            ("nonce", nonce),
            ("max_age", "600"),
        ])
        .unwrap()
    );
    let params = authorize_in_browser(&app, &authorize).await;
    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &param(&params, "code")),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().expect("an id_token");
    let claims = check_id_token(
        &app,
        id_token,
        &client.id,
        tokens["access_token"].as_str().unwrap(),
        Some(nonce),
    )
    .await;
    // max_age was requested: auth_time is the sign-in moment.
    let auth_time = claims["auth_time"]
        .as_i64()
        .expect("auth_time with max_age");
    assert!(
        (app.state.now() - auth_time).abs() <= 2,
        "auth_time {auth_time}"
    );
    // Without the email scope, no e-mail.
    assert!(claims.get("email").is_none());
}

async fn id_tokens_come_with_the_password_grant_and_refresh_without_nonce(backend: Backend) {
    let app = spawn(backend).await;
    let user_id = app.create_user("jane", "sekret-password").await;
    let client = oidc_client(&app).await;
    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "sekret-password"),
                ("scope", "openid email"),
                ("nonce", "pw-nonce"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let claims = check_id_token(
        &app,
        tokens["id_token"].as_str().unwrap(),
        &client.id,
        tokens["access_token"].as_str().unwrap(),
        Some("pw-nonce"),
    )
    .await;
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["email"], "jane@example.com");
    assert_eq!(claims["email_verified"], true);
    let auth_time = claims["auth_time"].as_i64().expect("auth_time");
    assert!(
        (app.state.now() - auth_time).abs() <= 2,
        "auth_time {auth_time}"
    );

    app.clock.advance(60);
    let (status, refreshed) = app
        .refresh(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let claims = check_id_token(
        &app,
        refreshed["id_token"]
            .as_str()
            .expect("refresh brings an id_token"),
        &client.id,
        refreshed["access_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(claims["sub"], user_id.to_string());
}

async fn no_id_token_without_the_openid_scope(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = oidc_client(&app).await;
    let tokens = app
        .password_grant_scoped(&client, "jane", "sekret-password", "read_user")
        .await;
    assert!(tokens["access_token"].is_string());
    assert!(tokens.get("id_token").is_none(), "{tokens}");
    // client_credentials has no user: never an id_token, even when the scope is allowed.
    let response = app
        .token_basic(
            &client,
            &[("grant_type", "client_credentials"), ("scope", "openid")],
        )
        .await;
    let tokens: Value = response.json().await.unwrap();
    assert!(tokens.get("id_token").is_none(), "{tokens}");
}

async fn openid_configuration_and_webfinger(backend: Backend) {
    let app = spawn(backend).await;
    let oidc = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(oidc.status(), 200);
    assert!(
        oidc.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let oidc: Value = oidc.json().await.unwrap();
    let oauth: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(oidc, oauth, "one document at both addresses, as GitLab");
    assert_eq!(oidc["issuer"], app.base);
    assert_eq!(oidc["id_token_signing_alg_values_supported"][0], "RS256");
    assert_eq!(oidc["subject_types_supported"][0], "public");

    let finger = app
        .http
        .get(app.url("/.well-known/webfinger?resource=acct%3Ajane%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(finger.status(), 200);
    assert_eq!(finger.headers()["content-type"], "application/jrd+json");
    let finger: Value = finger.json().await.unwrap();
    assert_eq!(finger["subject"], "acct:jane@example.com");
    assert_eq!(
        finger["links"][0]["rel"],
        "http://openid.net/specs/connect/1.0/issuer"
    );
    assert_eq!(finger["links"][0]["href"], app.base);
    // Another relation: no links.
    let other: Value = app
        .http
        .get(app.url(
            "/.well-known/webfinger?resource=acct%3Ajane%40example.com&rel=http%3A%2F%2Fexample.com%2Frel",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["links"], serde_json::json!([]));
    // No resource, an empty one, or two: 400.
    for query in ["", "?resource=", "?resource=a&resource=b"] {
        let response = app
            .http
            .get(app.url(&format!("/.well-known/webfinger{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
}
