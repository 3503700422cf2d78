//! `TokenValidation.Validate` as a resource server calls it: over real gRPC, authenticated
//! with its application's credentials; answers for good, expired, revoked and foreign
//! tokens; and revocation reaching every validator within the cache bound (SEC-IR-04).
//! Two token-service processes on one PostgreSQL are in `token-service/tests/cli.rs`.

use base64::Engine;
use doorward_proto::v1 as pb;
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;
use tonic::Code;

both_backends!(
    validate_answers_an_authenticated_resource_server,
    validate_refuses_callers_without_valid_credentials,
    sec_ir_04_revocation_reaches_every_validator,
    blocked_users_and_revoked_families_fail_validation,
    a_revoked_signing_key_fails_its_tokens_at_once,
    sec_jw_04_an_id_token_fails_grpc_validation,
    a_revocation_here_applies_at_once_and_one_elsewhere_within_the_bound,
);

fn basic(client: &TestClient) -> String {
    let pair = format!("{}:{}", client.id, client.secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn validate_as(
    app: &TestApp,
    authorization: Option<&str>,
    token: &str,
    required: &[&str],
) -> Result<pb::ValidateResponse, tonic::Status> {
    let mut client = pb::token_validation_client::TokenValidationClient::connect(app.grpc_url())
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::ValidateRequest {
        token: token.into(),
        required_scopes: required.iter().map(|s| s.to_string()).collect(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    client.validate(request).await.map(|r| r.into_inner())
}

async fn validate(
    app: &TestApp,
    caller: &TestClient,
    token: &str,
    required: &[&str],
) -> pb::ValidateResponse {
    validate_as(app, Some(&basic(caller)), token, required)
        .await
        .expect("an authenticated caller gets an answer")
}

/// A user token with `openid read_user api` from the password grant.
async fn user_tokens(app: &TestApp, client: &TestClient) -> Value {
    app.password_grant_scoped(client, "jane", "sekret-password", "openid read_user api")
        .await
}

async fn setup(backend: Backend) -> (TestApp, TestClient, TestClient, i64) {
    let app = TestApp::spawn(backend).await;
    let user_id = app.create_user("jane", "sekret-password").await;
    let client = app.create_client("openid read_user api", true, true).await;
    // The resource server's own application: it only needs credentials.
    let resource_server = app.create_client("read_user", true, false).await;
    (app, client, resource_server, user_id)
}

async fn validate_answers_an_authenticated_resource_server(backend: Backend) {
    let (app, client, rs, user_id) = setup(backend).await;
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();

    let answer = validate(&app, &rs, access, &["read_user"]).await;
    assert!(answer.active, "{answer:?}");
    assert_eq!(answer.subject, user_id.to_string());
    assert_eq!(answer.user_id, Some(user_id));
    assert_eq!(answer.client_id, client.id);
    assert_eq!(answer.scopes, ["openid", "read_user", "api"]);
    assert_eq!(answer.expires_at - answer.issued_at, 7200);
    assert_eq!(answer.inactive_reason, "");
    // Every required scope must be granted.
    let answer = validate(&app, &rs, access, &["read_user", "sudo"]).await;
    assert!(!answer.active);
    assert_eq!(answer.inactive_reason, "insufficient_scope");
    assert_eq!(answer.subject, "", "nothing about an inactive token");
    // Twice in a row (the second from the cache): the same answer.
    let again = validate(&app, &rs, access, &[]).await;
    assert!(again.active);
    // A token that is not ours, or not a token.
    for bad in ["", "garbage", "a.b.c", &"x".repeat(10_000)] {
        let answer = validate(&app, &rs, bad, &[]).await;
        assert!(!answer.active);
        assert_eq!(answer.inactive_reason, "invalid");
    }
    // A client acting for itself.
    let response = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    let own: Value = response.json().await.unwrap();
    let answer = validate(&app, &rs, own["access_token"].as_str().unwrap(), &[]).await;
    assert!(answer.active);
    assert_eq!(answer.subject, format!("client:{}", client.id));
    assert_eq!(answer.user_id, None);
    // Expiry, by the injected clock (the cached answer does not outlive the token).
    app.clock.advance(7200);
    let answer = validate(&app, &rs, access, &[]).await;
    assert!(!answer.active);
    assert_eq!(answer.inactive_reason, "expired");
}

async fn validate_refuses_callers_without_valid_credentials(backend: Backend) {
    let (app, client, rs, _) = setup(backend).await;
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let public = app.create_client("read_user", false, false).await;
    let wrong_secret = TestClient {
        id: rs.id.clone(),
        secret: "dwcs-wrong".into(),
    };
    let unknown = TestClient {
        id: "unknown".into(),
        secret: rs.secret.clone(),
    };
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases = [
        None,
        Some(basic(&wrong_secret)),
        Some(basic(&unknown)),
        // A public client has no secret to prove who it is.
        Some(basic(&public)),
        Some(format!("Basic {}", encode(&public.id))),
        Some("Basic !!!".to_owned()),
        Some(format!("Bearer {access}")),
        Some("Bearer some-service-token".to_owned()),
        Some(rs.secret.clone()),
    ];
    for case in &cases {
        let refused = validate_as(&app, case.as_deref(), access, &[])
            .await
            .expect_err("a wrong caller gets no answer");
        assert_eq!(refused.code(), Code::Unauthenticated, "{case:?}");
    }
    // The right credentials still work afterwards.
    assert!(validate(&app, &rs, access, &[]).await.active);
}

async fn post_form(
    app: &TestApp,
    client: &TestClient,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .basic_auth(&client.id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn bearer_status(app: &TestApp, path: &str, token: &str) -> u16 {
    app.http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sec_ir_04_revocation_reaches_every_validator(backend: Backend) {
    let (app, client, rs, _) = setup(backend).await;
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    // Every validator accepts the token (and gRPC validation caches it).
    assert!(validate(&app, &rs, access, &[]).await.active);
    assert_eq!(bearer_status(&app, "/oauth/userinfo", access).await, 200);
    assert_eq!(bearer_status(&app, "/api/v4/user", access).await, 200);
    assert_eq!(bearer_status(&app, "/oauth/token/info", access).await, 200);

    let (status, _) = post_form(&app, &client, "/oauth/revoke", &[("token", access)]).await;
    assert_eq!(status, 200);
    // After the documented bound (tokens.validation_cache_seconds) every validator refuses.
    app.clock
        .advance(app.config.tokens.validation_cache_seconds);
    let answer = validate(&app, &rs, access, &[]).await;
    assert!(!answer.active);
    assert_eq!(answer.inactive_reason, "revoked");
    let (status, body) = post_form(&app, &client, "/oauth/introspect", &[("token", access)]).await;
    assert_eq!((status, body), (200, serde_json::json!({"active": false})));
    assert_eq!(bearer_status(&app, "/oauth/userinfo", access).await, 401);
    assert_eq!(bearer_status(&app, "/api/v4/user", access).await, 401);
    assert_eq!(bearer_status(&app, "/oauth/token/info", access).await, 401);
    // And the revocation is remembered: still refused later.
    app.clock.advance(60);
    assert_eq!(
        validate(&app, &rs, access, &[]).await.inactive_reason,
        "revoked"
    );
}

/// Every bearer check (gRPC validation, `/api/v4/user`, userinfo, token info,
/// introspection) goes through one cache of checked tokens. A revocation made through this
/// process empties it at once; one written by another process (here: straight into the
/// database) is seen once the cached check is `tokens.validation_cache_seconds` old.
async fn a_revocation_here_applies_at_once_and_one_elsewhere_within_the_bound(backend: Backend) {
    let (app, client, rs, _) = setup(backend).await;
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(validate(&app, &rs, access, &[]).await.active);
    assert_eq!(bearer_status(&app, "/api/v4/user", access).await, 200);
    let (status, _) = post_form(&app, &client, "/oauth/revoke", &[("token", access)]).await;
    assert_eq!(status, 200);
    // No clock change: the revocation was made here.
    assert_eq!(
        validate(&app, &rs, access, &[]).await.inactive_reason,
        "revoked"
    );
    assert_eq!(bearer_status(&app, "/api/v4/user", access).await, 401);
    assert_eq!(bearer_status(&app, "/oauth/userinfo", access).await, 401);
    assert_eq!(bearer_status(&app, "/oauth/token/info", access).await, 401);
    let (_, body) = post_form(&app, &client, "/oauth/introspect", &[("token", access)]).await;
    assert_eq!(body, serde_json::json!({"active": false}));

    // Another replica revokes: this one learns it from the row, within the bound.
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(bearer_status(&app, "/api/v4/user", access).await, 200);
    let (_, body) = post_form(&app, &client, "/oauth/introspect", &[("token", access)]).await;
    assert_eq!(body["active"], true);
    app.state
        .db(|conn| {
            use diesel::RunQueryDsl;
            Ok::<_, token_service::error::ServiceError>(
                diesel::sql_query(
                    "UPDATE access_tokens SET revoked_at = 1 WHERE revoked_at IS NULL",
                )
                .execute(conn)?,
            )
        })
        .await
        .unwrap();
    // (Until then the cached check may still answer; other tests in this process move
    // the change count too, so whether it does is not asserted.)
    app.clock
        .advance(app.config.tokens.validation_cache_seconds);
    assert_eq!(bearer_status(&app, "/api/v4/user", access).await, 401);
    let (_, body) = post_form(&app, &client, "/oauth/introspect", &[("token", access)]).await;
    assert_eq!(body, serde_json::json!({"active": false}));
    assert_eq!(
        validate(&app, &rs, access, &[]).await.inactive_reason,
        "revoked"
    );
}

async fn blocked_users_and_revoked_families_fail_validation(backend: Backend) {
    let (app, client, rs, user_id) = setup(backend).await;
    let ttl = app.config.tokens.validation_cache_seconds;
    // Revoking the refresh token takes its access token with it (one family).
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(validate(&app, &rs, access, &[]).await.active);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = post_form(&app, &client, "/oauth/revoke", &[("token", refresh)]).await;
    assert_eq!(status, 200);
    app.clock.advance(ttl);
    assert_eq!(
        validate(&app, &rs, access, &[]).await.inactive_reason,
        "revoked"
    );
    // A blocked user's tokens fail too.
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(validate(&app, &rs, access, &[]).await.active);
    app.block_user(user_id).await;
    app.clock.advance(ttl);
    let answer = validate(&app, &rs, access, &[]).await;
    assert!(!answer.active);
    assert_eq!(answer.inactive_reason, "revoked");
}

async fn a_revoked_signing_key_fails_its_tokens_at_once(backend: Backend) {
    let (app, client, rs, _) = setup(backend).await;
    let tokens = user_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(validate(&app, &rs, &access, &[]).await.active);
    let kid = app.state.keys.signing_kid();
    let now = app.state.now();
    app.state
        .db(move |conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::keys::revoke(
                conn, &kid, now,
            )?)
        })
        .await
        .unwrap()
        .expect("a replacement key, since the revoked one was signing");
    // Within the key reload interval (1 s in tests), without waiting for the cache bound.
    let mut refused = false;
    for _ in 0..50 {
        if !validate(&app, &rs, &access, &[]).await.active {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "a token of a revoked key fails");
    assert_eq!(app.api_user(&access).await.0, 401);
    // New tokens, signed by the replacement, work.
    let fresh = user_tokens(&app, &client).await;
    assert!(
        validate(&app, &rs, fresh["access_token"].as_str().unwrap(), &[])
            .await
            .active
    );
}

async fn sec_jw_04_an_id_token_fails_grpc_validation(backend: Backend) {
    let (app, client, rs, _) = setup(backend).await;
    let tokens = user_tokens(&app, &client).await;
    let id_token = tokens["id_token"]
        .as_str()
        .expect("an id_token with openid");
    let answer = validate(&app, &rs, id_token, &[]).await;
    assert!(!answer.active);
    assert_eq!(answer.inactive_reason, "invalid");
}
