//! Token revocation (RFC 7009), introspection (RFC 7662) and `/oauth/token/info`, with the
//! caller rules SEC-IR-01 to 06 of docs/security-model.md.

use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::{Value, json};

both_backends!(
    sec_ir_01_introspection_requires_caller_authentication,
    sec_ir_02_inactive_means_active_false_and_nothing_else,
    introspection_describes_live_tokens_to_their_client,
    sec_ir_03_revocation_is_owner_only_and_uniform,
    revocation_errors_follow_gitlab,
    sec_ir_06_token_info_reveals_only_the_presented_tokens_metadata,
    sec_ir_05_userinfo_needs_openid_and_follows_the_scopes,
);

async fn sec_ir_05_userinfo_needs_openid_and_follows_the_scopes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user_id = app.create_user("jane", "sekret-password").await;
    let client = app
        .create_client("openid email read_user", true, true)
        .await;
    let grant = |scope: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            let response = app
                .token_basic(
                    client,
                    &[
                        ("grant_type", "password"),
                        ("username", "jane"),
                        ("password", "sekret-password"),
                        ("scope", scope),
                    ],
                )
                .await;
            let tokens: Value = response.json().await.unwrap();
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };
    let userinfo = |token: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .get(app.url("/oauth/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                challenge,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, _, claims) = userinfo(grant("openid email").await).await;
    assert_eq!(status, 200);
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["preferred_username"], "jane");
    assert_eq!(claims["email"], "jane@example.com");
    let (_, _, claims) = userinfo(grant("openid").await).await;
    assert!(
        claims.get("email").is_none(),
        "the email claim needs the email scope"
    );
    let (status, challenge, body) = userinfo(grant("read_user").await).await;
    assert_eq!((status, challenge), (403, None));
    assert_eq!(body["error"], "insufficient_scope");
    let (status, challenge, body) = userinfo("garbage".into()).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    assert_eq!(body["error"], "invalid_token");
    // POST with the token in the form works too.
    let token = grant("openid").await;
    let response = app
        .http
        .post(app.url("/oauth/userinfo"))
        .form(&[("access_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Expired.
    app.clock.advance(7201);
    let (status, challenge, _) = userinfo(token).await;
    assert_eq!(status, 401);
    assert!(challenge.is_some());
}

async fn setup(backend: Backend) -> (TestApp, TestClient, Value) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let tokens = app.password_grant(&client, "jane", "sekret-password").await;
    (app, client, tokens)
}

async fn post(
    app: &TestApp,
    path: &str,
    client: Option<&TestClient>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.http.post(app.url(path)).form(form);
    if let Some(client) = client {
        request = request.basic_auth(&client.id, Some(&client.secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let (status, headers, body) =
        post(app, "/oauth/introspect", Some(client), &[("token", token)]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    body
}

async fn sec_ir_01_introspection_requires_caller_authentication(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, headers, body) = post(&app, "/oauth/introspect", None, &[("token", access)]).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert!(body.get("active").is_none());
    let wrong = TestClient {
        id: client.id.clone(),
        secret: "dwcs-wrong".into(),
    };
    let (status, _, body) = post(
        &app,
        "/oauth/introspect",
        Some(&wrong),
        &[("token", access)],
    )
    .await;
    assert_eq!((status, body.get("active")), (401, None));
    // The bearer of a token cannot introspect that same token.
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth(access)
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn sec_ir_02_inactive_means_active_false_and_nothing_else(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let other = app.default_client().await;
    let foreign = app.password_grant(&other, "jane", "sekret-password").await;
    let revoked = app.password_grant(&client, "jane", "sekret-password").await;
    let revoked_access = revoked["access_token"].as_str().unwrap();
    post(
        &app,
        "/oauth/revoke",
        Some(&client),
        &[("token", revoked_access)],
    )
    .await;
    let expiring = tokens["access_token"].as_str().unwrap().to_owned();
    for token in [
        "never-issued",
        "eyJhbGciOiJub25lIn0.e30.",
        revoked_access,
        foreign["access_token"].as_str().unwrap(),
    ] {
        assert_eq!(
            introspect(&app, &client, token).await,
            json!({"active": false}),
            "{token}"
        );
    }
    app.clock.advance(7201);
    assert_eq!(
        introspect(&app, &client, &expiring).await,
        json!({"active": false}),
        "expired"
    );
}

async fn introspection_describes_live_tokens_to_their_client(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let access = tokens["access_token"].as_str().unwrap();
    let body = introspect(&app, &client, access).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "api");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["username"], "jane");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], app.config.issuer());
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    // The hint is a hint: a wrong one still finds the token.
    let (_, _, hinted) = post(
        &app,
        "/oauth/introspect",
        Some(&client),
        &[("token", access), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(hinted["active"], true);
    // Refresh tokens too, until they are rotated.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let body = introspect(&app, &client, refresh).await;
    assert_eq!(
        (body["active"].clone(), body["token_type"].clone()),
        (json!(true), json!("refresh_token"))
    );
    let (_, rotated) = app.refresh(&client, refresh).await;
    assert_eq!(
        introspect(&app, &client, refresh).await,
        json!({"active": false})
    );
    // A resource server may introspect with a bearer token of its own client.
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["active"], true);
}

async fn sec_ir_03_revocation_is_owner_only_and_uniform(backend: Backend) {
    let (app, a, tokens) = setup(backend).await;
    let b = app.default_client().await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, body) = post(&app, "/oauth/revoke", Some(&b), &[("token", access)]).await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(
        introspect(&app, &a, access).await["active"],
        true,
        "B cannot revoke A's token"
    );
    let (status, _, body) = post(
        &app,
        "/oauth/revoke",
        Some(&a),
        &[("token", "never-issued")],
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    // Revoking the refresh token takes its access token (and family) with it.
    let (status, _, _) = post(
        &app,
        "/oauth/revoke",
        Some(&a),
        &[("token", refresh), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&app, &a, access).await, json!({"active": false}));
    let (status, body) = app.refresh(&a, refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = app.api_user(access).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error_description"],
        "Token was revoked. You have to re-authorize from the user."
    );
    // Revoking an access token (with a wrong hint) ends its use at the API.
    let fresh = app.password_grant(&a, "jane", "sekret-password").await;
    let fresh_access = fresh["access_token"].as_str().unwrap();
    post(
        &app,
        "/oauth/revoke",
        Some(&a),
        &[
            ("token", fresh_access),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(app.api_user(fresh_access).await.0, 401);
}

async fn revocation_errors_follow_gitlab(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, _, body) = post(&app, "/oauth/revoke", None, &[("token", access)]).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"error": "unauthorized_client", "error_description": "You are not authorized to revoke this token"})
    );
    let wrong = TestClient {
        id: client.id.clone(),
        secret: "dwcs-wrong".into(),
    };
    let (status, headers, _) =
        post(&app, "/oauth/revoke", Some(&wrong), &[("token", access)]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Basic realm=\"Doorward\"");
    let (status, _, body) = post(&app, "/oauth/revoke", Some(&client), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        app.http
            .get(app.url("/oauth/revoke"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        introspect(&app, &client, access).await["active"],
        true,
        "nothing was revoked"
    );
}

async fn sec_ir_06_token_info_reveals_only_the_presented_tokens_metadata(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let access = tokens["access_token"].as_str().unwrap();
    let response = app
        .http
        .get(app.url("/oauth/token/info"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], json!(["api"]));
    assert_eq!(body["application"]["uid"], client.id.as_str());
    assert!(body["resource_owner_id"].as_i64().is_some());
    assert_eq!(body["expires_in"], 7200);
    let text = body.to_string();
    assert!(!text.contains(access) && !text.contains(tokens["refresh_token"].as_str().unwrap()));
    // The GitLab query form works too.
    let response = app
        .http
        .get(app.url("/oauth/token/info"))
        .query(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Revoked and expired tokens get 401.
    let other = app.password_grant(&client, "jane", "sekret-password").await;
    let other_access = other["access_token"].as_str().unwrap();
    post(
        &app,
        "/oauth/revoke",
        Some(&client),
        &[("token", other_access)],
    )
    .await;
    let response = app
        .http
        .get(app.url("/oauth/token/info"))
        .bearer_auth(other_access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    app.clock.advance(7201);
    let response = app
        .http
        .get(app.url("/oauth/token/info"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}
