//! Every bad input at `/oauth/token` gets the RFC 6749 §5.2 error with the right status and
//! a `WWW-Authenticate` header; nothing panics, nothing answers 500, nothing is stored.

use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    malformed_requests_get_invalid_request,
    sec_tk_01_one_client_authentication_method_post_only_no_secrets_in_url,
    sec_ds_01_oversized_bodies_get_413_and_repeated_parameters_invalid_request,
    client_failures_get_invalid_client_401,
    scope_failures_get_invalid_scope,
    sec_tk_06_grant_types_are_restricted_per_client,
    sec_tk_07_client_credentials_tokens_cannot_pass_as_a_user,
    sec_tk_08_password_grant_refuses_bad_credentials_generically_and_throttles,
    sec_tk_09_blocked_users_get_no_tokens,
    sec_ds_02_overlong_passwords_are_refused_fast,
    nul_bytes_and_repeated_json_members_are_invalid_requests,
    sec_rl_03_client_secret_guessing_is_throttled,
    sec_ds_02_a_full_hashing_queue_answers_503_with_retry_after,
);

async fn sec_rl_03_client_secret_guessing_is_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let wrong = TestClient {
        id: client.id.clone(),
        secret: "dwcs-guess".into(),
    };
    let cc = [("grant_type", "client_credentials")];
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(app.token_basic(&wrong, &cc).await.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    let response = app.token_basic(&client, &cc).await;
    assert_eq!(
        response.status(),
        429,
        "refused before comparing, even the right secret"
    );
    assert!(response.headers().contains_key("retry-after"));
    app.clock.advance(301);
    assert_eq!(app.token_basic(&client, &cc).await.status(), 200);
    // Successes do not add up: a busy client is never throttled, even with many requests
    // in flight at once.
    let burst = futures::future::join_all((0..50).map(|_| app.token_basic(&client, &cc))).await;
    assert!(burst.iter().all(|r| r.status() == 200));
}

/// Asserts an OAuth error response and returns its body.
async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    let headers = response.headers().clone();
    assert!(
        headers.contains_key("www-authenticate"),
        "{code}: WWW-Authenticate missing"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
}

async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn malformed_requests_get_invalid_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;

    let body = assert_error(app.token_basic(&client, &[]).await, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "Missing required parameter: grant_type."
    );
    assert_error(
        app.token_basic(&client, &[("grant_type", "implicit")])
            .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    let form = "application/x-www-form-urlencoded";
    assert_error(
        post_raw(&app, form, vec![0xff, 0xfe, 0x00, 0x80]).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        post_raw(&app, "application/json", b"{not json".to_vec()).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        post_raw(&app, "application/json", b"[1,2,3]".to_vec()).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        post_raw(
            &app,
            "application/json",
            br#"{"grant_type":{"nested":1}}"#.to_vec(),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        post_raw(&app, "text/plain", b"grant_type=password".to_vec()).await,
        400,
        "invalid_request",
    )
    .await;

    // Missing parameters of each grant.
    let body = assert_error(
        app.token_basic(&client, &[("grant_type", "refresh_token")])
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "Missing required parameter: refresh_token."
    );
    let body = assert_error(
        app.token_basic(&client, &[("grant_type", "password"), ("password", "x")])
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "Missing required parameter: username."
    );
    assert_eq!(app.count("access_tokens").await, 0);
}

async fn sec_tk_01_one_client_authentication_method_post_only_no_secrets_in_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.default_client().await;
    let b = app.default_client().await;

    // (1) Basic and a body secret at once.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&a.id, Some(&a.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &a.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_request").await;
    // (2) Basic for A, body client_id of B.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&a.id, Some(&a.secret))
        .form(&[("grant_type", "client_credentials"), ("client_id", &b.id)])
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_request").await;
    // (3) A wrong secret via Basic: 401 with a Basic challenge (RFC 6749 §5.2).
    let wrong = TestClient {
        id: a.id.clone(),
        secret: "dwcs-wrong".into(),
    };
    let response = app
        .token_basic(&wrong, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"Doorward\""
    );
    assert_error(response, 401, "invalid_client").await;
    // (4) The secret in the query string.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .query(&[("client_secret", &a.secret)])
        .form(&[("grant_type", "client_credentials"), ("client_id", &a.id)])
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_request").await;
    // GET is not the token endpoint.
    let response = app.http.get(app.url("/oauth/token")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    // Basic with the same client_id in the body is fine (many libraries send both).
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&a.id, Some(&a.secret))
        .form(&[("grant_type", "client_credentials"), ("client_id", &a.id)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.count("access_tokens").await,
        1,
        "only the last request issued a token"
    );
}

async fn sec_ds_01_oversized_bodies_get_413_and_repeated_parameters_invalid_request(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let huge = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(1024 * 1024)
    );
    let response = post_raw(&app, "application/x-www-form-urlencoded", huge.into_bytes()).await;
    assert_error(response, 413, "invalid_request").await;
    let just_over = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    );
    let response = post_raw(
        &app,
        "application/x-www-form-urlencoded",
        just_over.into_bytes(),
    )
    .await;
    assert_error(response, 413, "invalid_request").await;

    let body = format!(
        "grant_type=client_credentials&client_id={}&client_id=other&client_secret={}",
        client.id, client.secret
    );
    let response = post_raw(&app, "application/x-www-form-urlencoded", body.into_bytes()).await;
    assert_error(response, 400, "invalid_request").await;
    let long_scope = "api ".repeat(400);
    let response = app
        .token_basic(
            &client,
            &[("grant_type", "client_credentials"), ("scope", &long_scope)],
        )
        .await;
    assert_error(response, 400, "invalid_request").await;
    assert_eq!(app.count("access_tokens").await, 0);
}

async fn client_failures_get_invalid_client_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let cc = ("grant_type", "client_credentials");

    // Unknown client, wrong secret (form), no client at all.
    let response = app
        .token(&[cc, ("client_id", "nope"), ("client_secret", "x")])
        .await;
    assert_error(response, 401, "invalid_client").await;
    let response = app
        .token(&[cc, ("client_id", &client.id), ("client_secret", "wrong")])
        .await;
    let headers = response.headers().clone();
    let body = assert_error(response, 401, "invalid_client").await;
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"Doorward\", error=\"invalid_client\"")
    );
    assert!(body.get("access_token").is_none());
    assert_error(app.token(&[cc]).await, 401, "invalid_client").await;
    // A confidential client that leaves its secret out.
    assert_error(
        app.token(&[cc, ("client_id", &client.id)]).await,
        401,
        "invalid_client",
    )
    .await;

    // Basic headers that are not base64, have no colon, or use another scheme.
    for header in [
        "Basic %%%not-base64%%%".to_owned(),
        format!("Basic {}", base64_encode("no-colon-here")),
        "Basic".to_owned(),
        "Digest username=x".to_owned(),
    ] {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .header("authorization", header.clone())
            .form(&[cc])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"Doorward\"",
            "{header}"
        );
        assert_error(response, 401, "invalid_client").await;
    }
    assert_eq!(app.count("access_tokens").await, 0);
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn scope_failures_get_invalid_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    for scope in ["bogus", "api sudo", "api\tread_user", "api \"x\""] {
        let response = app
            .token_basic(
                &client,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_error(response, 400, "invalid_scope").await;
    }
    // An application registered without the default scope must ask for one.
    let reader = app.create_client("read_user", true, true).await;
    let response = app
        .token_basic(&reader, &[("grant_type", "client_credentials")])
        .await;
    assert_error(response, 400, "invalid_scope").await;
    assert_eq!(app.count("access_tokens").await, 0);
}

async fn sec_tk_06_grant_types_are_restricted_per_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let barred = app.create_client("api", true, false).await;
    let public = app.create_client("api", false, true).await;
    let password = [
        ("grant_type", "password"),
        ("username", "jane"),
        ("password", "sekret-password"),
    ];

    // The application barred from the password grant.
    let response = app.token_basic(&barred, &password).await;
    assert_error(response, 401, "unauthorized_client").await;
    // A public client may use neither client_credentials nor password.
    let mut form = password.to_vec();
    form.push(("client_id", &public.id));
    assert_error(app.token(&form).await, 401, "unauthorized_client").await;
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &public.id),
        ])
        .await;
    assert_error(response, 401, "unauthorized_client").await;
    // A client registered for the code flow only gets none of the others, and a client
    // without refresh_token gets no refresh token.
    let code_only = app
        .create_client_with_grants("api", true, "authorization_code")
        .await;
    for form in [
        password.to_vec(),
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "whatever"),
        ],
    ] {
        assert_error(
            app.token_basic(&code_only, &form).await,
            401,
            "unauthorized_client",
        )
        .await;
    }
    let no_refresh = app.create_client_with_grants("api", true, "password").await;
    let response = app.token_basic(&no_refresh, &password).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    let issued = app.count("access_tokens").await;
    assert_eq!(issued, 1);

    // The device grant for a client not registered for it, and an unknown grant.
    let device = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", "whatever"),
    ];
    let response = app.token_basic(&code_only, &device).await;
    assert_error(response, 401, "unauthorized_client").await;
    let response = app.token_basic(&barred, &[("grant_type", "bogus")]).await;
    assert_error(response, 400, "unsupported_grant_type").await;
    assert_eq!(
        app.count("access_tokens").await,
        1,
        "only the allowed password grant issued"
    );
}

async fn sec_tk_07_client_credentials_tokens_cannot_pass_as_a_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let response = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    let tokens: Value = response.json().await.unwrap();
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none());
    let access = tokens["access_token"].as_str().unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(access)
        .unwrap()
        .claims;
    let sub = claims["sub"].as_str().unwrap();
    assert_eq!(sub, format!("client:{}", client.id));
    assert!(sub.parse::<i64>().is_err());
    let (status, body) = app.api_user(access).await;
    assert_eq!(status, 401, "{body}");
}

async fn sec_tk_08_password_grant_refuses_bad_credentials_generically_and_throttles(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let attempt = |password: &'static str, username: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            app.token_basic(
                client,
                &[
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await
        }
    };
    // Unknown user and wrong password look the same.
    let unknown = assert_error(
        attempt("whatever-pass", "nobody").await,
        400,
        "invalid_grant",
    )
    .await;
    let wrong = assert_error(
        attempt("wrong-password", "jane").await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(unknown, wrong);
    // Five failures per account and IP; the sixth attempt is refused before any hashing,
    // even with the right password, with 429 and Retry-After.
    for _ in 0..4 {
        assert_error(
            attempt("wrong-password", "jane").await,
            400,
            "invalid_grant",
        )
        .await;
    }
    let response = attempt("sekret-password", "jane").await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 429, "invalid_grant").await;
    // When the window has passed, the right password works again.
    app.clock.advance(301);
    assert_eq!(attempt("sekret-password", "jane").await.status(), 200);
}

async fn sec_tk_09_blocked_users_get_no_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let tokens = app.password_grant(&client, "jane", "sekret-password").await;
    app.block_user(id).await;
    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "sekret-password"),
            ],
        )
        .await;
    assert_error(response, 400, "invalid_grant").await;
    let (status, body) = app
        .refresh(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The API refuses the blocked user's access token too (checked on every request).
    let (status, _) = app.api_user(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
}

async fn sec_ds_02_overlong_passwords_are_refused_fast(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    // Over the 4 KiB parameter cap: refused by auth-web before token-service sees it.
    let long = "x".repeat(5000);
    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", &long),
            ],
        )
        .await;
    assert_error(response, 400, "invalid_request").await;
    // Over the 1 KiB password cap: refused by token-service without hashing.
    let long = "x".repeat(2000);
    let response = app
        .token_basic(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", &long),
            ],
        )
        .await;
    assert_error(response, 400, "invalid_grant").await;
}

async fn nul_bytes_and_repeated_json_members_are_invalid_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    // PostgreSQL text cannot hold NUL: this must be a 400, never a 500.
    let body = format!(
        "grant_type=client_credentials&client_id=a%00b&client_secret={}",
        client.secret
    );
    let response = post_raw(&app, "application/x-www-form-urlencoded", body.into_bytes()).await;
    assert_error(response, 400, "invalid_request").await;
    let body = format!(
        r#"{{"grant_type":"client_credentials","client_id":"{}","client_id":"other","client_secret":"{}"}}"#,
        client.id, client.secret
    );
    let response = post_raw(&app, "application/json", body.into_bytes()).await;
    assert_error(response, 400, "invalid_request").await;
    // NUL reaching token-service through gRPC directly is refused as an unknown client.
    let mut tokens = doorward_proto::v1::token_service_client::TokenServiceClient::new(
        app.internal_channel().await,
    );
    let response = tokens
        .exchange(doorward_proto::v1::ExchangeRequest {
            grant_type: "client_credentials".into(),
            client: Some(doorward_proto::v1::ClientAuthentication {
                client_id: "a\0b".into(),
                client_secret: Some("x".into()),
                method: 3,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        response.result,
        Some(doorward_proto::v1::exchange_response::Result::Error(_))
    ));
    assert_eq!(app.count("access_tokens").await, 0);
}

async fn sec_ds_02_a_full_hashing_queue_answers_503_with_retry_after(backend: Backend) {
    // One hashing thread and no queue: a single hash in progress fills the pool.
    let app = TestApp::spawn_with(backend, |config| {
        config.passwords.max_concurrent_hashes = Some(1);
        config.passwords.max_queued_hashes = 0;
    })
    .await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let password = [
        ("grant_type", "password"),
        ("username", "jane"),
        ("password", "sekret-password"),
    ];
    // A hash that holds its admission ticket until `busy` is polled to the end or dropped:
    // polled once (the ticket is taken on the first poll), then left alone.
    let secret = doorward_shared::Secret::new("another-password");
    let busy = app.state.hasher.hash(&secret);
    tokio::pin!(busy);
    let first_poll = tokio::time::timeout(std::time::Duration::ZERO, &mut busy).await;
    assert!(first_poll.is_err(), "the hash is still running");

    // RFC 6749 §5.2: 503 `temporarily_unavailable`, with Retry-After so that clients wait.
    // More times than the sign-in throttle allows attempts (5 per account and IP): the
    // attempts that were never checked are not counted against the user.
    for _ in 0..6 {
        let response = app.token_basic(&client, &password).await;
        assert_eq!(
            response.headers().get("retry-after").unwrap(),
            "1",
            "Retry-After"
        );
        let body = assert_error(response, 503, "temporarily_unavailable").await;
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["error", "error_description"]
        );
    }
    // The sign-in form says the service is busy, not that the password is wrong.
    let browser = doorward_tests::browser::Browser::new(&app.base);
    let page = browser
        .sign_in("/users/sign_in", "jane", "sekret-password")
        .await;
    assert_eq!(page.status, 503);
    assert_eq!(page.header("retry-after").as_deref(), Some("1"));
    assert!(!page.body.contains("Invalid username"), "{}", page.body);

    // Once the hash is done, the same request succeeds, and sign-in too.
    busy.await.unwrap();
    assert_eq!(app.token_basic(&client, &password).await.status(), 200);
    let page = browser
        .sign_in("/users/sign_in", "jane", "sekret-password")
        .await;
    assert_eq!(page.status, 303, "signed in");
}
