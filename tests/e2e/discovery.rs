//! Published metadata: the JWK Set that access tokens verify against with a standard JWT
//! library (and its shape, as a snapshot), and the RFC 8414 / OpenID Connect discovery
//! document (snapshot).

use doorward_tests::{Backend, TestApp, both_backends};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

both_backends!(
    access_tokens_verify_against_the_published_jwks,
    key_rotation_reaches_running_services_and_old_tokens_stay_valid,
    authorization_server_metadata_is_built_from_the_configuration,
    jwks_shape,
    sec_jw_08_key_rotation_is_overlap_safe,
);

/// Signs a token and returns its `kid`, polling until `want` signs (the running service
/// re-reads keys every second in tests), or until 5 s have passed.
async fn kid_after_reload(
    app: &TestApp,
    client: &doorward_tests::TestClient,
    want: &str,
) -> String {
    let mut kid = String::new();
    for _ in 0..50 {
        let tokens = app.password_grant(client, "jane", "sekret-password").await;
        kid = kid_of(tokens["access_token"].as_str().unwrap());
        if kid == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    kid
}

/// SEC-JW-08: a new key is published before it signs; the old key stays published (and its
/// tokens valid) until its tokens have expired; a revoked key leaves at once.
async fn sec_jw_08_key_rotation_is_overlap_safe(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.tokens.key_publish_ahead_seconds = 30;
    })
    .await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let before = app.password_grant(&client, "jane", "sekret-password").await;
    let old_token = before["access_token"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_token);

    let now = app.state.now();
    let new_key = app
        .state
        .db(move |conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::keys::rotate(
                conn,
                &[token_service::keys::PURPOSE_ACCESS_TOKEN],
                30,
                now,
            )?)
        })
        .await
        .unwrap()
        .remove(0);
    // Published at once (after the 1 s reload) …
    let mut published = false;
    for _ in 0..50 {
        if published_kids(&app).await.contains(&new_key.kid) {
            published = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(published, "the new key is published first");
    // … but the old key still signs during the publication lead.
    let during = app.password_grant(&client, "jane", "sekret-password").await;
    assert_eq!(kid_of(during["access_token"].as_str().unwrap()), old_kid);
    // After the lead, the new key signs; old tokens still work and the old key is published.
    app.clock.advance(30);
    assert_eq!(
        kid_after_reload(&app, &client, &new_key.kid).await,
        new_key.kid
    );
    assert_eq!(app.api_user(&old_token).await.0, 200);
    assert!(published_kids(&app).await.contains(&old_kid));
    // A compromised key is revoked: it leaves the key set and its tokens fail at once.
    let kid = old_kid.clone();
    let now = app.state.now();
    app.state
        .db(move |conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::keys::revoke(
                conn, &kid, now,
            )?)
        })
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if app.api_user(&old_token).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "a token of a revoked key fails");
    assert!(!published_kids(&app).await.contains(&old_kid));
}

/// The shape of the key set: per key, its members and the values that are not key material
/// (the key material and `kid` are random per database).
async fn jwks_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let jwks: Value = app.get_json("/oauth/discovery/keys").await;
    let mut shape: Vec<Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            let object = key.as_object().unwrap();
            let mut members: Vec<&String> = object.keys().collect();
            members.sort();
            serde_json::json!({
                "members": members,
                "kty": key["kty"],
                "alg": key["alg"],
                "use": key["use"],
                "crv": key.get("crv"),
                "e": key.get("e"),
            })
        })
        .collect();
    shape.sort_by_key(|k| k["kty"].to_string());
    insta::assert_json_snapshot!("jwks_shape", shape);
}

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

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: JwkSet = app.get_json("/oauth/discovery/keys").await;
    jwks.keys
        .into_iter()
        .filter_map(|k| k.common.key_id)
        .collect()
}

async fn key_rotation_reaches_running_services_and_old_tokens_stay_valid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let before = app.password_grant(&client, "jane", "sekret-password").await;
    let old_token = before["access_token"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_token);

    let now = app.state.now();
    let new_key = app
        .state
        .db(move |conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::keys::rotate(
                conn,
                &token_service::keys::PURPOSES,
                0,
                now,
            )?)
        })
        .await
        .unwrap()
        .remove(0);
    // The running service picks the new key up within its reload interval (1 s here).
    let mut new_token = String::new();
    for _ in 0..50 {
        let tokens = app.password_grant(&client, "jane", "sekret-password").await;
        new_token = tokens["access_token"].as_str().unwrap().to_owned();
        if kid_of(&new_token) == new_key.kid {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        kid_of(&new_token),
        new_key.kid,
        "new tokens are signed by the new key"
    );
    // Old tokens keep working, and both keys are published.
    assert_eq!(app.api_user(&old_token).await.0, 200);
    assert_eq!(app.api_user(&new_token).await.0, 200);
    let kids = published_kids(&app).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_key.kid),
        "{kids:?}"
    );
    // Once every token of the old key has expired, it is withdrawn.
    app.clock.advance(7200 + 301);
    let mut withdrawn = false;
    for _ in 0..50 {
        if !published_kids(&app).await.contains(&old_kid) {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        withdrawn,
        "the retired key leaves the JWKS after its tokens' lifetime"
    );
}
