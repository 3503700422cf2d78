//! Storage and logging: no issued token, secret or password is stored in plaintext
//! (SEC-SL-01) or appears in the logs (SEC-SL-03).

use doorward_tests::{Backend, TestApp, both_backends};

both_backends!(sec_sl_01_and_sl_03_no_plaintext_secret_is_stored_or_logged);

/// Every text and hex-encoded binary value of every row of Doorward's tables.
async fn dump(app: &TestApp) -> String {
    let mut dump = String::new();
    for table in [
        "users",
        "applications",
        "access_tokens",
        "access_grants",
        "device_grants",
        "signing_keys",
        "server_secrets",
    ] {
        let rows: Vec<String> = app
            .state
            .db(move |conn| {
                use diesel::RunQueryDsl;
                #[derive(diesel::QueryableByName)]
                struct Row {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    row: String,
                }
                // Casting every column to text works the same on both backends for the
                // columns that could hold a secret: text columns and hashes.
                let sql = match table {
                    "users" => "SELECT username || ' ' || email || ' ' || password_hash AS row FROM users",
                    "applications" => "SELECT uid || ' ' || name || ' ' || redirect_uris AS row FROM applications",
                    "access_tokens" => "SELECT jti || ' ' || scopes || ' ' || COALESCE(family_id, '') || ' ' || COALESCE(successor_jti, '') AS row FROM access_tokens",
                    "signing_keys" => "SELECT kid || ' ' || public_jwk AS row FROM signing_keys",
                    _ => "SELECT '' AS row",
                };
                let rows: Vec<Row> = diesel::sql_query(sql).load(conn)?;
                Ok::<_, token_service::error::ServiceError>(rows.into_iter().map(|r| r.row).collect())
            })
            .await
            .unwrap();
        dump.push_str(&rows.join("\n"));
    }
    dump
}

async fn sec_sl_01_and_sl_03_no_plaintext_secret_is_stored_or_logged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password = "sl01-password-9f3e";
    app.create_user("jane", password).await;
    let client = app.default_client().await;
    let first = app.password_grant(&client, "jane", password).await;
    let (_, second) = app
        .refresh(&client, first["refresh_token"].as_str().unwrap())
        .await;
    let cc: serde_json::Value = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    // A query-string token reaches the access log as a path only.
    let _ = app
        .http
        .get(app.url("/api/v4/user"))
        .query(&[("access_token", second["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();

    let secrets = [
        password.to_owned(),
        client.secret.clone(),
        first["access_token"].as_str().unwrap().to_owned(),
        first["refresh_token"].as_str().unwrap().to_owned(),
        second["access_token"].as_str().unwrap().to_owned(),
        second["refresh_token"].as_str().unwrap().to_owned(),
        cc["access_token"].as_str().unwrap().to_owned(),
    ];
    let stored = dump(&app).await;
    assert!(stored.contains("$argon2id$"), "the dump read the tables");
    let logs = doorward_tests::logs::captured();
    assert!(logs.contains("/oauth/token"), "the logs were captured");
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret is stored in plaintext"
        );
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
        // JWTs: not even their signature part.
        if let Some(signature) = secret.rsplit('.').next().filter(|_| secret.contains('.')) {
            assert!(!logs.contains(signature));
        }
    }
}
