//! Housekeeping (`tokens cleanup` and the periodic task): exactly the rows that can no longer
//! be used go, in bounded set-based batches, and everything live keeps working afterwards,
//! refresh rotation, the grace window and reuse detection included. Also: a refresh family
//! of thousands of rows is revoked by one statement.

use std::ops::DerefMut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use diesel::connection::{Connection, InstrumentationEvent};
use doorward_proto::v1 as pb;
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;
use token_service::cli::{Command, JsonFlag, TokensCommand};
use token_service::db::DbConnection;
use token_service::error::ServiceError;
use token_service::housekeeping::{self, CleanupReport};

both_backends!(
    cleanup_removes_exactly_the_rows_that_can_no_longer_be_used,
    cleanup_deletes_in_bounded_set_based_batches,
    sec_rt_02_a_family_of_thousands_is_revoked_by_one_statement,
    the_periodic_task_cleans_up,
    the_tokens_cleanup_command_cleans_up,
);

const PASSWORD: &str = "sekret-password";
const REDIRECT: &str = "https://app.example/callback";
/// A short idle lifetime, so that one test reaches it without passing the family's age.
const IDLE_TTL: i64 = 4 * 3600;

fn is_postgres(app: &TestApp) -> bool {
    matches!(
        app.state.pool.get().unwrap().deref_mut(),
        DbConnection::Pg(_)
    )
}

/// A binary value from a SQL text expression, on either backend.
fn blob(app: &TestApp, text_expression: &str) -> String {
    if is_postgres(app) {
        format!("convert_to({text_expression}, 'UTF8')")
    } else {
        format!("CAST({text_expression} AS BLOB)")
    }
}

/// The SHA-256 of `value` as a binary SQL literal: how a refresh token is stored.
fn sha256_literal(app: &TestApp, value: &str) -> String {
    let hex: String = doorward_shared::secret::sha256(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if is_postgres(app) {
        format!("decode('{hex}', 'hex')")
    } else {
        format!("X'{hex}'")
    }
}

async fn execute(app: &TestApp, sql: String) -> usize {
    app.state
        .db(move |conn| {
            use diesel::RunQueryDsl;
            Ok::<_, ServiceError>(diesel::sql_query(sql).execute(conn)?)
        })
        .await
        .unwrap()
}

/// One set-based insert of `count` rows: `select` may use `i`, 1 to `count`.
async fn insert_many(app: &TestApp, count: i64, into: &str, select: &str) {
    let sql = format!(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {count}) \
         INSERT INTO {into} SELECT {select} FROM seq"
    );
    assert_eq!(execute(app, sql).await, count as usize);
}

const TOKEN_COLUMNS: &str = "access_tokens (jti, application_id, user_id, scopes, created_at, \
    expires_at, revoked_at, refresh_token_hash, family_id, family_created_at, \
    refresh_rotated_at, successor_jti, grant_id, refresh_scopes)";

const CODE_COLUMNS: &str = "access_grants (code_hash, application_id, user_id, scopes, \
    redirect_uri, code_challenge, code_challenge_method, nonce, auth_time, created_at, \
    expires_at, used_at, revoked_at)";

const DEVICE_COLUMNS: &str = "device_grants (device_code_hash, user_code_hash, application_id, \
    scopes, user_id, status, polling_interval, last_polled_at, created_at, expires_at)";

/// A one-row refresh family whose refresh token is `refresh`, stored directly.
async fn insert_family_row(
    app: &TestApp,
    ids: (i64, i64),
    jti: &str,
    refresh: &str,
    created_at: i64,
    family_created_at: i64,
) {
    let (app_id, user_id) = ids;
    let sql = format!(
        "INSERT INTO {TOKEN_COLUMNS} VALUES ('{jti}', {app_id}, {user_id}, 'api', {created_at}, \
         {expires}, NULL, {hash}, 'family-{jti}', {family_created_at}, NULL, NULL, NULL, 'api')",
        expires = created_at + 7200,
        hash = sha256_literal(app, refresh),
    );
    assert_eq!(execute(app, sql).await, 1);
}

async fn insert_device_grants(app: &TestApp, app_id: i64, name: &str, status: &str, expires: i64) {
    let sql = format!(
        "INSERT INTO {DEVICE_COLUMNS} VALUES ({dc}, {uc}, {app_id}, 'api', NULL, '{status}', 5, \
         NULL, {created}, {expires})",
        dc = blob(app, &format!("'dc-{name}'")),
        uc = blob(app, &format!("'uc-{name}'")),
        created = expires - 300,
    );
    assert_eq!(execute(app, sql).await, 1);
}

/// Runs the library function on a pooled connection, at the app's clock.
async fn cleanup(app: &TestApp) -> CleanupReport {
    let config = app.config.clone();
    let now = app.state.now();
    app.state
        .db(move |conn| housekeeping::cleanup(conn, now, &config))
        .await
        .unwrap()
}

/// The `jti` claim of an access token.
fn jti(tokens: &Value) -> String {
    let payload = tokens["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().unwrap()
}

/// Rows of the refresh family that the token row `jti` belongs (or belonged) to.
async fn family_rows(app: &TestApp, jti: &str) -> i64 {
    app.scalar(format!(
        "SELECT COUNT(*) AS n FROM access_tokens WHERE family_id = \
         (SELECT family_id FROM access_tokens WHERE jti = '{jti}')"
    ))
    .await
}

async fn token_row_exists(app: &TestApp, jti: &str) -> bool {
    app.scalar(format!(
        "SELECT COUNT(*) AS n FROM access_tokens WHERE jti = '{jti}'"
    ))
    .await
        == 1
}

async fn client_credentials(app: &TestApp, client: &TestClient) -> Value {
    let response = app
        .token_basic(client, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn post(app: &TestApp, client: &TestClient, path: &str, token: &str) -> Value {
    let response = app
        .http
        .post(app.url(path))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap_or(Value::Null)
}

async fn introspect_active(app: &TestApp, client: &TestClient, token: &str) -> bool {
    post(app, client, "/oauth/introspect", token).await["active"] == true
}

async fn issue_code(app: &TestApp, client: &TestClient, user_id: i64) -> String {
    let response = app
        .authorizations()
        .await
        .issue_code(pb::IssueCodeRequest {
            request: Some(pb::AuthorizationRequest {
                client_id: client.id.clone(),
                redirect_uri: REDIRECT.into(),
                response_type: "code".into(),
                state: Some("xyz".into()),
                ..Default::default()
            }),
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

async fn exchange(app: &TestApp, client: &TestClient, code: &str) -> (u16, Value) {
    let response = app
        .token_basic(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn refreshed(app: &TestApp, client: &TestClient, tokens: &Value) -> Value {
    let (status, body) = app.refresh(client, refresh_token(tokens)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Row counts of every table, in a fixed order.
async fn all_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in [
        "users",
        "applications",
        "signing_keys",
        "server_secrets",
        "access_tokens",
        "access_grants",
        "device_grants",
    ] {
        counts.push((table, app.count(table).await));
    }
    counts
}

async fn cleanup_removes_exactly_the_rows_that_can_no_longer_be_used(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.tokens.refresh_idle_ttl_seconds = IDLE_TTL;
        c.housekeeping.interval_seconds = 0;
    })
    .await;
    let user = app.create_user("jane", PASSWORD).await;
    let client = app.default_client().await;
    let app_id = app
        .scalar(format!(
            "SELECT id AS n FROM applications WHERE uid = '{}'",
            client.id
        ))
        .await;
    let t0 = app.state.now();

    // t0. Dead by the end: an expired client_credentials token; a family revoked through
    // /oauth/revoke (two rows); a family never refreshed (past its idle lifetime); two codes
    // (one used, one not) and two device grants, all expired.
    let cc_expired = client_credentials(&app, &client).await;
    let f1_a = app.password_grant(&client, "jane", PASSWORD).await;
    let f1_b = refreshed(&app, &client, &f1_a).await;
    let f2_a = app.password_grant(&client, "jane", PASSWORD).await;
    let f2_b = refreshed(&app, &client, &f2_a).await;
    post(&app, &client, "/oauth/revoke", refresh_token(&f2_b)).await;
    let idle = app.password_grant(&client, "jane", PASSWORD).await;
    let f5_a = app.password_grant(&client, "jane", PASSWORD).await;
    let used_code = issue_code(&app, &client, user).await;
    let (status, f4_a) = exchange(&app, &client, &used_code).await;
    assert_eq!(status, 200);
    issue_code(&app, &client, user).await;
    insert_device_grants(&app, app_id, "pending", "pending", t0 + 300).await;
    insert_device_grants(&app, app_id, "approved", "approved", t0 + 300).await;

    // t1 = t0 + 10000: every t0 access token has expired; the families F1 and F4 rotate
    // again; a new client_credentials token; F5 rotates and is revoked, so that one of its
    // access tokens has expired and the other lives.
    app.clock.advance(10_000);
    let f1_c = refreshed(&app, &client, &f1_b).await;
    let f4_b = refreshed(&app, &client, &f4_a).await;
    let cc_live = client_credentials(&app, &client).await;
    let f5_b = refreshed(&app, &client, &f5_a).await;
    post(&app, &client, "/oauth/revoke", refresh_token(&f5_b)).await;

    // t2 = t0 + 15000: past the idle family's lifetime (t0 + 14400).
    app.clock.advance(5_000);
    let now = app.state.now();
    let live_code = issue_code(&app, &client, user).await;
    insert_device_grants(&app, app_id, "live", "pending", now + 300).await;
    // Families stored directly: one past its absolute age (its refresh token alone would
    // still be inside its idle lifetime), one just inside it.
    let max_age = app.config.tokens.refresh_max_age_seconds;
    let ids = (app_id, user);
    insert_family_row(
        &app,
        ids,
        "aged-out",
        "aged-out-refresh",
        now - 7300,
        now - max_age - 100,
    )
    .await;
    insert_family_row(
        &app,
        ids,
        "aging",
        "aging-refresh",
        now - 7300,
        now - max_age + 1000,
    )
    .await;

    let before = all_counts(&app).await;
    assert_eq!(app.count("access_tokens").await, 14);
    assert_eq!(app.count("access_grants").await, 3);
    assert_eq!(app.count("device_grants").await, 3);
    assert_eq!(family_rows(&app, &jti(&f1_a)).await, 3);
    assert_eq!(family_rows(&app, &jti(&f2_a)).await, 2);
    let with_code = "SELECT COUNT(*) AS n FROM access_tokens WHERE grant_id IS NOT NULL";
    assert_eq!(
        app.scalar(with_code.into()).await,
        2,
        "F4 descends from a code"
    );

    let report = cleanup(&app).await;
    assert_eq!(
        report,
        CleanupReport {
            access_tokens: 5,
            access_grants: 2,
            device_grants: 2,
        }
    );

    // Exactly the dead rows are gone.
    let after = all_counts(&app).await;
    let expected: Vec<(&str, i64)> = before
        .iter()
        .map(|(table, n)| {
            let removed = match *table {
                "access_tokens" => 5,
                "access_grants" => 2,
                "device_grants" => 2,
                _ => 0,
            };
            (*table, n - removed)
        })
        .collect();
    assert_eq!(after, expected);
    assert!(!token_row_exists(&app, &jti(&cc_expired)).await);
    assert!(token_row_exists(&app, &jti(&cc_live)).await);
    assert_eq!(
        family_rows(&app, &jti(&f1_a)).await,
        3,
        "rotated ancestors stay"
    );
    assert!(!token_row_exists(&app, &jti(&f2_a)).await);
    assert!(!token_row_exists(&app, &jti(&f2_b)).await);
    assert!(!token_row_exists(&app, &jti(&idle)).await);
    assert_eq!(family_rows(&app, &jti(&f4_a)).await, 2);
    assert_eq!(
        family_rows(&app, &jti(&f5_a)).await,
        2,
        "a revoked family stays whole while an access token of it is unexpired"
    );
    assert!(!token_row_exists(&app, "aged-out").await);
    assert!(token_row_exists(&app, "aging").await);
    assert_eq!(
        app.scalar(with_code.into()).await,
        0,
        "the expired code's tokens lost their reference, not their rows"
    );
    let live = |table: &str| format!("SELECT COUNT(*) AS n FROM {table} WHERE expires_at > {now}");
    assert_eq!(app.scalar(live("access_grants")).await, 1);
    assert_eq!(app.scalar(live("device_grants")).await, 1);

    // A second run finds nothing.
    assert!(cleanup(&app).await.is_empty());

    // Everything live still works.
    assert!(introspect_active(&app, &client, f1_c["access_token"].as_str().unwrap()).await);
    assert!(introspect_active(&app, &client, refresh_token(&f1_c)).await);
    assert!(introspect_active(&app, &client, cc_live["access_token"].as_str().unwrap()).await);
    let (status, _) = exchange(&app, &client, &live_code).await;
    assert_eq!(status, 200, "the live code is still redeemable");
    refreshed(&app, &client, &f4_b).await;
    let (status, _) = app.refresh(&client, "aging-refresh").await;
    assert_eq!(
        status, 200,
        "the family inside its absolute age still refreshes"
    );
    // Rotation, then a retry inside the grace window, with a cleanup in between.
    let f1_d = refreshed(&app, &client, &f1_c).await;
    assert!(cleanup(&app).await.is_empty());
    let retry = refreshed(&app, &client, &f1_c).await;
    assert_eq!(retry["refresh_token"], f1_d["refresh_token"]);
    // SEC-RT-02: the oldest rotated token of the live family was kept, so reusing it is
    // detected and revokes the family.
    let (status, body) = app.refresh(&client, refresh_token(&f1_a)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let live_in_f1 = format!(
        "SELECT COUNT(*) AS n FROM access_tokens WHERE revoked_at IS NULL AND family_id = \
         (SELECT family_id FROM access_tokens WHERE jti = '{}')",
        jti(&f1_a)
    );
    assert_eq!(app.scalar(live_in_f1).await, 0);
    assert_eq!(app.refresh(&client, refresh_token(&f1_d)).await.0, 400);
}

/// Counts the statements a connection runs (by their first word) and its transactions.
#[derive(Clone, Default)]
struct StatementLog {
    statements: Arc<Mutex<Vec<String>>>,
    transactions: Arc<AtomicUsize>,
}

impl StatementLog {
    fn attach(&self, conn: &mut DbConnection) {
        let log = self.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                log.statements.lock().unwrap().push(query.to_string());
            }
            InstrumentationEvent::BeginTransaction { .. } => {
                log.transactions.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        });
    }

    fn detach(conn: &mut DbConnection) {
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    }

    /// Statements that start with `verb`.
    fn count(&self, verb: &str) -> usize {
        self.statements
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trim_start().starts_with(verb))
            .count()
    }
}

async fn cleanup_deletes_in_bounded_set_based_batches(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.housekeeping.batch_size = 100;
        c.housekeeping.interval_seconds = 0;
    })
    .await;
    let user = app.create_user("jane", PASSWORD).await;
    let client = app.default_client().await;
    let app_id = app
        .scalar(format!(
            "SELECT id AS n FROM applications WHERE uid = '{}'",
            client.id
        ))
        .await;
    let now = app.state.now();
    let (old, gone, alive) = (now - 10_000, now - 100, now + 3_000);
    let tokens =
        |prefix: &str, expires: &str, revoked: &str, hash: String, family: &str, rotated: &str| {
            format!(
                "'{prefix}' || i, {app_id}, {user}, 'api', {old}, {expires}, {revoked}, {hash}, \
             {family}, {old}, {rotated}, NULL, NULL, NULL"
            )
        };
    // 2,345 expired and 7 live tokens without a refresh token.
    let expired_plain = tokens(
        "plain-",
        &gone.to_string(),
        "NULL",
        "NULL".into(),
        "NULL",
        "NULL",
    );
    insert_many(&app, 2_345, TOKEN_COLUMNS, &expired_plain).await;
    let live_plain = tokens(
        "live-plain-",
        &alive.to_string(),
        "NULL",
        "NULL".into(),
        "NULL",
        "NULL",
    );
    insert_many(&app, 7, TOKEN_COLUMNS, &live_plain).await;
    // A revoked family of 1,050 expired rows, and a live one of 1,050 rows whose newest
    // member's access token is still live (every other member rotated and expired).
    let dead_family = tokens(
        "dead-",
        &gone.to_string(),
        &gone.to_string(),
        blob(&app, "'dead-' || i"),
        "'dead-family'",
        &gone.to_string(),
    );
    insert_many(&app, 1_050, TOKEN_COLUMNS, &dead_family).await;
    let live_family = tokens(
        "alive-",
        &format!("CASE WHEN i = 1050 THEN {alive} ELSE {gone} END"),
        "NULL",
        blob(&app, "'alive-' || i"),
        "'live-family'",
        &format!("CASE WHEN i = 1050 THEN NULL ELSE {old} END"),
    );
    insert_many(&app, 1_050, TOKEN_COLUMNS, &live_family).await;
    // 1,234 expired and 5 live codes; 567 expired and 3 live device grants.
    let codes = |expires: i64| {
        format!(
            "{hash}, {app_id}, {user}, 'api', '{REDIRECT}', NULL, NULL, NULL, NULL, {old}, \
             {expires}, NULL, NULL",
            hash = blob(&app, &format!("'code-{expires}-' || i")),
        )
    };
    insert_many(&app, 1_234, CODE_COLUMNS, &codes(gone)).await;
    insert_many(&app, 5, CODE_COLUMNS, &codes(alive)).await;
    let devices = |expires: i64, status: &str| {
        format!(
            "{dc}, {uc}, {app_id}, 'api', NULL, '{status}', 5, NULL, {old}, {expires}",
            dc = blob(&app, &format!("'dc-{expires}-' || i")),
            uc = blob(&app, &format!("'uc-{expires}-' || i")),
        )
    };
    insert_many(&app, 567, DEVICE_COLUMNS, &devices(gone, "denied")).await;
    insert_many(&app, 3, DEVICE_COLUMNS, &devices(alive, "pending")).await;
    assert_eq!(app.count("access_tokens").await, 2_345 + 7 + 2 * 1_050);
    assert_eq!(app.count("access_grants").await, 1_239);
    assert_eq!(app.count("device_grants").await, 570);

    let log = StatementLog::default();
    let config = app.config.clone();
    let instrumented = log.clone();
    let report = app
        .state
        .db(move |conn| {
            instrumented.attach(conn);
            let report = housekeeping::cleanup(conn, now, &config);
            StatementLog::detach(conn);
            report
        })
        .await
        .unwrap();
    assert_eq!(
        report,
        CleanupReport {
            access_tokens: 2_345 + 1_050,
            access_grants: 1_234,
            device_grants: 567,
        }
    );
    assert_eq!(app.count("access_tokens").await, 7 + 1_050);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) AS n FROM access_tokens WHERE family_id = 'live-family'".into()
        )
        .await,
        1_050,
        "a live family keeps every member"
    );
    assert_eq!(app.count("access_grants").await, 5);
    assert_eq!(app.count("device_grants").await, 3);
    // 100 rows per statement, until a short batch: 24 + 11 + 13 + 6 statements, each in its
    // own transaction, and no other statement touched a row.
    assert_eq!(log.count("DELETE"), 24 + 11 + 13 + 6);
    assert_eq!(log.transactions.load(Ordering::SeqCst), 24 + 11 + 13 + 6);
    assert_eq!(log.count("UPDATE") + log.count("INSERT"), 0);
}

async fn sec_rt_02_a_family_of_thousands_is_revoked_by_one_statement(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.housekeeping.interval_seconds = 0).await;
    let user = app.create_user("jane", PASSWORD).await;
    let client = app.default_client().await;
    let app_id = app
        .scalar(format!(
            "SELECT id AS n FROM applications WHERE uid = '{}'",
            client.id
        ))
        .await;
    let now = app.state.now();
    let members = |family: &str, count: i64| {
        format!(
            "'{family}-' || i, {app_id}, {user}, 'api', {now}, {expires}, NULL, {hash}, \
             '{family}', {now}, CASE WHEN i = {count} THEN NULL ELSE {now} END, NULL, NULL, 'api'",
            expires = now + 7200,
            hash = blob(&app, &format!("'{family}-' || i")),
        )
    };
    insert_many(&app, 5_000, TOKEN_COLUMNS, &members("big", 5_000)).await;
    insert_many(&app, 3, TOKEN_COLUMNS, &members("other", 3)).await;

    let log = StatementLog::default();
    let instrumented = log.clone();
    let changes = app.state.token_changes.clone();
    let revoked = app
        .state
        .db(move |conn| {
            instrumented.attach(conn);
            let revoked = token_service::db::tokens::revoke_family(conn, &changes, "big", now);
            StatementLog::detach(conn);
            Ok::<_, ServiceError>(revoked?)
        })
        .await
        .unwrap();
    assert_eq!(revoked, 5_000);
    let statements = log.statements.lock().unwrap().clone();
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert!(statements[0].starts_with("UPDATE"), "{statements:?}");
    let revoked_in = |family: &str| {
        format!(
            "SELECT COUNT(*) AS n FROM access_tokens WHERE family_id = '{family}' \
             AND revoked_at = {now}"
        )
    };
    assert_eq!(app.scalar(revoked_in("big")).await, 5_000);
    assert_eq!(app.scalar(revoked_in("other")).await, 0);
}

async fn the_periodic_task_cleans_up(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.housekeeping.interval_seconds = 1).await;
    app.create_user("jane", PASSWORD).await;
    let client = app.default_client().await;
    let expiring = client_credentials(&app, &client).await;
    let family = app.password_grant(&client, "jane", PASSWORD).await;
    app.clock.advance(7_201);
    let live = client_credentials(&app, &client).await;
    let mut waited = Duration::ZERO;
    while token_row_exists(&app, &jti(&expiring)).await {
        assert!(
            waited < Duration::from_secs(20),
            "the periodic task did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(app.count("access_tokens").await, 2);
    assert!(token_row_exists(&app, &jti(&live)).await);
    assert!(token_row_exists(&app, &jti(&family)).await);
    refreshed(&app, &client, &family).await;
    assert!(
        doorward_tests::logs::captured()
            .contains("housekeeping removed rows that can no longer be used")
    );
}

async fn the_tokens_cleanup_command_cleans_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("jane", PASSWORD).await;
    let client = app.default_client().await;
    client_credentials(&app, &client).await;
    issue_code(&app, &client, user).await;
    let family = app.password_grant(&client, "jane", PASSWORD).await;
    app.clock.advance(7_201);
    assert_eq!(app.count("access_tokens").await, 2);
    assert_eq!(app.count("access_grants").await, 1);
    for json in [true, false] {
        token_service::cli::run(
            &app.state,
            Command::Tokens(TokensCommand::Cleanup(JsonFlag { json })),
        )
        .await
        .unwrap();
    }
    assert_eq!(app.count("access_tokens").await, 1);
    assert_eq!(app.count("access_grants").await, 0);
    refreshed(&app, &client, &family).await;
}
