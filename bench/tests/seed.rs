//! The harness against a real, short-lived Doorward that it starts itself on a scratch
//! folder: seeding through the operator CLI, each kind of request, and one tiny run.
//! No speed is asserted here (benchmarks are not tests); only that the harness works.
//!
//! Needs built binaries: `target/debug/doorward` (and `token-service` and `auth-web` for
//! the split test), built by `cargo test --workspace` or `cargo build`, else those in
//! `target/release`. Without them a test says so and does nothing, except under CI, where
//! it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use doorward_bench::ops::{self, Clients, Target};
use doorward_bench::runner::{self, Pools, Preparation, Scenario};
use doorward_bench::server::{LaunchOptions, Launched, Mode};

/// The first of target/debug and target/release holding every one of `binaries`; `None`
/// (the test is skipped, or fails under CI) when neither does.
fn bin_dir(binaries: &[&str]) -> Option<PathBuf> {
    let target = doorward_bench::target_dir();
    let found = ["debug", "release"]
        .into_iter()
        .map(|profile| target.join(profile))
        .find(|dir| binaries.iter().all(|name| dir.join(name).is_file()));
    if found.is_none() {
        let message = format!(
            "no {} in target/debug or target/release: run `cargo build --workspace` first",
            binaries.join(", ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    found
}

/// The target the harness builds from what it started and seeded.
fn target_of(launched: &Launched, seeded: &doorward_bench::server::Seeded) -> Target {
    Target {
        http_base: launched.http_base.clone(),
        grpc_url: launched.grpc_url.clone(),
        grpc_ca_file: launched.grpc_ca_file.clone(),
        client_id: seeded.client_id.clone(),
        client_secret: seeded.client_secret.clone(),
        username: seeded.username.clone(),
        password: seeded.password.clone(),
        user_id: Some(seeded.user_id),
        code_user_ids: seeded.code_user_ids.clone(),
        redirect_uri: seeded.redirect_uri.clone(),
        service_token: Some(launched.service_token.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_a_started_doorward_and_measures_a_short_run() {
    let Some(bin_dir) = bin_dir(&["doorward"]) else {
        return;
    };
    let options = LaunchOptions {
        mode: Mode::AllInOne,
        bin_dir,
        database_url: None,
        keep_scratch: false,
        rust_log: Some("warn".into()),
        server_env: Vec::new(),
        code_users: 1,
        tls: false,
    };
    let (launched, seeded) = Launched::start(&options).await.expect("Doorward starts");
    let scratch = launched.scratch.clone();
    assert!(
        scratch.join("doorward.db").is_file(),
        "SQLite in the scratch folder"
    );
    assert_eq!(launched.watched.len(), 1);
    // The all-in-one's auth-web reaches token-service over the socket in its data folder.
    assert!(
        std::os::unix::fs::FileTypeExt::is_socket(
            &std::fs::metadata(scratch.join("token-service.sock"))
                .expect("token-service.sock")
                .file_type()
        ),
        "a Unix socket for auth-web"
    );
    assert!(seeded.user_id > 0);
    assert_eq!(seeded.code_user_ids.len(), 1);
    assert!(!seeded.code_user_ids.contains(&seeded.user_id));
    assert_eq!(
        seeded.client_id.len(),
        64,
        "a client_id as apps create makes them"
    );
    assert!(seeded.client_secret.starts_with("dwcs-"));

    // The services hold a SERVICE_TOKEN (the harness's internal calls need one); the
    // results say it was set, never what it is.
    assert!(
        launched
            .server_env
            .contains(&("SERVICE_TOKEN".to_owned(), "[set]".to_owned()))
    );
    assert!(
        !launched
            .server_env
            .iter()
            .any(|(_, v)| v.contains(&launched.service_token))
    );
    let target = target_of(&launched, &seeded);
    let clients = Clients::connect(&target, 1).await.expect("gRPC connects");

    // Every request kind the scenarios send works on the seeded data.
    let cc = ops::client_credentials(&clients, &target)
        .await
        .expect("client_credentials");
    assert!(cc.refresh_token.is_none());
    let by_password = ops::password(&clients, &target)
        .await
        .expect("password grant");
    assert_eq!(
        ops::user_id(&clients, &target, &by_password.access_token)
            .await
            .expect("api/v4/user"),
        seeded.user_id
    );
    let code = ops::issue_code(clients.channel(0), &target, seeded.user_id)
        .await
        .expect("IssueCode");
    let by_code = ops::exchange_code(&clients, &target, &code)
        .await
        .expect("code exchange");
    let refreshed = ops::refresh(&clients, &target, by_code.refresh_token.as_deref().unwrap())
        .await
        .expect("refresh");
    ops::api_user(&clients, &target, &refreshed.access_token)
        .await
        .expect("api_user");
    ops::introspect(&clients, &target, &refreshed.access_token)
        .await
        .expect("introspect");
    ops::grpc_validate(&clients, clients.channel(0), &cc.access_token)
        .await
        .expect("validate");
    // A used code is refused, and the harness reports it as a failure, not a success.
    let reused = ops::exchange_code(&clients, &target, &code).await;
    let reused = reused.unwrap_err().0;
    assert!(
        reused.starts_with("HTTP 400 invalid_grant"),
        "status and OAuth error code first: {reused}"
    );
    let bogus = ops::grpc_validate(&clients, clients.channel(0), "not-a-token").await;
    assert_eq!(bogus.unwrap_err().0, "inactive: invalid");

    // A tiny run of two scenarios: the counts add up and the process was measured.
    let prep = Preparation {
        working_set: 20,
        token_pool: 10,
        // Enough codes for the whole run even against a release build (minted in about a
        // second): a run whose codes ran out in the warm-up would count no requests.
        code_rate_hint: 5_000,
        request_timeout_s: 10.0,
        prepare_timeout_s: 60.0,
    };
    let mut pools = Pools::default();
    let target = Arc::new(target);
    for scenario in [
        Scenario::ClientCredentials,
        Scenario::AuthorizationCode,
        Scenario::GrpcValidate,
    ] {
        let result = runner::run(
            scenario,
            2,
            Duration::from_millis(100),
            Duration::from_millis(400),
            &prep,
            &mut pools,
            &clients,
            &target,
            &launched.watched,
            None,
        )
        .await
        .expect("runs");
        assert_eq!(result.errors, 0, "{scenario:?}: {:?}", result.error_kinds);
        assert!(result.requests > 0, "{scenario:?} completed requests");
        let latency = result.latency.expect("latencies");
        assert!(latency.p50_ms <= latency.p99_ms && latency.p99_ms <= latency.p999_ms);
        assert!(latency.p999_ms <= latency.max_ms);
        let process = &result.processes[0];
        assert_eq!(process.name, "doorward");
        assert!(process.cpu_seconds.is_some());
        assert!(process.idle_rss_kib.is_some_and(|kib| kib > 0));
        assert!(process.peak_rss_kib.is_some_and(|kib| kib > 0));
        // token-service counts its statements (GetStats): a grant runs at least its
        // savepoint, its writes and the release; a validation is served from the cache.
        let statements = result
            .db_statements_per_request
            .unwrap_or_else(|| panic!("{scenario:?}: {}", result.db_statements_note));
        if scenario == Scenario::GrpcValidate {
            assert!(statements < 3.0, "{scenario:?}: {statements}");
        } else {
            assert!(
                (3.0..30.0).contains(&statements),
                "{scenario:?}: {statements}"
            );
        }
    }

    drop(launched);
    assert!(!scratch.exists(), "the scratch folder is removed");
}

/// `--mode split --tls`: auth-web reaches token-service over mutual TLS, and the harness's
/// gRPC clients over TLS with the scratch CA: a token grant (through auth-web), a
/// validation as a resource server (Basic, no client certificate), and the internal calls
/// (service token) all work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_with_tls_serves_every_kind_of_call() {
    let Some(bin_dir) = bin_dir(&["token-service", "auth-web"]) else {
        return;
    };
    let options = LaunchOptions {
        mode: Mode::Split,
        bin_dir,
        database_url: None,
        keep_scratch: false,
        rust_log: Some("warn".into()),
        server_env: Vec::new(),
        code_users: 0,
        tls: true,
    };
    let (launched, seeded) = Launched::start(&options).await.expect("Doorward starts");
    assert_eq!(launched.watched.len(), 2);
    assert!(launched.grpc_url.starts_with("https://127.0.0.1:"));
    let ca = launched.grpc_ca_file.clone().expect("a CA");
    assert!(ca.is_file());
    let target = target_of(&launched, &seeded);

    // Without the CA, the harness says what is missing instead of failing to connect.
    let without_ca = Target {
        grpc_ca_file: None,
        ..target.clone()
    };
    let refused = Clients::connect(&without_ca, 1)
        .await
        .err()
        .expect("an https URL needs a CA");
    assert!(refused.to_string().contains("CA"), "{refused}");

    let clients = Clients::connect(&target, 1).await.expect("gRPC over TLS");
    // auth-web asks token-service for the token over mTLS.
    let cc = ops::client_credentials(&clients, &target)
        .await
        .expect("client_credentials through auth-web");
    ops::grpc_validate(&clients, clients.channel(0), &cc.access_token)
        .await
        .expect("validation as a resource server, without a client certificate");
    assert!(
        ops::service_statements(clients.channel(0), &target)
            .await
            .is_some(),
        "GetStats with the service token"
    );
    let code = ops::issue_code(clients.channel(0), &target, seeded.user_id)
        .await
        .expect("IssueCode with the service token");
    ops::exchange_code(&clients, &target, &code)
        .await
        .expect("code exchange through auth-web");
    // Without the service token, the harness is no internal caller.
    let outsider = Target {
        service_token: None,
        ..target.clone()
    };
    assert!(
        ops::service_statements(clients.channel(0), &outsider)
            .await
            .is_none(),
        "GetStats is internal"
    );
}
