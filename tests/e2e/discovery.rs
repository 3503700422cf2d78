//! Published metadata: the JWK Set that access tokens verify against with a standard JWT
//! library, and the RFC 8414 document (snapshot).

use doorward_tests::{Backend, TestApp, both_backends};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

both_backends!(
    access_tokens_verify_against_the_published_jwks,
    authorization_server_metadata_is_built_from_the_configuration,
);

async fn access_tokens_verify_against_the_published_jwks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let response = app
        .http
        .get(app.url("/oauth/discovery/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let jwks: JwkSet = response.json().await.unwrap();
    assert!(!jwks.keys.is_empty());

    let tokens: Value = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    // RFC 7638: the kid is the key's thumbprint.
    assert_eq!(
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap(),
        kid
    );
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[app.config.issuer()]);
    validation.set_audience(&[app.config.issuer()]);
    let data =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(data.claims["client_id"], client.id.as_str());
    assert_eq!(data.claims["scope"], "api");
}

async fn authorization_server_metadata_is_built_from_the_configuration(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.public_url = "https://doorward.example".into()
    })
    .await;
    let response = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.unwrap();
    insta::assert_json_snapshot!("oauth_authorization_server_metadata", metadata);
}
