//! Application secret rotation without downtime: the old secret keeps working for the
//! chosen grace, through the applications page ("Renew secret"), the operator's
//! `rotate_secret` and the gRPC `Applications.RotateSecret`.
//!
//! An application keeps at most one previous secret: a rotation during the grace of an
//! earlier one retires the secret before it at once.

use doorward_proto::v1 as pb;
use doorward_tests::browser::{Browser, Page, unescape};
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use token_service::apps::ApplicationFields;
use token_service::db::models::ApplicationRow;

both_backends!(
    page_renewal_with_an_hour_of_grace_keeps_the_old_secret_working_that_long,
    page_renewal_at_once_stops_the_old_secret_immediately,
    operator_rotation_with_grace_keeps_the_old_secret_working_that_long,
    a_rotation_during_the_grace_retires_the_secret_before_at_once,
    a_forged_grace_is_refused_and_changes_nothing,
    another_process_s_rotation_reaches_a_running_service,
);

const HOUR: i64 = 3600;

/// Jane, signed in, owning a confidential application allowed `client_credentials`.
async fn jane_with_an_app(app: &TestApp) -> (Browser, TestClient) {
    let jane = app.create_user("jane", "sekret-password").await;
    let client = app
        .register(ApplicationFields {
            name: "Jane's service".into(),
            redirect_uris: vec!["https://jane.example/cb".into()],
            scopes: vec!["read_user".into()],
            confidential: true,
            trusted: false,
            grant_types: vec!["client_credentials".into()],
            owner_id: Some(jane),
        })
        .await;
    let browser = Browser::new(&app.base);
    let page = browser.get("/users/sign_in").await;
    let mut fields = page.form("/users/sign_in");
    fields.retain(|(name, _)| name != "login");
    fields.push(("login".into(), "jane".into()));
    fields.push(("password".into(), "sekret-password".into()));
    assert_eq!(browser.post("/users/sign_in", &fields).await.status, 303);
    (browser, client)
}

/// Posts the renew form of the application page with `grace` (as a browser would, or
/// forged), and returns the answer.
async fn renew(browser: &Browser, client: &TestClient, grace: Option<&str>) -> Page {
    let shown = browser
        .get(&format!("/oauth/applications/{}", client.id))
        .await;
    assert_eq!(shown.status, 200);
    let action = format!("/oauth/applications/{}/renew_secret", client.id);
    let mut fields = shown.form(&action);
    assert!(fields.iter().any(|(n, _)| n == "authenticity_token"));
    if let Some(grace) = grace {
        fields.push(("grace".into(), grace.into()));
    }
    browser.post(&action, &fields).await
}

/// The secret a page shows once.
fn shown_secret(page: &Page) -> String {
    unescape(
        page.body
            .split("<code id=\"secret\">")
            .nth(1)
            .expect("the page shows a secret")
            .split('<')
            .next()
            .unwrap(),
    )
}

/// The status of a `client_credentials` request authenticated with `secret` (HTTP Basic),
/// asserting `invalid_client` on a 401.
async fn token_status(app: &TestApp, client: &TestClient, secret: &str) -> u16 {
    let with = TestClient {
        id: client.id.clone(),
        secret: secret.to_owned(),
    };
    let response = app
        .token_basic(
            &with,
            &[("grant_type", "client_credentials"), ("scope", "read_user")],
        )
        .await;
    let status = response.status().as_u16();
    if status == 401 {
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    status
}

async fn row(app: &TestApp, uid: &str) -> ApplicationRow {
    let uid = uid.to_owned();
    app.state
        .db(move |conn| {
            Ok::<_, token_service::error::ServiceError>(
                token_service::db::applications::find_by_uid(conn, &uid)?,
            )
        })
        .await
        .unwrap()
        .unwrap()
}

/// `apps rotate-secret UID --grace SECONDS`, as the CLI runs it.
async fn rotate(
    app: &TestApp,
    client: &TestClient,
    grace: i64,
) -> token_service::apps::RotatedSecret {
    let rotated = rotate_elsewhere(app, client, grace).await;
    // As the gRPC and CLI paths do; what another process's rotation does is tested in
    // `another_process_s_rotation_reaches_a_running_service`.
    app.state.clients.forget(&client.id);
    rotated
}

/// The rotation's database change alone, as another process (a replica, the CLI) makes it:
/// this process's cached application record is not told.
async fn rotate_elsewhere(
    app: &TestApp,
    client: &TestClient,
    grace: i64,
) -> token_service::apps::RotatedSecret {
    let uid = client.id.clone();
    let now = app.state.now();
    app.state
        .db(move |conn| token_service::apps::rotate_secret(conn, &uid, grace, now))
        .await
        .unwrap()
        .unwrap()
}

fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap()
}

async fn page_renewal_with_an_hour_of_grace_keeps_the_old_secret_working_that_long(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (jane, client) = jane_with_an_app(&app).await;
    let shown = jane
        .get(&format!("/oauth/applications/{}", client.id))
        .await;
    assert!(
        shown.body.contains("<option value=\"86400\" selected>"),
        "24 hours is the default"
    );
    for value in ["0", "3600", "86400", "604800"] {
        assert!(shown.body.contains(&format!("<option value=\"{value}\"")));
    }

    let renewed = renew(&jane, &client, Some("3600")).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    let new = shown_secret(&renewed);
    assert_ne!(new, client.secret);
    // The page says until when the old secret works: the time token-service stored.
    let until = row(&app, &client.id)
        .await
        .previous_secret_expires_at
        .unwrap();
    let now = app.state.now();
    assert!((now + HOUR - 5..=now + HOUR).contains(&until));
    assert!(
        renewed
            .body
            .contains("The old secret keeps working until <time datetime="),
        "{}",
        renewed.body
    );
    assert!(
        renewed
            .body
            .contains(&format!(">{}</time> (1 hour)", utc(until)))
    );

    assert_eq!(token_status(&app, &client, &client.secret).await, 200);
    assert_eq!(token_status(&app, &client, &new).await, 200);
    app.clock.advance(HOUR + 1);
    assert_eq!(
        token_status(&app, &client, &client.secret).await,
        401,
        "the old secret stops after the grace"
    );
    assert_eq!(token_status(&app, &client, &new).await, 200);
}

async fn page_renewal_at_once_stops_the_old_secret_immediately(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (jane, client) = jane_with_an_app(&app).await;
    let renewed = renew(&jane, &client, Some("0")).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!(
        renewed
            .body
            .contains("The old secret stopped working at once.")
    );
    let new = shown_secret(&renewed);
    assert_eq!(token_status(&app, &client, &client.secret).await, 401);
    assert_eq!(token_status(&app, &client, &new).await, 200);
    let stored = row(&app, &client.id).await;
    assert!(stored.previous_secret_hash.is_none() && stored.previous_secret_expires_at.is_none());
}

async fn operator_rotation_with_grace_keeps_the_old_secret_working_that_long(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.create_client("read_user", true, false).await;
    let mut applications =
        pb::applications_client::ApplicationsClient::new(app.internal_channel().await);
    let before = app.state.now();
    let rotated = applications
        .rotate_secret(pb::RotateSecretRequest {
            uid: client.id.clone(),
            grace_seconds: 600,
        })
        .await
        .unwrap()
        .into_inner();
    let new = rotated.secret.unwrap();
    let until = rotated.previous_secret_expires_at.unwrap();
    assert!((before + 600..=app.state.now() + 600).contains(&until));
    assert_eq!(token_status(&app, &client, &client.secret).await, 200);
    assert_eq!(token_status(&app, &client, &new).await, 200);
    app.clock.advance(601);
    assert_eq!(token_status(&app, &client, &client.secret).await, 401);
    assert_eq!(token_status(&app, &client, &new).await, 200);

    // Without grace the response says so, and the old secret stops at once.
    let rotated = applications
        .rotate_secret(pb::RotateSecretRequest {
            uid: client.id.clone(),
            grace_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.previous_secret_expires_at, None);
    assert_eq!(token_status(&app, &client, &new).await, 401);
    assert_eq!(
        token_status(&app, &client, &rotated.secret.unwrap()).await,
        200
    );
}

async fn a_rotation_during_the_grace_retires_the_secret_before_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.create_client("read_user", true, false).await;
    let rotate = |grace| rotate(&app, &client, grace);
    let first = client.secret.clone();
    // A week of grace for the first secret …
    let second = rotate(7 * 24 * HOUR).await;
    assert_eq!(token_status(&app, &client, &first).await, 200);
    assert_eq!(
        token_status(&app, &client, second.secret.expose()).await,
        200
    );
    // … then, an hour into it, another rotation with an hour of grace: the second secret
    // keeps working for that hour, the first stops now although its week is not over.
    app.clock.advance(HOUR);
    let at = app.state.now();
    let third = rotate(HOUR).await;
    let until = third.previous_valid_until.unwrap();
    assert!((at + HOUR..=app.state.now() + HOUR).contains(&until));
    assert_eq!(
        token_status(&app, &client, &first).await,
        401,
        "only the latest previous secret keeps working"
    );
    assert_eq!(
        token_status(&app, &client, second.secret.expose()).await,
        200
    );
    assert_eq!(
        token_status(&app, &client, third.secret.expose()).await,
        200
    );
    app.clock.advance(HOUR + 1);
    assert_eq!(token_status(&app, &client, &first).await, 401);
    assert_eq!(
        token_status(&app, &client, second.secret.expose()).await,
        401
    );
    assert_eq!(
        token_status(&app, &client, third.secret.expose()).await,
        200
    );

    // A rotation "at once" during a grace ends that grace too.
    let fourth = rotate(HOUR).await;
    assert_eq!(
        token_status(&app, &client, third.secret.expose()).await,
        200
    );
    let fifth = rotate(0).await;
    assert_eq!(fifth.previous_valid_until, None);
    assert_eq!(
        token_status(&app, &client, third.secret.expose()).await,
        401
    );
    assert_eq!(
        token_status(&app, &client, fourth.secret.expose()).await,
        401
    );
    assert_eq!(
        token_status(&app, &client, fifth.secret.expose()).await,
        200
    );
}

async fn a_forged_grace_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (jane, client) = jane_with_an_app(&app).await;
    let before = row(&app, &client.id).await;
    let strict_csp = jane
        .get(&format!("/oauth/applications/{}", client.id))
        .await
        .header("content-security-policy")
        .unwrap();
    for forged in [
        Some("31536000"),
        Some("604801"),
        Some("7200"),
        Some("-1"),
        Some("3600.0"),
        Some("03600"),
        Some(""),
        None,
    ] {
        let refused = renew(&jane, &client, forged).await;
        assert_eq!(refused.status, 400, "{forged:?}");
        assert!(
            refused.body.contains("The secret was not renewed"),
            "{}",
            refused.body
        );
        assert!(!refused.body.contains("id=\"secret\""), "no new secret");
        assert_eq!(
            refused.header("content-security-policy").as_deref(),
            Some(strict_csp.as_str())
        );
    }
    let after = row(&app, &client.id).await;
    assert_eq!(
        after.secret_hash, before.secret_hash,
        "the secret is unchanged"
    );
    assert_eq!(after.previous_secret_hash, None);
    assert_eq!(token_status(&app, &client, &client.secret).await, 200);
}

/// A rotation or deletion made by another process (a replica, the CLI) reaches this one's
/// cached application record: the new secret works at once (a refused secret is checked
/// against the stored record) and a deleted application gets no more tokens (its token
/// cannot be stored); the retired secret stops within `tokens.client_cache_seconds`.
async fn another_process_s_rotation_reaches_a_running_service(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ttl = app.state.config.tokens.client_cache_seconds;
    assert!(ttl > 0);
    let client = app.create_client("read_user", true, false).await;
    assert_eq!(token_status(&app, &client, &client.secret).await, 200);
    // What `doorward apps rotate-secret --grace 0` in another process does.
    let first = rotate_elsewhere(&app, &client, 0).await;
    assert_eq!(
        token_status(&app, &client, &client.secret).await,
        200,
        "the cached record still knows the old secret"
    );
    app.clock.advance(ttl);
    assert_eq!(
        token_status(&app, &client, &client.secret).await,
        401,
        "within tokens.client_cache_seconds"
    );
    // Again, and this time the new secret is presented first.
    let rotated = rotate_elsewhere(&app, &client, 0).await;
    assert_eq!(
        token_status(&app, &client, rotated.secret.expose()).await,
        200,
        "the new secret works at once"
    );
    assert_eq!(
        token_status(&app, &client, first.secret.expose()).await,
        401,
        "and once read, the stored record retires the old one"
    );
    // `doorward apps delete` in another process.
    let uid = client.id.clone();
    app.state
        .db(move |conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::db::applications::delete(
                conn,
                // Another process: this service's count does not move.
                &token_service::db::TokenChanges::default(),
                &uid,
            )?)
        })
        .await
        .unwrap();
    assert_eq!(
        token_status(&app, &client, rotated.secret.expose()).await,
        401,
        "a deleted application's token cannot be stored"
    );
}
