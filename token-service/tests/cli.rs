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
}

impl Cli {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "doorward-cli-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_token-service"))
            .args(args)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", self.dir.join("cli.db").display()),
            )
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

    let keys = cli.json(&["keys", "list", "--json"], None);
    assert_eq!(keys[0]["algorithm"], "EdDSA");
    assert_eq!(keys[0]["state"], "active");
    let rotated = cli.json(&["keys", "rotate", "--json"], None);
    let keys = cli.json(&["keys", "list", "--json"], None);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_eq!(keys[0]["kid"], rotated["kid"]);
    assert_eq!(
        (keys[0]["state"].as_str(), keys[1]["state"].as_str()),
        (Some("active"), Some("retired"))
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
