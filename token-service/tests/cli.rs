//! The operator CLI as an operator runs it: the real `token-service` binary on a temporary
//! SQLite database. Every command's `--json` output is parsed; bad arguments get a one-line
//! error and a non-zero exit. (The one test binary besides the `tests` crate, because only
//! this package's tests are handed the binary's path.)

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Cli {
    dir: std::path::PathBuf,
    database_url: String,
}

impl Cli {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "doorward-cli-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let database_url = format!("sqlite://{}", dir.join("cli.db").display());
        Self { dir, database_url }
    }

    /// The CLI on another database.
    fn on(database_url: &str) -> Self {
        let mut cli = Self::new();
        cli.database_url = database_url.to_owned();
        cli
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_token-service"))
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args, None);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.trim().is_empty());
        stderr
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn users_and_apps_round_trip_through_the_cli() {
    let cli = Cli::new();
    assert_eq!(cli.json(&["migrate", "--json"], None)["migrated"], true);
    let user = cli.json(
        &[
            "users",
            "create",
            "--username",
            "jane",
            "--email",
            "jane@example.com",
            "--password-stdin",
            "--json",
        ],
        Some("sekret-password\n"),
    );
    assert_eq!(user["username"], "jane");
    assert!(
        user.get("password").is_none(),
        "a password given on stdin is not echoed"
    );

    let app = cli.json(
        &[
            "apps",
            "create",
            "--name",
            "My app",
            "--redirect-uri",
            "https://a.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--scopes",
            "api read_user",
            "--owner",
            "jane",
            "--json",
        ],
        None,
    );
    let uid = app["uid"].as_str().unwrap().to_owned();
    let secret = app["secret"].as_str().unwrap().to_owned();
    assert_eq!(uid.len(), 64);
    assert!(secret.starts_with("dwcs-"));
    assert_eq!(app["redirect_uris"].as_array().unwrap().len(), 2);
    assert_eq!(app["owner_id"], user["id"]);
    assert_eq!(
        app["grant_types"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "device_code"
        ])
    );
    let barred = cli.json(
        &[
            "apps",
            "create",
            "--name",
            "No ROPC",
            "--redirect-uri",
            "https://a.example/cb",
            "--no-password-grant",
            "--json",
        ],
        None,
    );
    assert!(
        !barred["grant_types"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("password"))
    );
    let code_only = cli.json(
        &[
            "apps",
            "create",
            "--name",
            "SPA",
            "--redirect-uri",
            "https://a.example/cb",
            "--public",
            "--grant-types",
            "authorization_code refresh_token",
            "--json",
        ],
        None,
    );
    assert_eq!(
        code_only["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert!(
        code_only.get("secret").is_none(),
        "public applications have no secret"
    );

    // The secret is shown once: never by show or list.
    let shown = cli.json(&["apps", "show", &uid, "--json"], None);
    assert_eq!(shown["uid"], uid.as_str());
    assert!(shown.get("secret").is_none());
    let list = cli.json(&["apps", "list", "--json"], None);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(!list.to_string().contains(&secret));

    let rotated = cli.json(
        &["apps", "rotate-secret", &uid, "--grace", "60", "--json"],
        None,
    );
    assert_ne!(rotated["secret"], secret.as_str());

    // One Ed25519 key for access tokens and one RSA key for id_tokens, both signing.
    let keys = cli.json(&["keys", "list", "--json"], None);
    let summary = |keys: &serde_json::Value| -> Vec<(String, String, String)> {
        let mut rows: Vec<_> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["purpose"].as_str().unwrap().to_owned(),
                    k["algorithm"].as_str().unwrap().to_owned(),
                    k["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let row = |p: &str, a: &str, s: &str| (p.to_owned(), a.to_owned(), s.to_owned());
    assert_eq!(
        summary(&keys),
        [
            row("access_token", "EdDSA", "signing"),
            row("id_token", "RS256", "signing")
        ]
    );
    // Rotation publishes the new keys first; the old ones sign for the publication lead.
    let rotated = cli.json(
        &["keys", "rotate", "--purpose", "access_token", "--json"],
        None,
    );
    let new_kid = rotated["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 1);
    let keys = cli.json(&["keys", "list", "--json"], None);
    assert_eq!(
        summary(&keys),
        [
            row("access_token", "EdDSA", "published"),
            row("access_token", "EdDSA", "signing"),
            row("id_token", "RS256", "signing")
        ]
    );
    let published = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "published")
        .unwrap();
    assert_eq!(
        published["kid"],
        new_kid.as_str(),
        "the new key is published first"
    );
    // A compromised key is revoked at once; the published key takes over.
    let old_kid = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "signing" && k["purpose"] == "access_token")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = cli.json(&["keys", "revoke", &old_kid, "--json"], None);
    assert_eq!(revoked["revoked"], old_kid.as_str());
    assert_eq!(revoked["replacement"], serde_json::Value::Null);
    let keys = cli.json(&["keys", "list", "--json"], None);
    assert_eq!(
        summary(&keys),
        [
            row("access_token", "EdDSA", "revoked"),
            row("access_token", "EdDSA", "signing"),
            row("id_token", "RS256", "signing")
        ]
    );

    assert_eq!(
        cli.json(&["apps", "delete", &uid, "--json"], None)["deleted"],
        true
    );
    assert!(
        cli.fails(&["apps", "show", &uid])
            .contains("no application")
    );
}

#[test]
fn bad_arguments_get_a_one_line_error_and_a_non_zero_exit() {
    let cli = Cli::new();
    for (args, expected) in [
        (
            &[
                "apps",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "javascript:alert(1)",
            ][..],
            "forbidden",
        ),
        (
            &[
                "apps",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb#frag",
            ][..],
            "fragment",
        ),
        (
            &[
                "apps",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb",
                "--scopes",
                "bogus",
            ][..],
            "scopes",
        ),
        (
            &[
                "apps",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb",
                "--owner",
                "ghost",
            ][..],
            "no user",
        ),
        (
            &[
                "users",
                "create",
                "--username",
                "b@d",
                "--email",
                "nope",
                "--password-stdin",
            ][..],
            "invalid user",
        ),
        (
            &["apps", "rotate-secret", "0000"][..],
            "no confidential application",
        ),
        (
            &[
                "apps",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb",
                "--grant-types",
                "implicit",
            ][..],
            "grant_types",
        ),
        (
            &[
                "apps",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb",
                "--public",
                "--grant-types",
                "password",
            ][..],
            "confidential",
        ),
    ] {
        let stderr = cli.fails(args);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Unknown flags are usage errors: one line too, and exit status 2.
    let output = cli.run(&["apps", "create", "--bogus"], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // A missing argument is named on that line; logs to a pipe carry no colour codes.
    let output = cli.run(&["apps", "create"], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--name <NAME>") && stderr.contains("(see --help)"),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_token-service"))
        .args(["keys", "rotate"])
        .env("DATABASE_URL", &cli.database_url)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("signing_key_rotated"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn a_bad_database_url_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_token-service"))
        .args(["apps", "list"])
        .env("DATABASE_URL", "mysql://localhost/doorward")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL must start with sqlite:// or postgres://"),
        "{stderr}"
    );
}

/// SEC-GB-13: a split token-service with nothing that can tell auth-web from anyone refuses
/// to start, in one line that names the options to set.
#[test]
fn sec_gb_13_token_service_alone_refuses_to_start_without_internal_caller_authentication() {
    let cli = Cli::new();
    let output = Command::new(env!("CARGO_BIN_EXE_token-service"))
        .env("DATABASE_URL", &cli.database_url)
        .env("TOKEN_SERVICE_ADDR", free_addr())
        .env_remove("SERVICE_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for option in [
        "SERVICE_TOKEN",
        "DOORWARD_GRPC_TLS__CLIENT_CA_FILE",
        "token_service_socket",
    ] {
        assert!(stderr.contains(option), "{option} missing from {stderr}");
    }
    assert!(
        !cli.dir.join("cli.db").exists(),
        "it stopped before opening the database"
    );
}

/// The service token the replicas are started with (there is no open mode).
const SERVICE_TOKEN: &str = "cli-test-service-token-0123";

/// Sends the replicas' service token: the tests call internal RPCs, as auth-web would.
fn with_service_token(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let value = format!("Bearer {SERVICE_TOKEN}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// A `token-service` process serving gRPC on `addr`; killed when dropped.
struct Replica(std::process::Child);

impl Replica {
    fn start(database_url: &str, addr: &str, cache_seconds: u32) -> Self {
        let child = Self::command(database_url, addr)
            .env(
                "DOORWARD_TOKENS__VALIDATION_CACHE_SECONDS",
                cache_seconds.to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// A replica with `settings` in its environment, logging at info into `log`.
    fn start_logged(
        database_url: &str,
        addr: &str,
        settings: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = Self::command(database_url, addr)
            .envs(settings.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self(child)
    }

    fn command(database_url: &str, addr: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_token-service"));
        command
            .env("DATABASE_URL", database_url)
            .env("TOKEN_SERVICE_ADDR", addr)
            .env("SERVICE_TOKEN", SERVICE_TOKEN);
        command
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn connect(addr: &str) -> tonic::transport::Channel {
    for _ in 0..300 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            return channel;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("token-service on {addr} did not start");
}

/// Two token-service processes on one PostgreSQL database, as replicas run: a token
/// revoked through one is refused by the other's `TokenValidation` within
/// `tokens.validation_cache_seconds` (the documented bound), though the other had it
/// cached as valid.
#[tokio::test]
async fn a_revocation_on_one_replica_reaches_the_other_within_the_cache_bound() {
    use doorward_proto::v1 as pb;
    let Some(admin_url) = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_POSTGRES_URL must be set under CI"
        );
        eprintln!("skipped: TEST_POSTGRES_URL is not set, so the two-replica test did not run");
        return;
    };
    let mut url = url::Url::parse(&admin_url).unwrap();
    let database = format!("doorward_replicas_{}", rand_suffix());
    url.set_path(&database);
    let database_url = url.to_string();
    // The CLI creates the database, migrates it, and registers two applications.
    let cli = Cli::on(&database_url);
    let app = cli.json(
        &[
            "apps",
            "create",
            "--name",
            "Machine",
            "--redirect-uri",
            "https://machine.example/cb",
            "--json",
        ],
        None,
    );
    let rs = cli.json(
        &[
            "apps",
            "create",
            "--name",
            "API",
            "--redirect-uri",
            "https://api.example/cb",
            "--json",
        ],
        None,
    );
    let credentials = |v: &Value| pb::ClientAuthentication {
        client_id: v["uid"].as_str().unwrap().into(),
        client_secret: Some(v["secret"].as_str().unwrap().into()),
        ..Default::default()
    };
    let bound = 2u32;
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let _a = Replica::start(&database_url, &addr_a, bound);
    let _b = Replica::start(&database_url, &addr_b, bound);
    let mut tokens_a = pb::token_service_client::TokenServiceClient::with_interceptor(
        connect(&addr_a).await,
        with_service_token,
    );
    let mut validation_b =
        pb::token_validation_client::TokenValidationClient::new(connect(&addr_b).await);

    let exchanged = tokens_a
        .exchange(pb::ExchangeRequest {
            grant_type: "client_credentials".into(),
            client: Some(credentials(&app)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::exchange_response::Result::Tokens(set)) = exchanged.result else {
        panic!("no tokens: {exchanged:?}");
    };
    let pair = format!(
        "{}:{}",
        rs["uid"].as_str().unwrap(),
        rs["secret"].as_str().unwrap()
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair)
    );
    let validate = |token: String| {
        let mut request = tonic::Request::new(pb::ValidateRequest {
            token,
            required_scopes: vec![],
        });
        request
            .metadata_mut()
            .insert("authorization", basic.parse().unwrap());
        request
    };
    let answer = validation_b
        .validate(validate(set.access_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.active, "replica B validates replica A's token");

    let revoked = tokens_a
        .revoke(pb::RevokeRequest {
            client: Some(credentials(&app)),
            token: set.access_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        revoked.result,
        Some(pb::revoke_response::Result::Revoked(_))
    ));
    let revoked_at = std::time::Instant::now();
    let seen_after = loop {
        let answer = validation_b
            .validate(validate(set.access_token.clone()))
            .await
            .unwrap()
            .into_inner();
        if !answer.active {
            assert_eq!(answer.inactive_reason, "revoked");
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(u64::from(bound) + 2),
            "replica B still accepts the token after the bound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    eprintln!("replica B saw the revocation after {seen_after:?} (bound {bound} s)");
    drop((_a, _b));
    use diesel::{Connection, RunQueryDsl};
    let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .unwrap();
}

/// Issue 6's durability rule: a token that `Exchange` returned survives a `kill -9` of the
/// token service right after the response. It fails if a token is ever answered before its
/// row is committed (what a careless group commit or write-behind cache would do). SQLite in
/// WAL mode with `synchronous = NORMAL` loses nothing when the process dies; only an OS
/// crash could cost the last commits.
#[tokio::test]
async fn a_returned_token_survives_kill_9_of_the_token_service() {
    use doorward_proto::v1 as pb;
    let cli = Cli::new();
    let app = cli.json(
        &[
            "apps",
            "create",
            "--name",
            "Machine",
            "--redirect-uri",
            "https://machine.example/cb",
            "--json",
        ],
        None,
    );
    let credentials = pb::ClientAuthentication {
        client_id: app["uid"].as_str().unwrap().into(),
        client_secret: Some(app["secret"].as_str().unwrap().into()),
        ..Default::default()
    };
    let addr = free_addr();
    let mut replica = Replica::start(&cli.database_url, &addr, 5);
    let mut tokens = pb::token_service_client::TokenServiceClient::with_interceptor(
        connect(&addr).await,
        with_service_token,
    );
    let mut issued = Vec::new();
    for _ in 0..20 {
        let answer = tokens
            .exchange(pb::ExchangeRequest {
                grant_type: "client_credentials".into(),
                client: Some(credentials.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let Some(pb::exchange_response::Result::Tokens(set)) = answer.result else {
            panic!("no tokens: {answer:?}");
        };
        issued.push(set.access_token);
    }
    // SIGKILL right after the last response: no shutdown, no checkpoint.
    replica.0.kill().unwrap();
    replica.0.wait().unwrap();
    drop(replica);

    let addr = free_addr();
    let _restarted = Replica::start(&cli.database_url, &addr, 5);
    let mut tokens = pb::token_service_client::TokenServiceClient::with_interceptor(
        connect(&addr).await,
        with_service_token,
    );
    for token in issued {
        let answer = tokens
            .introspect(pb::IntrospectRequest {
                client: Some(credentials.clone()),
                token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            matches!(
                answer.result,
                Some(pb::introspect_response::Result::Introspection(ref i)) if i.active
            ),
            "a token returned before the kill is still known: {answer:?}"
        );
    }
}

// Scheduled key rotation and `backup`, run against real token-service processes.
#[path = "cli/operations.rs"]
mod operations;

/// The trust that `tls init` sets up, checked as rustls checks it: the CA it wrote.
mod tls {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::crypto::CryptoProvider;
    use rustls::server::WebPkiClientVerifier;
    use rustls::sign::CertifiedKey;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(ca: &Path) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(roots)
    }

    fn cert(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    /// Whether a TLS client trusting `ca` accepts `server` as the server `name`.
    pub fn server_accepts(ca: &Path, server: &Path, name: &str) -> bool {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(&cert(server), &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    /// Whether a TLS server trusting `ca` for client certificates accepts `client`.
    pub fn client_accepts(ca: &Path, client: &Path) -> bool {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&cert(client), &[], UnixTime::now())
            .is_ok()
    }

    /// `key` is a PKCS#8 key and the one whose public half `cert` carries.
    pub fn assert_key_matches(cert_path: &Path, key_path: &Path) {
        let key = PrivateKeyDer::from_pem_file(key_path).unwrap();
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)), "{key_path:?}");
        let signing_key = provider().key_provider.load_private_key(key).unwrap();
        CertifiedKey::new(vec![cert(cert_path)], signing_key)
            .keys_match()
            .unwrap();
    }

    /// A path of the `tls init --json` output.
    pub fn path(value: &serde_json::Value) -> PathBuf {
        PathBuf::from(value.as_str().unwrap())
    }
}

fn tls_init(cli: &Cli, out: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["tls", "init", "--out", out.to_str().unwrap()];
    args.extend(["--host", "127.0.0.1", "--host", "localhost"]);
    args.extend(extra);
    cli.run(&args, None)
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `openssl verify` agrees, when openssl is installed (a second, independent verifier).
fn openssl_verifies(ca: &std::path::Path, cert: &std::path::Path) -> Option<bool> {
    let status = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    Some(status.success())
}

#[test]
fn tls_init_writes_a_ca_and_certificates_that_chain() {
    use tls::path;
    // A database in a folder that does not exist: opening it would create the folder.
    let no_db_dir = std::env::temp_dir().join(format!(
        "doorward-no-db-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let cli = Cli::on(&format!("sqlite://{}", no_db_dir.join("cli.db").display()));
    let out = cli.dir.join("certs");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let written = cli.json(
        &[
            "tls",
            "init",
            "--out",
            out.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--host",
            "localhost",
            "--json",
        ],
        None,
    );
    assert!(!no_db_dir.exists(), "tls init opened no database");
    let out = out.canonicalize().unwrap();
    assert_eq!(path(&written["dir"]), out);
    assert_eq!(mode(&out), 0o700, "a folder it creates is private");
    assert_eq!(
        written["server"]["hosts"],
        serde_json::json!(["127.0.0.1", "localhost"])
    );
    let not_after = written["not_after"].as_i64().unwrap();
    assert!(
        (not_after - started - 365 * 86_400).abs() < 60,
        "{not_after}"
    );

    let ca = path(&written["ca"]);
    let ca_key = out.join("ca-key.pem");
    let pair = |name: &str| (path(&written[name]["cert"]), path(&written[name]["key"]));
    let (server, server_key) = pair("server");
    let (auth_web, auth_web_key) = pair("auth_web");
    for (cert, key) in [
        (&ca, &ca_key),
        (&server, &server_key),
        (&auth_web, &auth_web_key),
    ] {
        assert_eq!(cert.parent(), Some(out.as_path()));
        assert_eq!(mode(key), 0o600, "{key:?}");
        tls::assert_key_matches(cert, key);
    }

    assert!(tls::server_accepts(&ca, &server, "127.0.0.1"));
    assert!(tls::server_accepts(&ca, &server, "localhost"));
    assert!(!tls::server_accepts(&ca, &server, "other.example"));
    assert!(tls::client_accepts(&ca, &auth_web));
    // No resource-server certificate: any client certificate of this CA is internal.
    assert!(written.get("resource_server").is_none());
    assert!(!out.join("resource-server.pem").exists());
    // The extended key usages keep each certificate to its role.
    assert!(!tls::client_accepts(&ca, &server));
    assert!(!tls::server_accepts(&ca, &auth_web, "auth-web"));

    let other_out = cli.dir.join("other");
    let other = cli.json(
        &[
            "tls",
            "init",
            "--out",
            other_out.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--json",
        ],
        None,
    );
    let other_ca = path(&other["ca"]);
    assert!(!tls::server_accepts(&other_ca, &server, "127.0.0.1"));
    assert!(!tls::client_accepts(&other_ca, &auth_web));

    if let Some(verified) = openssl_verifies(&ca, &server) {
        assert!(verified, "openssl verify -CAfile ca.pem server.pem");
        assert_eq!(openssl_verifies(&other_ca, &server), Some(false));
    }
}

#[test]
fn tls_init_refuses_to_overwrite_without_force() {
    let cli = Cli::new();
    let out = cli.dir.join("certs");
    assert!(tls_init(&cli, &out, &[]).status.success());
    let read_all = || {
        let mut files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let contents = std::fs::read(&path).unwrap();
                (path, contents)
            })
            .collect();
        files.sort();
        files
    };
    let before = read_all();
    assert_eq!(before.len(), 6);

    let refused = tls_init(&cli, &out, &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ca.pem already exists"), "{stderr}");
    assert_eq!(read_all(), before, "a refused run changes nothing");

    // --force replaces every file, and a key whose mode was loosened comes back private.
    use std::os::unix::fs::PermissionsExt;
    let key = out.join("server-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let forced = tls_init(&cli, &out, &["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let after = read_all();
    assert_eq!(after.len(), 6);
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        assert_ne!(old, new, "{path:?} was replaced");
    }
    assert_eq!(mode(&key), 0o600);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(
        stdout.contains(&format!(
            "DOORWARD_GRPC_TLS__CLIENT_CA_FILE={}",
            out.canonicalize().unwrap().join("ca.pem").display()
        )),
        "{stdout}"
    );
}
