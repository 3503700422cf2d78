//! Database set-up as an operator meets it: a PostgreSQL database that does not exist yet is
//! created on first start, and a bad URL is a clear error.

use doorward_tests::Backend;
use std::time::Duration;

#[tokio::test]
async fn a_missing_postgres_database_is_created_and_migrated_on_first_start() {
    let Some(Backend::Postgres(admin_url)) = Backend::postgres() else {
        doorward_tests::skip_postgres(
            "a_missing_postgres_database_is_created_and_migrated_on_first_start",
        );
        return;
    };
    let name = format!("doorward_fresh_{}", std::process::id());
    let url = doorward_tests::with_database(&admin_url, &name);
    let pool = tokio::task::spawn_blocking(move || {
        token_service::db::connect_and_migrate(&url, 2, Duration::from_secs(5))
    })
    .await
    .unwrap()
    .expect("the database is created");
    drop(pool);
    doorward_tests::drop_postgres_database(&admin_url, &name);
}

#[tokio::test]
async fn unknown_database_schemes_are_refused_with_a_clear_message() {
    let err = token_service::db::connect_and_migrate("mysql://x/y", 1, Duration::from_secs(1))
        .unwrap_err();
    assert!(
        err.to_string().contains("sqlite:// or postgres://"),
        "{err}"
    );
}
