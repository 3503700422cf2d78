//! When token-service is unreachable `/oauth/token` answers 503 `temporarily_unavailable`
//! within the deadline, and recovers by itself when the service returns (SEC-DS-05).

use std::time::{Duration, Instant};

use doorward_tests::browser::Browser;
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    sec_ds_05_token_endpoint_answers_503_while_token_service_is_down_and_recovers,
    sec_ds_05_idle_connections_do_not_block_real_requests,
    over_a_unix_socket_auth_web_serves_tokens_and_recovers_from_a_restart,
);

async fn sec_ds_05_idle_connections_do_not_block_real_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // 500 connections that never send a byte (slowloris without the drip).
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let started = Instant::now();
    let response = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
}

async fn sec_ds_05_token_endpoint_answers_503_while_token_service_is_down_and_recovers(
    backend: Backend,
) {
    let mut app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(app.token_basic(&client, &cc).await.status(), 200);

    app.stop_token_service().await;
    let started = Instant::now();
    let response = app.token_basic(&client, &cc).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "answered within the deadline"
    );
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(
        response.headers()["retry-after"],
        "1",
        "a 503 says when to come back (RFC 9110 §10.2.3)"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // The authorization page cannot check the client, so it redirects nowhere: an HTML
    // 503 that says when to come back.
    let page = Browser::new(&app.base)
        .get(&format!(
            "/oauth/authorize?client_id={}&response_type=code&redirect_uri=https%3A%2F%2Fclient.example%2Fcb",
            client.id
        ))
        .await;
    assert_eq!(page.status, 503);
    assert_eq!(page.location(), None);
    assert_eq!(page.header("retry-after").as_deref(), Some("1"));
    assert!(page.body.contains("temporarily_unavailable"));

    app.restart_token_service().await;
    assert!(
        tokens_again_within_5_s(&app, &client).await,
        "auth-web reconnects to the returning token-service by itself"
    );
}

/// The all-in-one's path: auth-web reaches token-service over a Unix socket (mode 0600). The
/// token endpoint and bearer validation work over it, a stopped token-service removes the
/// socket and gets the same 503, and a restarted one is reached again.
async fn over_a_unix_socket_auth_web_serves_tokens_and_recovers_from_a_restart(backend: Backend) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut app = TestApp::spawn_over_unix_socket(backend).await;
    let socket = app.socket().expect("a socket").to_owned();
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "only its owner connects"
    );

    let client = app.default_client().await;
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(app.token_basic(&client, &cc).await.status(), 200);
    app.create_user("jane", "sekret-password").await;
    let tokens = app.password_grant(&client, "jane", "sekret-password").await;
    let (status, user) = app.api_user(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, user["username"].as_str()), (200, Some("jane")));

    app.stop_token_service().await;
    assert!(!socket.exists(), "the socket is removed on stop");
    let response = app.token_basic(&client, &cc).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");

    app.restart_token_service().await;
    assert!(
        tokens_again_within_5_s(&app, &client).await,
        "auth-web reconnects over the socket by itself"
    );
}

/// Whether client_credentials succeeds again within 5 s (50 tries, 100 ms apart).
async fn tokens_again_within_5_s(app: &TestApp, client: &TestClient) -> bool {
    for _ in 0..50 {
        if app
            .token_basic(client, &[("grant_type", "client_credentials")])
            .await
            .status()
            == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
