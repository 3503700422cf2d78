//! The example resource server (`examples/resource-server`) in front of a running Doorward,
//! in both of its modes: offline against the JWK Set, and online through
//! `TokenValidation.Validate`.

use actix_web::dev::ServerHandle;
use doorward_example_resource_server::{Config, Mode, start};
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    jwks_mode_accepts_real_tokens_and_refuses_the_rest,
    grpc_mode_accepts_real_tokens_and_refuses_the_rest,
    grpc_mode_with_a_wrong_secret_answers_503_and_logs_an_error,
);

/// The example server, stopped when the test ends.
struct ResourceServer {
    base: String,
    handle: ServerHandle,
    http: reqwest::Client,
}

impl ResourceServer {
    async fn start(config: Config) -> Self {
        let (addr, handle) = start(config).await.unwrap();
        Self {
            base: format!("http://{addr}"),
            handle,
            http: reqwest::Client::new(),
        }
    }

    /// `GET path` with `authorization` (if any): status, `WWW-Authenticate`, JSON body.
    async fn get(&self, path: &str, authorization: Option<&str>) -> (u16, String, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            challenge,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A user, and two of their tokens: one with `read_user`, one with only `api`.
struct Tokens {
    user_id: i64,
    client: TestClient,
    read_user: String,
    api_only: String,
}

async fn tokens(app: &TestApp) -> Tokens {
    let user_id = app.create_user("jane", "correct horse battery").await;
    let client = app.create_client("api read_user", true, true).await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "jane"),
            ("password", "correct horse battery"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
            ("scope", "read_user"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read_user");
    let read_user = body["access_token"].as_str().unwrap().to_owned();
    // No scope asked: the default, `api`.
    let body = app
        .password_grant(&client, "jane", "correct horse battery")
        .await;
    assert_eq!(body["scope"], "api");
    let api_only = body["access_token"].as_str().unwrap().to_owned();
    Tokens {
        user_id,
        client,
        read_user,
        api_only,
    }
}

fn base_config(mode: Mode) -> Config {
    let mut config = Config::new(mode);
    config.listen = "127.0.0.1:0".into();
    config.workers = 1;
    config
}

fn jwks_config(app: &TestApp) -> Config {
    let mut config = base_config(Mode::Jwks);
    config.issuer = app.config.issuer().into();
    // The tests' issuer is the configured public URL, not auth-web's random port.
    config.jwks_url = Some(app.url("/oauth/discovery/keys"));
    config
}

fn grpc_config(app: &TestApp, resource_server: &TestClient) -> Config {
    let mut config = base_config(Mode::Grpc);
    config.token_service = app.grpc_url();
    config.client_id = resource_server.id.clone();
    config.client_secret = resource_server.secret.clone();
    config
}

/// The resource server's own application: confidential, no user-facing grant needed.
async fn resource_server_app(app: &TestApp) -> TestClient {
    app.create_client_with_grants("api", true, "client_credentials")
        .await
}

/// The cases both modes must answer alike.
async fn check_the_contract(server: &ResourceServer, tokens: &Tokens) {
    let (status, _, body) = server.get("/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");

    let bearer = format!("Bearer {}", tokens.read_user);
    let (status, challenge, body) = server.get("/api/whoami", Some(&bearer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(challenge, "");
    assert_eq!(body["sub"], tokens.user_id.to_string());
    assert_eq!(body["client_id"], tokens.client.id.as_str());
    assert_eq!(body["scopes"], serde_json::json!(["read_user"]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expires_at = body["expires_at"].as_i64().unwrap();
    assert!(expires_at > now && expires_at <= now + 2 * 3600 + 5);

    // The scheme is case-insensitive (RFC 7235 §2.1).
    let lower = format!("bearer {}", tokens.read_user);
    assert_eq!(server.get("/api/whoami", Some(&lower)).await.0, 200);

    // No token at all: a bare challenge.
    for authorization in [None, Some("Basic dXNlcjpwYXNz")] {
        let (status, challenge, _) = server.get("/api/whoami", authorization).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(challenge, "Bearer realm=\"example\"", "{authorization:?}");
    }

    // A token that is not one.
    for authorization in [
        "Bearer garbage",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer a b",
        "Bearer",
    ] {
        let (status, challenge, body) = server.get("/api/whoami", Some(authorization)).await;
        assert_eq!(status, 401, "{authorization}");
        assert_eq!(
            challenge, "Bearer realm=\"example\", error=\"invalid_token\"",
            "{authorization}"
        );
        assert_eq!(body["error"], "invalid_token");
    }
    // A real token, one character changed in its signature.
    let mut tampered = tokens.read_user.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, challenge, _) = server
        .get("/api/whoami", Some(&format!("Bearer {tampered}")))
        .await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""));

    // A valid token without `read_user`.
    let bearer = format!("Bearer {}", tokens.api_only);
    let (status, challenge, body) = server.get("/api/whoami", Some(&bearer)).await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        "Bearer realm=\"example\", error=\"insufficient_scope\", scope=\"read_user\""
    );
    assert_eq!(body["error"], "insufficient_scope");

    // Unknown paths are JSON 404s, not the protected resource.
    assert_eq!(server.get("/api/other", None).await.0, 404);

    // The tokens never reach the log.
    let logs = doorward_tests::logs::captured();
    assert!(!logs.contains(&tokens.read_user));
    assert!(!logs.contains(&tokens.api_only));
}

async fn jwks_mode_accepts_real_tokens_and_refuses_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = tokens(&app).await;
    let server = ResourceServer::start(jwks_config(&app)).await;
    check_the_contract(&server, &tokens).await;

    // A token of another issuer (the same keys, a different `iss`) is refused: here, the
    // server expects another issuer.
    let mut config = jwks_config(&app);
    config.issuer = "https://elsewhere.example".into();
    let elsewhere = ResourceServer::start(config).await;
    let bearer = format!("Bearer {}", tokens.read_user);
    assert_eq!(elsewhere.get("/api/whoami", Some(&bearer)).await.0, 401);

    // Doorward unreachable and no keys ever fetched: not the caller's fault.
    let mut config = jwks_config(&app);
    config.jwks_url = Some("http://127.0.0.1:9/oauth/discovery/keys".into());
    let cut_off = ResourceServer::start(config).await;
    let (status, challenge, body) = cut_off.get("/api/whoami", Some(&bearer)).await;
    assert_eq!(status, 503);
    assert_eq!(challenge, "");
    assert_eq!(body["error"], "temporarily_unavailable");
}

async fn grpc_mode_accepts_real_tokens_and_refuses_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = tokens(&app).await;
    let own = resource_server_app(&app).await;
    let server = ResourceServer::start(grpc_config(&app, &own)).await;
    check_the_contract(&server, &tokens).await;

    // A revoked token is refused (Doorward documents a bound of a few seconds).
    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&tokens.client.id, Some(&tokens.client.secret))
        .form(&[("token", tokens.read_user.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bearer = format!("Bearer {}", tokens.read_user);
    let mut status = 0;
    for _ in 0..100 {
        status = server.get("/api/whoami", Some(&bearer)).await.0;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "a revoked token still works after 10 s");

    // token-service down: 503.
    let mut app = app;
    app.stop_token_service().await;
    let (status, _, body) = server.get("/api/whoami", Some(&bearer)).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "temporarily_unavailable");
}

async fn grpc_mode_with_a_wrong_secret_answers_503_and_logs_an_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = tokens(&app).await;
    let mut own = resource_server_app(&app).await;
    own.secret = format!("{}x", own.secret);
    let server = ResourceServer::start(grpc_config(&app, &own)).await;

    // The caller's token is fine; the resource server is misconfigured.
    let bearer = format!("Bearer {}", tokens.read_user);
    let (status, challenge, body) = server.get("/api/whoami", Some(&bearer)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(challenge, "");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        doorward_tests::logs::captured()
            .contains("token-service refused this resource server's credentials")
    );

    // No token at all is still the caller's problem: no call is made.
    assert_eq!(server.get("/api/whoami", None).await.0, 401);
}
