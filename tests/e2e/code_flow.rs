//! The authorization-code flow through token-service's `Authorizations` API (the calls the
//! consent pages make) and the token endpoint: the check order of the authorization
//! request, consent skipping, code exchange, replay, PKCE, and authorization revocation.

use doorward_proto::v1 as pb;
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    confidential_client_code_flow_end_to_end,
    public_client_code_flow_with_pkce_s256,
    sec_az_01_unknown_client_or_unregistered_redirect_uri_is_never_redirected,
    authorization_request_errors_follow_the_check_order,
    sec_sc_03_consent_is_skipped_only_for_trusted_or_already_granted_confidential_clients,
    sec_sc_03_earlier_consent_is_found_among_many_tokens_and_revoked_ones_do_not_count,
    sec_tk_03_replayed_code_revokes_issued_tokens,
    sec_tk_04_codes_are_consumed_atomically,
    sec_tk_05_code_bound_to_client_and_redirect_uri,
    sec_az_05_codes_are_strong_and_expire,
    sec_pk_02_verifier_without_stored_challenge_is_rejected,
    sec_pk_03_wrong_verifier_burns_the_code,
    sec_rt_07_revoking_an_authorization_kills_its_tokens,
    sec_tk_09_blocked_users_cannot_redeem_codes,
);

/// A change to an otherwise valid authorization request.
type Mutation = Box<dyn Fn(&mut pb::AuthorizationRequest)>;

const REDIRECT: &str = "https://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn request(client: &TestClient) -> pb::AuthorizationRequest {
    pb::AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: REDIRECT.into(),
        response_type: "code".into(),
        state: Some("xyz".into()),
        ..Default::default()
    }
}

fn with_pkce(mut r: pb::AuthorizationRequest) -> pb::AuthorizationRequest {
    r.code_challenge = Some(CHALLENGE.into());
    r.code_challenge_method = Some("S256".into());
    r
}

async fn pre_authorize(
    app: &TestApp,
    r: pb::AuthorizationRequest,
    user_id: Option<i64>,
) -> pb::pre_authorize_response::Result {
    app.authorizations()
        .await
        .pre_authorize(pb::PreAuthorizeRequest {
            request: Some(r),
            user_id,
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
}

/// The error of a refused request: (code, redirectable).
async fn refused(
    app: &TestApp,
    r: pb::AuthorizationRequest,
    user_id: Option<i64>,
) -> (String, bool) {
    match pre_authorize(app, r, user_id).await {
        pb::pre_authorize_response::Result::Error(e) => (e.error.unwrap().error, e.redirectable),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn issue_code(app: &TestApp, r: pb::AuthorizationRequest, user_id: i64) -> String {
    let response = app
        .authorizations()
        .await
        .issue_code(pb::IssueCodeRequest {
            request: Some(r),
            user_id,
            auth_time: app.state.now(),
        })
        .await
        .unwrap()
        .into_inner();
    match response.result.unwrap() {
        pb::issue_code_response::Result::Code(code) => code,
        pb::issue_code_response::Result::Error(e) => panic!("no code: {e:?}"),
    }
}

async fn exchange(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    form.extend_from_slice(extra);
    let response = if client.secret.is_empty() {
        form.push(("client_id", &client.id));
        app.token(&form).await
    } else {
        app.token_basic(client, &form).await
    };
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn confidential_client_code_flow_end_to_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let mut r = request(&client);
    r.scope = Some("read_user".into());
    match pre_authorize(&app, r.clone(), Some(user)).await {
        pb::pre_authorize_response::Result::Ok(ok) => {
            assert_eq!(ok.scopes, vec!["read_user".to_owned()]);
            assert!(!ok.skip_consent, "a first authorization asks for consent");
        }
        other => panic!("{other:?}"),
    }
    let code = issue_code(&app, r, user).await;
    assert!(code.len() >= 43);
    let (status, tokens) = exchange(&app, &client, &code, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "read_user");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(
        app.api_user(tokens["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let (status, _) = app
        .refresh(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
}

async fn public_client_code_flow_with_pkce_s256(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.create_client("api", false, false).await;
    // SEC-PK-01: a public client must send an S256 challenge.
    assert_eq!(
        refused(&app, request(&client), Some(user)).await,
        ("invalid_request".into(), true)
    );
    let mut plain = request(&client);
    plain.code_challenge = Some(VERIFIER.into());
    plain.code_challenge_method = Some("plain".into());
    assert_eq!(
        refused(&app, plain, Some(user)).await,
        ("invalid_request".into(), true)
    );
    let mut no_method = request(&client);
    no_method.code_challenge = Some(CHALLENGE.into());
    assert_eq!(
        refused(&app, no_method, Some(user)).await,
        ("invalid_request".into(), true)
    );
    // SEC-PK-04: a malformed challenge.
    let mut long = with_pkce(request(&client));
    long.code_challenge = Some("a".repeat(10_000));
    assert_eq!(
        refused(&app, long, Some(user)).await,
        ("invalid_request".into(), true)
    );

    let code = issue_code(&app, with_pkce(request(&client)), user).await;
    // SEC-PK-04: verifiers outside 43..128 unreserved characters are refused, never a 5xx.
    let (status, body) =
        exchange(&app, &client, &code, &[("code_verifier", &"a".repeat(42))]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for bad in ["a".repeat(129), format!("{}+", &VERIFIER[..42])] {
        let code = issue_code(&app, with_pkce(request(&client)), user).await;
        let (status, body) = exchange(&app, &client, &code, &[("code_verifier", &bad)]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{bad}"
        );
    }
    let code = issue_code(&app, with_pkce(request(&client)), user).await;
    let (status, tokens) = exchange(&app, &client, &code, &[("code_verifier", VERIFIER)]).await;
    assert_eq!(status, 200, "{tokens}");
    // A public client refreshes with its client_id alone.
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client.id),
        ])
        .await;
    assert_eq!(response.status(), 200);
}

async fn sec_az_01_unknown_client_or_unregistered_redirect_uri_is_never_redirected(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let unknown = TestClient {
        id: "nope".into(),
        secret: String::new(),
    };
    assert_eq!(
        refused(&app, request(&unknown), Some(user)).await,
        ("invalid_client".into(), false)
    );
    let mut evil = request(&client);
    evil.redirect_uri = "https://evil.example/cb".into();
    assert_eq!(
        refused(&app, evil.clone(), Some(user)).await,
        ("invalid_redirect_uri".into(), false)
    );
    evil.prompt = Some("none".into());
    assert_eq!(
        refused(&app, evil, None).await,
        ("invalid_redirect_uri".into(), false)
    );
    let mut missing = request(&client);
    missing.redirect_uri = String::new();
    assert_eq!(
        refused(&app, missing, Some(user)).await,
        ("invalid_redirect_uri".into(), false)
    );
}

async fn authorization_request_errors_follow_the_check_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = Some(app.create_user("jane", "sekret-password").await);
    let client = app.default_client().await;
    let mut r = request(&client);
    r.client_id = String::new();
    assert_eq!(
        refused(&app, r, user).await,
        ("invalid_request".into(), false)
    );
    let no_code_flow = app
        .create_client_with_grants("api", true, "client_credentials")
        .await;
    assert_eq!(
        refused(&app, request(&no_code_flow), user).await,
        ("unauthorized_client".into(), false)
    );

    let cases: Vec<(&str, Mutation)> = vec![
        (
            "invalid_request",
            Box::new(|r| r.response_type = String::new()),
        ),
        (
            "unsupported_response_type",
            Box::new(|r| r.response_type = "token".into()),
        ),
        (
            "unsupported_response_type",
            Box::new(|r| r.response_type = "code token".into()),
        ),
        (
            "unsupported_response_mode",
            Box::new(|r| r.response_mode = Some("fragment".into())),
        ),
        ("request_not_supported", Box::new(|r| r.has_request = true)),
        (
            "request_uri_not_supported",
            Box::new(|r| r.has_request_uri = true),
        ),
        ("invalid_scope", Box::new(|r| r.scope = Some("nope".into()))),
        (
            "invalid_scope",
            Box::new(|r| r.scope = Some("read_user api sudo".into())),
        ),
        (
            "invalid_scope",
            Box::new(|r| r.scope = Some("read_user\napi".into())),
        ),
        (
            "invalid_request",
            Box::new(|r| r.prompt = Some("none login".into())),
        ),
        (
            "invalid_request",
            Box::new(|r| r.prompt = Some("bogus".into())),
        ),
        (
            "invalid_request",
            Box::new(|r| r.state = Some("s".repeat(100_000))),
        ),
    ];
    for (expected, mutate) in cases {
        let mut r = request(&client);
        mutate(&mut r);
        assert_eq!(
            refused(&app, r, user).await,
            (expected.to_owned(), true),
            "{expected}"
        );
    }
}

async fn sec_sc_03_consent_is_skipped_only_for_trusted_or_already_granted_confidential_clients(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let skip = |result: pb::pre_authorize_response::Result| match result {
        pb::pre_authorize_response::Result::Ok(ok) => ok.skip_consent,
        other => panic!("{other:?}"),
    };
    assert!(!skip(
        pre_authorize(&app, request(&client), Some(user)).await
    ));
    // prompt=none can neither sign in nor ask for consent.
    let mut none = request(&client);
    none.prompt = Some("none".into());
    assert_eq!(
        refused(&app, none.clone(), None).await,
        ("login_required".into(), true)
    );
    assert_eq!(
        refused(&app, none.clone(), Some(user)).await,
        ("consent_required".into(), true)
    );
    // After a grant of the same scopes, a confidential client is not asked again…
    let code = issue_code(&app, request(&client), user).await;
    assert_eq!(exchange(&app, &client, &code, &[]).await.0, 200);
    assert!(skip(
        pre_authorize(&app, request(&client), Some(user)).await
    ));
    assert!(matches!(
        pre_authorize(&app, none, Some(user)).await,
        pb::pre_authorize_response::Result::Ok(_)
    ));
    // …unless it asks for more, or prompt=consent forces the page.
    let mut more = request(&client);
    more.scope = Some("api read_user".into());
    assert!(!skip(pre_authorize(&app, more, Some(user)).await));
    let mut consent = request(&client);
    consent.prompt = Some("consent".into());
    assert!(!skip(pre_authorize(&app, consent, Some(user)).await));
    // A public client is always asked.
    let public = app.create_client("api", false, false).await;
    let code = issue_code(&app, with_pkce(request(&public)), user).await;
    assert_eq!(
        exchange(&app, &public, &code, &[("code_verifier", VERIFIER)])
            .await
            .0,
        200
    );
    assert!(!skip(
        pre_authorize(&app, with_pkce(request(&public)), Some(user)).await
    ));
}

async fn sec_sc_03_earlier_consent_is_found_among_many_tokens_and_revoked_ones_do_not_count(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app
        .create_client("api read_user openid profile email", true, false)
        .await;
    let app_id = app
        .scalar(format!(
            "SELECT id AS n FROM applications WHERE uid = '{}'",
            client.id
        ))
        .await;
    // Many live tokens, none covering `api`, under scope strings that sort before it...
    let tokens = |first: i64, count: i64, scopes: &str, revoked: &str| {
        format!(
            "INSERT INTO access_tokens (jti, application_id, user_id, scopes, created_at, \
             expires_at, revoked_at) WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL \
             SELECT i + 1 FROM n WHERE i < {last}) SELECT 'many-' || i, {app_id}, {user}, \
             '{scopes}', i, i + 7200, {revoked} FROM n",
            last = first + count - 1
        )
    };
    let insert = |sql: String| async {
        app.state
            .db(move |conn| {
                use diesel::RunQueryDsl as _;
                diesel::sql_query(sql)
                    .execute(conn)
                    .map_err(token_service::error::ServiceError::from)
            })
            .await
            .unwrap()
    };
    insert(tokens(1, 500, "email", "NULL")).await;
    insert(tokens(501, 500, "email openid", "NULL")).await;
    insert(tokens(1001, 500, "openid profile", "NULL")).await;
    let mut api = request(&client);
    api.scope = Some("api".into());
    let skip = |result: pb::pre_authorize_response::Result| match result {
        pb::pre_authorize_response::Result::Ok(ok) => ok.skip_consent,
        other => panic!("{other:?}"),
    };
    assert!(!skip(pre_authorize(&app, api.clone(), Some(user)).await));
    // ...a revoked one that covers it does not count...
    insert(tokens(1501, 1, "api read_user", "1")).await;
    assert!(!skip(pre_authorize(&app, api.clone(), Some(user)).await));
    // ...one live token that covers it does, whatever its place among the others (here
    // after every other scope string); expired but unrevoked counts, as in doorkeeper.
    insert(tokens(1502, 1, "read_user api", "NULL")).await;
    assert!(skip(pre_authorize(&app, api.clone(), Some(user)).await));
    let mut both = api.clone();
    both.scope = Some("read_user api".into());
    assert!(skip(pre_authorize(&app, both, Some(user)).await));
    // Scopes no single token covers are not granted, even if the union would cover them.
    let mut union = api;
    union.scope = Some("api email".into());
    assert!(!skip(pre_authorize(&app, union, Some(user)).await));
    // Another user's tokens are not this user's consent.
    let other = app.create_user("john", "sekret-password").await;
    let mut api = request(&client);
    api.scope = Some("api".into());
    assert!(!skip(pre_authorize(&app, api, Some(other)).await));
}

async fn sec_tk_03_replayed_code_revokes_issued_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let code = issue_code(&app, request(&client), user).await;
    let (_, tokens) = exchange(&app, &client, &code, &[]).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // Even a refreshed successor descends from the code.
    let (_, refreshed) = app.refresh(&client, &refresh).await;
    let (status, body) = exchange(&app, &client, &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for access in [&tokens, &refreshed] {
        let (status, body) = app.api_user(access["access_token"].as_str().unwrap()).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, _) = app
        .refresh(&client, refreshed["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    assert!(doorward_tests::logs::captured().contains("authorization_code_replay"));
}

async fn sec_tk_04_codes_are_consumed_atomically(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let code = issue_code(&app, request(&client), user).await;
    let results =
        futures::future::join_all((0..20).map(|_| exchange(&app, &client, &code, &[]))).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1);
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 || b["error"] == "invalid_grant")
    );
    // The losers' replays revoked what the winner got.
    assert_eq!(
        app.scalar("SELECT COUNT(*) AS n FROM access_tokens WHERE revoked_at IS NULL".into())
            .await,
        0
    );
}

async fn sec_tk_05_code_bound_to_client_and_redirect_uri(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let a = app.default_client().await;
    let b = app.default_client().await;
    let code = issue_code(&app, request(&a), user).await;
    let (status, body) = exchange(&app, &b, &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let code = issue_code(&app, request(&a), user).await;
    let response = app
        .token_basic(
            &a,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://app.example/callback/"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let code = issue_code(&app, request(&a), user).await;
    let response = app
        .token_basic(&a, &[("grant_type", "authorization_code"), ("code", &code)])
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(app.count("access_tokens").await, 0);
}

async fn sec_az_05_codes_are_strong_and_expire(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let mut codes = std::collections::HashSet::new();
    for _ in 0..200 {
        let code = issue_code(&app, request(&client), user).await;
        assert!(
            code.len() >= 43
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        codes.insert(code);
    }
    assert_eq!(codes.len(), 200);
    let code = codes.into_iter().next().unwrap();
    app.clock.advance(601);
    let (status, body) = exchange(&app, &client, &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

async fn sec_pk_02_verifier_without_stored_challenge_is_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let code = issue_code(&app, request(&client), user).await;
    let (status, body) = exchange(&app, &client, &code, &[("code_verifier", VERIFIER)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

async fn sec_pk_03_wrong_verifier_burns_the_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let code = issue_code(&app, with_pkce(request(&client)), user).await;
    let wrong = VERIFIER.replace('d', "e");
    let (status, body) = exchange(&app, &client, &code, &[("code_verifier", &wrong)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = exchange(&app, &client, &code, &[("code_verifier", VERIFIER)]).await;
    assert_eq!(status, 400, "the failed attempt burned the code");
    // And a missing verifier is refused too.
    let code = issue_code(&app, with_pkce(request(&client)), user).await;
    let (status, _) = exchange(&app, &client, &code, &[]).await;
    assert_eq!(status, 400);
}

async fn sec_rt_07_revoking_an_authorization_kills_its_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let code = issue_code(&app, request(&client), user).await;
    let (_, tokens) = exchange(&app, &client, &code, &[]).await;
    let mut authorizations = app.authorizations().await;
    let listed = authorizations
        .list_authorized_applications(pb::ListAuthorizedApplicationsRequest { user_id: user })
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].application.as_ref().unwrap().uid, client.id);
    assert_eq!(listed[0].scopes, vec!["api".to_owned()]);
    authorizations
        .revoke_authorized_application(pb::RevokeAuthorizedApplicationRequest {
            user_id: user,
            client_id: client.id.clone(),
        })
        .await
        .unwrap();
    let (status, _) = app
        .refresh(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        app.api_user(tokens["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    let listed = authorizations
        .list_authorized_applications(pb::ListAuthorizedApplicationsRequest { user_id: user })
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert!(listed.is_empty());
}

async fn sec_tk_09_blocked_users_cannot_redeem_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let code = issue_code(&app, request(&client), user).await;
    app.block_user(user).await;
    let (status, body) = exchange(&app, &client, &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}
