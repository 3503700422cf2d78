//! The device authorization grant (RFC 8628) end to end: a device starts at
//! `/oauth/authorize_device` and polls `/oauth/token`; a person signs in on the verification
//! pages with a cookie-keeping client, checks the code and approves or denies. The polling
//! answers are driven with the injected clock. SEC-DV-01 (format) has unit tests in
//! token-service's `device` module.

use doorward_tests::browser::{Browser, Page};
use doorward_tests::{Backend, ISSUER_ON_BOUND_PORT, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    device_flow_from_start_to_tokens,
    sec_dv_04_polling_state_machine,
    sec_dv_03_device_codes_are_bound_single_use_and_atomic,
    sec_dv_02_wrong_user_codes_are_throttled,
    sec_dv_05_the_user_must_sign_in_and_approve_explicitly,
    authorize_device_refuses_bad_requests,
    sec_rl_03_secret_guessing_at_authorize_device_is_throttled,
);

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn spawn(backend: Backend) -> (TestApp, TestClient) {
    let app = TestApp::spawn_with(backend, |config| {
        config.public_url = ISSUER_ON_BOUND_PORT.into();
    })
    .await;
    app.create_user("jane", "sekret-password").await;
    // A public client (a command-line tool has no secret to keep).
    let client = app.create_client("read_user api", false, false).await;
    (app, client)
}

async fn start(app: &TestApp, client: &TestClient, scope: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/authorize_device"))
        .form(&[("client_id", client.id.as_str()), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn poll(app: &TestApp, client: &TestClient, device_code: &str) -> (u16, Value) {
    let response = app
        .token(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", &client.id),
        ])
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn error_of(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or(""))
}

/// A browser signed in as jane, on the entry page pre-filled from
/// `verification_uri_complete`.
async fn signed_in_at(app: &TestApp, verification_uri_complete: &str) -> (Browser, Page) {
    let browser = Browser::new(&app.base);
    let first = browser.get(verification_uri_complete).await;
    assert_eq!(first.status, 303, "the pages need a signed-in user");
    let signed_in = browser
        .sign_in(&first.location().unwrap(), "jane", "sekret-password")
        .await;
    let back = signed_in.location().expect("sign-in leads back");
    assert!(back.starts_with("/oauth/device"), "{back}");
    let entry = browser.get(&back).await;
    assert_eq!(entry.status, 200);
    (browser, entry)
}

/// Enters `user_code` on the entry page; the confirmation page (or a refusal).
async fn enter(browser: &Browser, entry: &Page, user_code: &str) -> Page {
    let mut fields = entry.form("/oauth/device");
    fields.retain(|(name, _)| name != "user_code");
    fields.push(("user_code".into(), user_code.into()));
    browser.post("/oauth/device", &fields).await
}

async fn decide(browser: &Browser, confirm: &Page, decision: &str) -> Page {
    let mut fields = confirm.form("/oauth/device/decide");
    fields.push(("decision".into(), decision.into()));
    browser.post("/oauth/device/decide", &fields).await
}

/// Starts, approves through the pages, and returns the device code.
async fn approved(app: &TestApp, client: &TestClient) -> String {
    let started = start(app, client, "read_user").await;
    let (browser, entry) =
        signed_in_at(app, started["verification_uri_complete"].as_str().unwrap()).await;
    let confirm = enter(&browser, &entry, started["user_code"].as_str().unwrap()).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let done = decide(&browser, &confirm, "approve").await;
    assert_eq!(done.status, 200);
    started["device_code"].as_str().unwrap().to_owned()
}

async fn device_flow_from_start_to_tokens(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let started = start(&app, &client, "read_user").await;
    let user_code = started["user_code"].as_str().unwrap();
    // XXXX-XXXX from the unambiguous alphabet.
    assert_eq!(user_code.len(), 9);
    assert!(
        user_code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "BCDFGHJKLMNPQRSTVWXZ".contains(c)
        }),
        "{user_code}"
    );
    assert_eq!(
        started["verification_uri"],
        format!("{}/oauth/device", app.base)
    );
    assert_eq!(
        started["verification_uri_complete"],
        format!("{}/oauth/device?user_code={user_code}", app.base)
    );
    assert_eq!(started["expires_in"], 300);
    assert_eq!(started["interval"], 5);
    let device_code = started["device_code"].as_str().unwrap();
    assert!(device_code.len() >= 43, "at least 256 bits");

    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "authorization_pending")
    );
    let (browser, entry) =
        signed_in_at(&app, started["verification_uri_complete"].as_str().unwrap()).await;
    assert_eq!(entry.input("user_code").as_deref(), Some(user_code));
    // Lower case and without the dash is the same code.
    let typed = user_code.replace('-', "").to_lowercase();
    let confirm = enter(&browser, &entry, &typed).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains(user_code),
        "the code is shown to compare"
    );
    assert!(confirm.body.contains("read_user"));
    let done = decide(&browser, &confirm, "approve").await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Device successfully authorized"));

    app.clock.advance(5);
    let (status, tokens) = poll(&app, &client, device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "read_user");
    assert!(tokens["refresh_token"].is_string());
    let (status, user) = app.api_user(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(user["username"], "jane");
    // The device code is spent.
    app.clock.advance(5);
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "invalid_grant")
    );
    // The refresh token works like any other.
    let (status, _) = app
        .refresh(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
}

async fn sec_dv_04_polling_state_machine(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let started = start(&app, &client, "read_user").await;
    let device_code = started["device_code"].as_str().unwrap();
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "authorization_pending")
    );
    // Twice within a second: slow down, and the interval grows to 10 s.
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "slow_down")
    );
    // At the old interval (5 s): still too fast; now 15 s.
    app.clock.advance(5);
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "slow_down")
    );
    // At the new interval: pending again.
    app.clock.advance(15);
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "authorization_pending")
    );

    // The user denies: access_denied.
    let (browser, entry) =
        signed_in_at(&app, started["verification_uri_complete"].as_str().unwrap()).await;
    let confirm = enter(&browser, &entry, started["user_code"].as_str().unwrap()).await;
    let denied = decide(&browser, &confirm, "deny").await;
    assert_eq!(denied.status, 200);
    assert!(denied.body.contains("Access denied"));
    app.clock.advance(15);
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "access_denied")
    );

    // Nobody decides in time: expired_token, and the page says the code expired.
    let late = start(&app, &client, "read_user").await;
    app.clock.advance(300);
    assert_eq!(
        error_of(&poll(&app, &client, late["device_code"].as_str().unwrap()).await),
        (400, "expired_token")
    );
    let refused = enter(&browser, &entry, late["user_code"].as_str().unwrap()).await;
    assert_eq!(refused.status, 410);
    assert!(refused.body.contains("expired"));
}

async fn sec_dv_03_device_codes_are_bound_single_use_and_atomic(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let other = app.create_client("read_user", false, false).await;
    let device_code = approved(&app, &client).await;
    app.clock.advance(5);
    // Another client's poll: invalid_grant, and the code still works for its own client.
    assert_eq!(
        error_of(&poll(&app, &other, &device_code).await),
        (400, "invalid_grant")
    );
    // 20 concurrent polls: exactly one token response.
    let polls = (0..20).map(|_| poll(&app, &client, &device_code));
    let answers = futures::future::join_all(polls).await;
    let granted = answers.iter().filter(|a| a.0 == 200).count();
    assert_eq!(granted, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a.0 != 200)
            .all(|a| error_of(a) == (400, "invalid_grant"))
    );
    assert_eq!(app.count("access_tokens").await, 1);
    // One authorization, spent.
    let stored = app
        .scalar(
            "SELECT COUNT(*) AS n FROM device_grants WHERE scopes = 'read_user' AND status = 'used'"
                .into(),
        )
        .await;
    assert_eq!(stored, 1);
}

async fn sec_dv_02_wrong_user_codes_are_throttled(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let started = start(&app, &client, "read_user").await;
    let (browser, entry) = signed_in_at(&app, "/oauth/device").await;
    for attempt in 1..=5 {
        let refused = enter(&browser, &entry, "BCDF-GHJK").await;
        assert_eq!(refused.status, 400, "attempt {attempt}");
        assert!(refused.body.contains("not valid"));
    }
    let throttled = enter(&browser, &entry, "BCDF-GHJK").await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    // Once throttled, even the right code waits; and wrong ones stay throttled after it.
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(enter(&browser, &entry, user_code).await.status, 429);
    for _ in 0..5 {
        assert_eq!(enter(&browser, &entry, "BCDF-GHJK").await.status, 429);
    }
    // After the window the right code works, and the device was never approved meanwhile.
    app.clock.advance(900);
    let fresh = start(&app, &client, "read_user").await;
    let confirm = enter(&browser, &entry, fresh["user_code"].as_str().unwrap()).await;
    assert_eq!(confirm.status, 200);
}

async fn sec_dv_05_the_user_must_sign_in_and_approve_explicitly(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let started = start(&app, &client, "read_user api").await;
    let device_code = started["device_code"].as_str().unwrap();
    let complete = started["verification_uri_complete"].as_str().unwrap();
    // Without a session: to the sign-in page, nothing decided.
    let anonymous = Browser::new(&app.base).get(complete).await;
    assert_eq!(anonymous.status, 303);
    assert!(anonymous.location().unwrap().starts_with("/users/sign_in"));
    // Pre-filled and shown, but not approved.
    let (browser, entry) = signed_in_at(&app, complete).await;
    let confirm = enter(&browser, &entry, started["user_code"].as_str().unwrap()).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Deny"), "deny is always offered");
    assert!(confirm.body.contains("api"));
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "authorization_pending")
    );
    // An approval without the CSRF token: 403, still pending.
    let forged = browser
        .post(
            "/oauth/device/decide",
            &[
                (
                    "user_code".into(),
                    started["user_code"].as_str().unwrap().into(),
                ),
                ("decision".into(), "approve".into()),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    app.clock.advance(5);
    assert_eq!(
        error_of(&poll(&app, &client, device_code).await),
        (400, "authorization_pending")
    );
}

async fn authorize_device_refuses_bad_requests(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let post = |form: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/oauth/authorize_device"))
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    assert_eq!(
        post(vec![("client_id", "unknown".into())]).await,
        (401, "invalid_client".into())
    );
    assert_eq!(post(vec![]).await, (401, "invalid_client".into()));
    assert_eq!(
        post(vec![
            ("client_id", client.id.clone()),
            ("scope", "sudo".into())
        ])
        .await,
        (400, "invalid_scope".into())
    );
    // An application not registered for the device grant.
    let web_only = app
        .create_client_with_grants("read_user", false, "authorization_code")
        .await;
    assert_eq!(
        post(vec![("client_id", web_only.id.clone())]).await,
        (401, "unauthorized_client".into())
    );
    // A confidential client must authenticate.
    let confidential = app.create_client("read_user", true, false).await;
    assert_eq!(
        post(vec![("client_id", confidential.id.clone())]).await,
        (401, "invalid_client".into())
    );
    let response = app
        .http
        .post(app.url("/oauth/authorize_device"))
        .basic_auth(&confidential.id, Some(&confidential.secret))
        .form(&[("scope", "read_user")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A missing device_code at the token endpoint.
    let answer = app
        .token(&[("grant_type", DEVICE_GRANT), ("client_id", &client.id)])
        .await;
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    // GET is not the endpoint.
    let get = app
        .http
        .get(app.url("/oauth/authorize_device"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
}

/// SEC-RL-03 at the device authorization endpoint: the same counters as the token endpoint,
/// so guesses cannot move from one endpoint to the other.
async fn sec_rl_03_secret_guessing_at_authorize_device_is_throttled(backend: Backend) {
    let (app, _) = spawn(backend).await;
    let client = app.create_client("read_user", true, false).await;
    let guess = |app: &TestApp| {
        app.http
            .post(app.url("/oauth/authorize_device"))
            .basic_auth(&client.id, Some("dwcs-guess"))
            .form(&[("scope", "read_user")])
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(guess(&app).await.unwrap().status().as_u16());
    }
    // Ten more at the token endpoint reach the limit of 20 failures.
    let wrong = TestClient {
        id: client.id.clone(),
        secret: "dwcs-guess".into(),
    };
    for _ in 0..10 {
        let response = app
            .token_basic(&wrong, &[("grant_type", "client_credentials")])
            .await;
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let refused = guess(&app).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // Refused before comparing: even the right secret waits for the window.
    let right = app
        .http
        .post(app.url("/oauth/authorize_device"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("scope", "read_user")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 429);
    app.clock.advance(301);
    let right = app
        .http
        .post(app.url("/oauth/authorize_device"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("scope", "read_user")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
}
