//! The seed's walk-through (`gitlab-oauth2-client-doc.txt`): the password grant, the API
//! with the token in the header and in the query, refresh, and client_credentials.

use doorward_tests::{Backend, TestApp, both_backends};
use serde_json::Value;

both_backends!(
    seed_walkthrough_password_grant_then_api_then_refresh,
    client_credentials_returns_an_access_token_only,
    json_bodies_are_accepted_like_forms,
    basic_credentials_are_form_urldecoded,
    sec_sl_04_token_responses_and_errors_are_never_cached,
);

async fn sec_sl_04_token_responses_and_errors_are_never_cached(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let ok = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    let refused = app.token_basic(&client, &[("grant_type", "bogus")]).await;
    for response in [ok, refused] {
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }
}

async fn seed_walkthrough_password_grant_then_api_then_refresh(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user_id = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;

    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "jane"),
            ("password", "sekret-password"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 7200);
    assert_eq!(tokens["scope"], "api");
    assert!(tokens["created_at"].as_i64().unwrap() > 1_700_000_000);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 43);

    // The token in the Authorization header…
    let (status, user) = app.api_user(access).await;
    assert_eq!(status, 200);
    assert_eq!(user["id"], user_id);
    assert_eq!(user["username"], "jane");
    assert_eq!(user["email"], "jane@example.com");
    assert_eq!(user["state"], "active");
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(user["web_url"], format!("{}/jane", app.config.public_url));
    // …and in the query string, on the v3 alias too.
    for path in ["/api/v4/user", "/api/v3/user"] {
        let response = app
            .http
            .get(app.url(path))
            .query(&[("access_token", access)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["username"], "jane");
    }

    let (status, refreshed) = app.refresh(&client, refresh).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(refreshed["access_token"], tokens["access_token"]);
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    let (status, _) = app
        .api_user(refreshed["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
}

async fn client_credentials_returns_an_access_token_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let response = app
        .token_basic(
            &client,
            &[("grant_type", "client_credentials"), ("scope", "read_user")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["scope"], "read_user");
    // RFC 6749 §4.4.3: no refresh token.
    assert!(tokens.get("refresh_token").is_none());
    assert!(tokens.get("id_token").is_none());
}

async fn json_bodies_are_accepted_like_forms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .json(&serde_json::json!({
            "grant_type": "password",
            "username": "jane",
            "password": "sekret-password",
            "client_id": client.id,
            "client_secret": client.secret,
            "scope": "read_user",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["scope"], "read_user");
}

async fn basic_credentials_are_form_urldecoded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    // RFC 6749 §2.3.1: both halves are form-urlencoded; some clients encode `-` as %2D.
    let encoded_secret = client.secret.replace('-', "%2D");
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&encoded_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
