//! Storage and logging: no issued token, secret or password is stored in plaintext
//! (SEC-SL-01) or appears in the logs (SEC-SL-03).

use std::ops::DerefMut;

use doorward_tests::{Backend, TestApp, both_backends};

both_backends!(sec_sl_01_and_sl_03_no_plaintext_secret_is_stored_or_logged);

/// Every text column, and every binary column hex-encoded, of every row of every table.
async fn dump(app: &TestApp) -> String {
    let postgres = matches!(
        app.state.pool.get().unwrap().deref_mut(),
        token_service::db::DbConnection::Pg(_)
    );
    let hex = |column: &str| {
        if postgres {
            format!("COALESCE(encode({column}, 'hex'), '')")
        } else {
            format!("COALESCE(lower(hex({column})), '')")
        }
    };
    let text = |column: &str| format!("COALESCE({column}, '')");
    let tables: Vec<(&str, Vec<String>)> = vec![
        (
            "users",
            vec![
                text("username"),
                text("email"),
                text("name"),
                text("password_hash"),
            ],
        ),
        (
            "applications",
            vec![
                text("uid"),
                text("name"),
                text("redirect_uris"),
                hex("secret_hash"),
                hex("previous_secret_hash"),
            ],
        ),
        (
            "access_tokens",
            vec![
                text("jti"),
                text("scopes"),
                text("family_id"),
                text("successor_jti"),
                hex("refresh_token_hash"),
            ],
        ),
        (
            "access_grants",
            vec![hex("code_hash"), text("redirect_uri"), text("nonce")],
        ),
        (
            "device_grants",
            vec![hex("device_code_hash"), hex("user_code_hash")],
        ),
        (
            "signing_keys",
            vec![text("kid"), text("public_jwk"), hex("private_key")],
        ),
        ("server_secrets", vec![text("name"), hex("value")]),
    ];
    let mut dump = String::new();
    for (table, columns) in tables {
        let sql = format!("SELECT {} AS row FROM {table}", columns.join(" || ' ' || "));
        let rows: Vec<String> = app
            .state
            .db(move |conn| {
                use diesel::RunQueryDsl;
                #[derive(diesel::QueryableByName)]
                struct Row {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    row: String,
                }
                let rows: Vec<Row> = diesel::sql_query(sql).load(conn)?;
                Ok::<_, token_service::error::ServiceError>(
                    rows.into_iter().map(|r| r.row).collect(),
                )
            })
            .await
            .unwrap();
        dump.push_str(&rows.join("\n"));
        dump.push('\n');
    }
    dump
}

fn to_hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
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
    // The SHA-256 of the refresh token is there, hex-encoded: the dump saw the hash columns.
    let refresh_hash =
        doorward_shared::secret::sha256(first["refresh_token"].as_str().unwrap().as_bytes());
    let refresh_hash_hex: String = refresh_hash.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        stored.contains(&refresh_hash_hex),
        "binary columns were dumped"
    );
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret is stored in plaintext"
        );
        assert!(
            !stored.contains(&to_hex(secret)),
            "a secret is stored as raw bytes"
        );
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
        // JWTs: not even their signature part.
        if let Some(signature) = secret.rsplit('.').next().filter(|_| secret.contains('.')) {
            assert!(!logs.contains(signature));
        }
    }
}
