//! `GET /api/v4/user` as a resource server: both token placements (RFC 6750 §2.1, §2.3) and
//! GitLab's 401/403 bodies for every kind of bad token (see `routes/api_user.rs` in
//! auth-web).

use doorward_tests::{Backend, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    api_user_errors_follow_gitlab,
    api_user_needs_read_user_or_api,
    sec_ds_04_oversized_bearer_tokens_are_refused_fast,
);

async fn get(app: &TestApp, path: &str, header: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = app.http.get(app.url(path));
    if let Some(value) = header {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn api_user_errors_follow_gitlab(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let tokens = app.password_grant(&client, "jane", "sekret-password").await;
    let access = tokens["access_token"].as_str().unwrap();

    let (status, _, body) = get(&app, "/api/v4/user", None).await;
    assert_eq!(
        (status, body),
        (401, json!({"message": "401 Unauthorized"}))
    );

    let (status, challenge, body) = get(&app, "/api/v4/user", Some("Bearer garbage")).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "Bad Access Token."})
    );
    assert!(
        challenge
            .unwrap()
            .starts_with("Bearer realm=\"The API\", error=\"invalid_token\"")
    );

    // Our header with an empty payload and a bogus signature is garbage too. (A token with
    // our kid signed by another key is covered by the unit tests of token-service's keys.)
    let forged = format!("{}.e30.AAAA", access.split('.').next().unwrap());
    let (status, _, body) = get(&app, "/api/v4/user", Some(&format!("Bearer {forged}"))).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (401, Some("Bad Access Token."))
    );

    // Both placements at once are ambiguous (RFC 6750 §2).
    let response = app
        .http
        .get(app.url("/api/v4/user"))
        .bearer_auth(access)
        .query(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Expired: the clock passes the 2-hour lifetime.
    app.clock.advance(7201);
    let (status, _, body) = get(&app, "/api/v4/user", Some(&format!("Bearer {access}"))).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error_description"],
        "Token is expired. You can either do re-authorization or token refresh."
    );
}

async fn api_user_needs_read_user_or_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.create_client("read_api read_user", true, true).await;
    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "sekret-password"),
                ("scope", "read_api"),
            ],
        )
        .await;
    let tokens: Value = response.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let (status, challenge, body) =
        get(&app, "/api/v4/user", Some(&format!("Bearer {access}"))).await;
    assert_eq!(status, 403);
    assert!(
        challenge.is_none(),
        "GitLab's 403 carries no WWW-Authenticate"
    );
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "api read_user");

    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "sekret-password"),
                ("scope", "read_user"),
            ],
        )
        .await;
    let tokens: Value = response.json().await.unwrap();
    let (status, _) = app.api_user(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

async fn sec_ds_04_oversized_bearer_tokens_are_refused_fast(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let big = format!("Bearer {}", "a".repeat(9 * 1024));
    let (status, _, body) = get(&app, "/api/v4/user", Some(&big)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    // A header too large for the server at all is refused by the HTTP layer, not a 5xx.
    let huge = format!("Bearer {}", "a".repeat(1024 * 1024));
    let response = app
        .http
        .get(app.url("/api/v4/user"))
        .header("authorization", huge)
        .send()
        .await;
    if let Ok(response) = response {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
}
