//! Refresh-token rotation (SEC-RT-* in docs/security-model.md; docs/tokens-and-security.md,
//! "Refresh tokens"): rotation, reuse detection revoking the family, the grace window,
//! atomic rotation under concurrency, client and scope binding, idle and absolute expiry.

use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    sec_rt_01_rotation_invalidates_the_presented_token,
    sec_rt_02_reuse_after_the_grace_window_revokes_the_whole_family,
    sec_rt_03_a_grace_retry_returns_the_same_successor_pair,
    sec_rt_03_older_generations_are_reuse_even_inside_the_window,
    sec_rt_03_the_predecessor_is_reuse_once_its_successor_was_used,
    sec_rt_04_concurrent_refreshes_leave_one_live_successor,
    sec_rt_05_refresh_tokens_are_bound_to_client_and_scope,
    sec_rt_06_idle_and_absolute_expiry,
    refresh_tokens_cannot_be_used_by_a_public_client_naming_itself,
);

async fn setup(backend: Backend) -> (TestApp, TestClient, Value) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let tokens = app.password_grant(&client, "jane", "sekret-password").await;
    (app, client, tokens)
}

fn refresh_of(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

fn access_of(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn expect_invalid_grant(app: &TestApp, client: &TestClient, refresh: &str) {
    let (status, body) = app.refresh(client, refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

async fn sec_rt_01_rotation_invalidates_the_presented_token(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    let (status, r2) = app.refresh(&client, &refresh_of(&r1)).await;
    assert_eq!(status, 200);
    assert_ne!(refresh_of(&r2), refresh_of(&r1));
    app.clock.advance(31);
    expect_invalid_grant(&app, &client, &refresh_of(&r1)).await;
    // Tokens that never existed, and access tokens presented as refresh tokens.
    expect_invalid_grant(&app, &client, "garbage").await;
    expect_invalid_grant(&app, &client, &access_of(&r2)).await;
}

async fn sec_rt_02_reuse_after_the_grace_window_revokes_the_whole_family(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    let (_, r2) = app.refresh(&client, &refresh_of(&r1)).await;
    let (_, r3) = app.refresh(&client, &refresh_of(&r2)).await;
    assert_eq!(app.api_user(&access_of(&r3)).await.0, 200);
    app.clock.advance(31);
    expect_invalid_grant(&app, &client, &refresh_of(&r1)).await;
    // The newest generation and its access token are revoked with the family.
    expect_invalid_grant(&app, &client, &refresh_of(&r3)).await;
    let (status, body) = app.api_user(&access_of(&r3)).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error_description"],
        "Token was revoked. You have to re-authorize from the user."
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) AS n FROM access_tokens WHERE revoked_at IS NULL".into())
            .await,
        0
    );
    // SEC-SL-05: the reuse is audited with the family and client, never the token.
    let logs = doorward_tests::logs::captured();
    let event = logs
        .lines()
        .find(|line| line.contains("refresh_token_reuse") && line.contains(&client.id))
        .expect("an audit event for the reuse");
    assert!(event.contains("family_id"));
    assert!(!event.contains(&refresh_of(&r1)));
}

async fn sec_rt_03_a_grace_retry_returns_the_same_successor_pair(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    let (_, first) = app.refresh(&client, &refresh_of(&r1)).await;
    app.clock.advance(10);
    let (status, retry) = app.refresh(&client, &refresh_of(&r1)).await;
    assert_eq!(status, 200);
    // Both processes of the client hold the same, working pair: one live branch.
    assert_eq!(retry["refresh_token"], first["refresh_token"]);
    assert_eq!(retry["access_token"], first["access_token"]);
    assert_eq!(app.api_user(&access_of(&first)).await.0, 200);
    assert_eq!(
        app.scalar("SELECT COUNT(*) AS n FROM access_tokens WHERE refresh_rotated_at IS NULL AND revoked_at IS NULL".into())
            .await,
        1
    );
    let (status, _) = app.refresh(&client, &refresh_of(&first)).await;
    assert_eq!(status, 200);
}

async fn sec_rt_03_older_generations_are_reuse_even_inside_the_window(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    let (_, r2) = app.refresh(&client, &refresh_of(&r1)).await;
    let (_, r3) = app.refresh(&client, &refresh_of(&r2)).await;
    let (_, r4) = app.refresh(&client, &refresh_of(&r3)).await;
    // R1 is two generations old: reuse, though within 30 s of its rotation.
    expect_invalid_grant(&app, &client, &refresh_of(&r1)).await;
    expect_invalid_grant(&app, &client, &refresh_of(&r4)).await;
}

async fn sec_rt_03_the_predecessor_is_reuse_once_its_successor_was_used(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    let (_, r2) = app.refresh(&client, &refresh_of(&r1)).await;
    let (status, r3) = app.refresh(&client, &refresh_of(&r2)).await;
    assert_eq!(status, 200);
    expect_invalid_grant(&app, &client, &refresh_of(&r1)).await;
    expect_invalid_grant(&app, &client, &refresh_of(&r3)).await;
}

async fn sec_rt_04_concurrent_refreshes_leave_one_live_successor(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    let refresh = refresh_of(&r1);
    let results = futures::future::join_all((0..20).map(|_| app.refresh(&client, &refresh))).await;
    let successes: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert!(!successes.is_empty());
    for (status, body) in &results {
        assert!(
            *status == 200 || body["error"] == "invalid_grant",
            "{status} {body}"
        );
    }
    // Every success carries the same successor: the family never forked.
    let distinct: std::collections::HashSet<&str> = successes
        .iter()
        .map(|b| b["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 1);
    assert_eq!(
        app.scalar("SELECT COUNT(*) AS n FROM access_tokens WHERE refresh_rotated_at IS NULL AND revoked_at IS NULL".into())
            .await,
        1
    );
}

async fn sec_rt_05_refresh_tokens_are_bound_to_client_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let a = app.default_client().await;
    let b = app.default_client().await;
    let response = app
        .token_basic(
            &a,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "sekret-password"),
                ("scope", "read_user"),
            ],
        )
        .await;
    let tokens: Value = response.json().await.unwrap();
    expect_invalid_grant(&app, &b, &refresh_of(&tokens)).await;
    // A confidential client must authenticate to refresh.
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_of(&tokens)),
            ("client_id", &a.id),
        ])
        .await;
    assert_eq!(response.status(), 401);
    // Widening is refused, narrowing is allowed.
    let response = app
        .token_basic(
            &a,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_of(&tokens)),
                ("scope", "api"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );

    // RFC 6749 §6: a narrowed access token does not shrink the refresh token's scope.
    let wide = app
        .token_basic(
            &a,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "sekret-password"),
                ("scope", "api read_user"),
            ],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let narrow = app
        .token_basic(
            &a,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_of(&wide)),
                ("scope", "read_user"),
            ],
        )
        .await;
    assert_eq!(narrow.status(), 200);
    let narrow: Value = narrow.json().await.unwrap();
    assert_eq!(narrow["scope"], "read_user");
    let (status, again) = app.refresh(&a, &refresh_of(&narrow)).await;
    assert_eq!(status, 200);
    assert_eq!(again["scope"], "api read_user");
}

async fn sec_rt_06_idle_and_absolute_expiry(backend: Backend) {
    let (app, client, r1) = setup(backend).await;
    // Idle: unused for 30 days.
    app.clock.advance(30 * 24 * 3600);
    expect_invalid_grant(&app, &client, &refresh_of(&r1)).await;

    // Absolute: rotating every 20 days does not carry a family past 365 days.
    let mut current = app.password_grant(&client, "jane", "sekret-password").await;
    for _ in 0..18 {
        app.clock.advance(20 * 24 * 3600);
        let (status, next) = app.refresh(&client, &refresh_of(&current)).await;
        assert_eq!(status, 200, "{next}");
        current = next;
    }
    app.clock.advance(20 * 24 * 3600);
    expect_invalid_grant(&app, &client, &refresh_of(&current)).await;
}

async fn refresh_tokens_cannot_be_used_by_a_public_client_naming_itself(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let confidential = app.default_client().await;
    let tokens = app
        .password_grant(&confidential, "jane", "sekret-password")
        .await;
    // A public client cannot use another client's token either.
    let public = app.create_client("api", false, true).await;
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_of(&tokens)),
            ("client_id", &public.id),
        ])
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}
