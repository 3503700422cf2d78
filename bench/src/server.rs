//! Starting Doorward for a benchmark: the all-in-one `doorward` binary, or `token-service`
//! and `auth-web` as two processes, on free loopback ports, against a scratch folder
//! (SQLite) or a PostgreSQL URL; and seeding it through the operator CLI of the same build.
//!
//! token-service answers internal RPCs only to identified callers, so the services always
//! get a random `SERVICE_TOKEN`, which the harness sends too (`Target::service_token`).
//! With `--tls` (split only), auth-web reaches token-service over mutual TLS, with
//! certificates from `token-service tls init`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::procstat::Watched;

/// How the services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One `doorward` process holding both services.
    AllInOne,
    /// `token-service` and `auth-web` as separate processes.
    Split,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// All-in-one or split.
    pub mode: Mode,
    /// The folder holding the `doorward` (or `token-service` and `auth-web`) binaries.
    pub bin_dir: PathBuf,
    /// A PostgreSQL URL; `None`: SQLite in the scratch folder.
    pub database_url: Option<String>,
    /// Keep the scratch folder (database and logs) after the run.
    pub keep_scratch: bool,
    /// `RUST_LOG` for the services (`None`: their default).
    pub rust_log: Option<String>,
    /// Extra users to seed for minting codes (see `Target::code_user_ids`).
    pub code_users: usize,
    /// Configuration for the services, as `DOORWARD_*` variables, on top of (and
    /// overriding) [`BENCH_SERVER_ENV`].
    pub server_env: Vec<(String, String)>,
    /// Split only: token-service's gRPC port speaks TLS, auth-web presents a client
    /// certificate (mutual TLS), and the harness's gRPC clients trust the scratch CA.
    pub tls: bool,
}

/// The configuration the harness gives the services it starts, beyond addresses and the
/// database. The sign-in throttle counts each password attempt *before* checking it and
/// forgives it only after a success (SEC-RL-01), so at most `per_account_and_ip` (5)
/// password checks of one user from one IP can be in flight: at concurrency 16 the rest
/// are refused `429 invalid_grant` with `Retry-After`. The `password` scenario measures
/// the grant and argon2, not the throttle, so the limits are lifted. `--server-env` can
/// set them back (for example `DOORWARD_SIGN_IN_LIMITS__PER_ACCOUNT_AND_IP=5`).
pub const BENCH_SERVER_ENV: &[(&str, &str)] = &[
    ("DOORWARD_SIGN_IN_LIMITS__PER_ACCOUNT_AND_IP", "1000000000"),
    ("DOORWARD_SIGN_IN_LIMITS__PER_IP", "1000000000"),
];

/// [`BENCH_SERVER_ENV`] with `overrides` applied (same key: the override wins).
pub fn server_env(overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = BENCH_SERVER_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (key, value) in overrides {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

/// A scratch PostgreSQL database made for one benchmark, dropped afterwards.
#[derive(Debug, Clone)]
pub struct ScratchPg {
    /// The URL given with `--database-url`: how to reach the server, and the database
    /// the probe and the drop connect to (never the one measured).
    pub admin_url: String,
    /// The scratch database's name.
    pub name: String,
}

/// A started Doorward; stopped (and its scratch folder removed) when dropped.
pub struct Launched {
    /// `http://127.0.0.1:PORT` of auth-web.
    pub http_base: String,
    /// `http://127.0.0.1:PORT` of token-service (`https://` with TLS).
    pub grpc_url: String,
    /// The CA of token-service's certificate (PEM), when its gRPC port speaks TLS.
    pub grpc_ca_file: Option<PathBuf>,
    /// The `SERVICE_TOKEN` the services were given: internal RPCs (GetStats, IssueCode)
    /// send it.
    pub service_token: String,
    /// The processes, for CPU and memory readings.
    pub watched: Vec<Watched>,
    /// The scratch folder (database, logs).
    pub scratch: PathBuf,
    /// A description of the database (`sqlite` or the PostgreSQL URL without password).
    pub database: String,
    /// The scratch PostgreSQL database, when running on PostgreSQL.
    pub pg: Option<ScratchPg>,
    /// The configuration given to the services beyond addresses and the database, for
    /// the results: secrets appear as `[set]`, never with their value.
    pub server_env: Vec<(String, String)>,
    children: Vec<Child>,
    cli_bin: PathBuf,
    /// Environment of every process (services and CLI).
    env: Vec<(String, String)>,
    /// Environment of one service only, on top of `env` (the TLS settings).
    process_env: Vec<(&'static str, Vec<(String, String)>)>,
    keep_scratch: bool,
}

/// A user and an application made by [`seed`].
#[derive(Debug, Clone, Serialize)]
pub struct Seeded {
    /// The user's login.
    pub username: String,
    /// Its password.
    #[serde(skip)]
    pub password: String,
    /// Its id.
    pub user_id: i64,
    /// Users for minting codes (see `Target::code_user_ids`).
    pub code_user_ids: Vec<i64>,
    /// The application's client_id.
    pub client_id: String,
    /// Its secret.
    #[serde(skip)]
    pub client_secret: String,
    /// A redirect URI registered for it.
    pub redirect_uri: String,
}

/// The redirect URI the benchmark application is registered with.
pub const REDIRECT_URI: &str = "http://127.0.0.1/doorward-bench/callback";

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

fn random_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A `SERVICE_TOKEN` for one benchmark: 32 hex characters (128 random bits).
fn random_service_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The files `tls init` wrote, as its `--json` output names them.
struct TlsFiles {
    ca: String,
    server_cert: String,
    server_key: String,
    auth_web_cert: String,
    auth_web_key: String,
}

impl TlsFiles {
    fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let path = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("`tls init --json` printed no {pointer}"))
        };
        Ok(Self {
            ca: path("/ca")?,
            server_cert: path("/server/cert")?,
            server_key: path("/server/key")?,
            auth_web_cert: path("/auth_web/cert")?,
            auth_web_key: path("/auth_web/key")?,
        })
    }
}

/// Hides the password of a database URL for the results.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Launched {
    /// Creates the scratch folder and the environment, seeds the database through the CLI
    /// (which creates and migrates it), then starts the services and waits until auth-web
    /// answers.
    pub async fn start(options: &LaunchOptions) -> anyhow::Result<(Self, Seeded)> {
        if options.tls && options.mode != Mode::Split {
            // The all-in-one's auth-web reaches token-service over a Unix socket: there
            // is no link between the services to put TLS on.
            bail!(
                "--tls needs --mode split: the all-in-one's services talk over a Unix socket, with no link to put TLS on"
            );
        }
        let (cli_name, names): (&str, &[&str]) = match options.mode {
            Mode::AllInOne => ("doorward", &["doorward"]),
            Mode::Split => ("token-service", &["token-service", "auth-web"]),
        };
        for name in names {
            let path = options.bin_dir.join(name);
            if !path.is_file() {
                bail!(
                    "{} is not built: run `cargo build --release --workspace` first (or pass --bin-dir)",
                    path.display()
                );
            }
        }
        let scratch = std::env::temp_dir().join(format!("doorward-bench-{}", random_suffix()));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("could not create {}", scratch.display()))?;
        let http_port = free_port()?;
        let grpc_port = free_port()?;
        // On PostgreSQL, a scratch database of its own (token-service creates it when the
        // CLI first connects), so that nothing else is measured or left behind.
        let (database_url, database, pg) = match &options.database_url {
            Some(url) => {
                let name = format!("doorward_bench_{}", random_suffix());
                let scratch_url = crate::pgstats::with_database(url, &name);
                let database = redact_url(&scratch_url);
                let pg = ScratchPg {
                    admin_url: url.clone(),
                    name,
                };
                (scratch_url, database, Some(pg))
            }
            None => (
                format!("sqlite://{}", scratch.join("doorward.db").display()),
                "sqlite".to_owned(),
                None,
            ),
        };
        let server_env = server_env(&options.server_env);
        let mut env = vec![
            ("DATA_DIR".to_owned(), scratch.display().to_string()),
            ("DATABASE_URL".to_owned(), database_url),
            (
                "TOKEN_SERVICE_ADDR".to_owned(),
                format!("127.0.0.1:{grpc_port}"),
            ),
            (
                "TOKEN_SERVICE_URL".to_owned(),
                format!("http://127.0.0.1:{grpc_port}"),
            ),
            ("AUTH_WEB_ADDR".to_owned(), format!("127.0.0.1:{http_port}")),
            (
                "PUBLIC_URL".to_owned(),
                format!("http://127.0.0.1:{http_port}"),
            ),
        ];
        env.extend(server_env.iter().cloned());
        // token-service has no open mode: without a way to identify internal callers the
        // split token-service does not start, and the all-in-one answers only
        // TokenValidation and health on TCP. The harness is an internal caller (GetStats,
        // IssueCode), so it holds the token too.
        let service_token = random_service_token();
        env.push(("SERVICE_TOKEN".to_owned(), service_token.clone()));
        let mut recorded_env = server_env;
        recorded_env.push(("SERVICE_TOKEN".to_owned(), "[set]".to_owned()));
        if let Some(filter) = &options.rust_log {
            env.push(("RUST_LOG".to_owned(), filter.clone()));
        }
        let mut launched = Self {
            http_base: format!("http://127.0.0.1:{http_port}"),
            grpc_url: format!("http://127.0.0.1:{grpc_port}"),
            grpc_ca_file: None,
            service_token,
            watched: Vec::new(),
            scratch,
            database,
            pg,
            server_env: recorded_env,
            children: Vec::new(),
            cli_bin: options.bin_dir.join(cli_name),
            env,
            process_env: Vec::new(),
            keep_scratch: options.keep_scratch,
        };
        if options.tls {
            launched.configure_tls(grpc_port)?;
        }
        let seeded = seed(&launched, options.code_users)?;
        for name in names {
            launched.spawn(&options.bin_dir, name)?;
        }
        launched.wait_ready(Duration::from_secs(60)).await?;
        Ok((launched, seeded))
    }

    /// Writes a CA and certificates into the scratch folder (`tls init`, which opens no
    /// database) and sets each service up for mutual TLS between them: token-service
    /// serves gRPC over TLS and takes certificates of that CA as internal callers;
    /// auth-web connects over https with its client certificate. auth-web's own
    /// listener stays HTTP: the load goes to it in plaintext, as before.
    fn configure_tls(&mut self, grpc_port: u16) -> anyhow::Result<()> {
        let dir = self.scratch.join("tls");
        let dir = dir
            .to_str()
            .context("the scratch folder's path is not UTF-8")?;
        let written = self.cli(&["tls", "init", "--out", dir, "--host", "127.0.0.1"], None)?;
        let files = TlsFiles::from_json(&written)?;
        let url = format!("https://127.0.0.1:{grpc_port}");
        let set = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        self.process_env = vec![
            (
                "token-service",
                set(&[
                    ("DOORWARD_GRPC_TLS__CERT_FILE", &files.server_cert),
                    ("DOORWARD_GRPC_TLS__KEY_FILE", &files.server_key),
                    ("DOORWARD_GRPC_TLS__CLIENT_CA_FILE", &files.ca),
                ]),
            ),
            (
                "auth-web",
                // Replaces the `http://` TOKEN_SERVICE_URL of the common environment
                // (`Command::env` updates a variable already set).
                set(&[
                    ("TOKEN_SERVICE_URL", &url),
                    ("DOORWARD_TOKEN_SERVICE_TLS__CA_FILE", &files.ca),
                    (
                        "DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE",
                        &files.auth_web_cert,
                    ),
                    ("DOORWARD_TOKEN_SERVICE_TLS__KEY_FILE", &files.auth_web_key),
                ]),
            ),
        ];
        self.grpc_url = url;
        self.grpc_ca_file = Some(PathBuf::from(files.ca));
        Ok(())
    }

    fn spawn(&mut self, bin_dir: &Path, name: &str) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.scratch.join(format!("{name}.log")))?;
        let own_env = self
            .process_env
            .iter()
            .filter(|(process, _)| *process == name)
            .flat_map(|(_, env)| env);
        let child = Command::new(bin_dir.join(name))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(own_env.map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("could not start {name}"))?;
        self.watched.push(Watched {
            name: name.to_owned(),
            pid: child.id(),
        });
        self.children.push(child);
        Ok(())
    }

    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let http = reqwest::Client::new();
        let url = format!("{}/.well-known/openid-configuration", self.http_base);
        loop {
            for (child, watched) in self.children.iter_mut().zip(&self.watched) {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{} exited ({status}) before it was ready; see {}",
                        watched.name,
                        self.scratch.join(format!("{}.log", watched.name)).display()
                    );
                }
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                // auth-web answers before it has reached token-service in split mode:
                // the JWKS comes from token-service.
                let keys = http
                    .get(format!("{}/oauth/discovery/keys", self.http_base))
                    .send()
                    .await;
                if keys.is_ok_and(|r| r.status().is_success()) {
                    return Ok(());
                }
            }
            if started.elapsed() > limit {
                bail!("Doorward did not answer on {url} within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an operator command of the same build (with `--json`) and returns the JSON it
    /// printed on its last line.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<serde_json::Value> {
        let mut child = Command::new(&self.cli_bin)
            .args(args)
            .arg("--json")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // The CLI only needs the database; it must not bind the services' ports.
            .env("RUST_LOG", "warn")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not run {}", self.cli_bin.display()))?;
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().context("no stdin")?;
            pipe.write_all(input.as_bytes())?;
            pipe.write_all(b"\n")?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "`{} {}` failed: {}",
                self.cli_bin.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("`{}` printed no JSON: {stdout}", args.join(" ")))?;
        Ok(serde_json::from_str(line)?)
    }
}

fn create_user(launched: &Launched, username: &str, password: &str) -> anyhow::Result<i64> {
    let email = format!("{username}@bench.example");
    let user = launched.cli(
        &[
            "users",
            "create",
            "--username",
            username,
            "--email",
            &email,
            "--password-stdin",
        ],
        Some(password),
    )?;
    user["id"].as_i64().context("users create printed no id")
}

/// Creates the benchmark's user, `code_users` more users for minting codes, and a
/// confidential application allowed every grant the scenarios use, through the operator
/// CLI.
pub fn seed(launched: &Launched, code_users: usize) -> anyhow::Result<Seeded> {
    let suffix = random_suffix();
    let username = format!("bench-{suffix}");
    let password = format!("bench password {suffix} {}", random_suffix());
    let user_id = create_user(launched, &username, &password)?;
    let code_user_ids = (0..code_users)
        .map(|i| {
            let password = format!("bench password {suffix} {}", random_suffix());
            create_user(launched, &format!("{username}-codes-{i}"), &password)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let app = launched.cli(
        &[
            "apps",
            "create",
            "--name",
            "doorward-bench",
            "--redirect-uri",
            REDIRECT_URI,
            "--scopes",
            "api read_user",
            "--grant-types",
            "authorization_code refresh_token client_credentials password",
        ],
        None,
    )?;
    let client_id = app["uid"].as_str().context("apps create printed no uid")?;
    let client_secret = app["secret"]
        .as_str()
        .context("apps create printed no secret")?;
    Ok(Seeded {
        username,
        password,
        user_id,
        code_user_ids,
        client_id: client_id.to_owned(),
        client_secret: client_secret.to_owned(),
        redirect_uri: REDIRECT_URI.to_owned(),
    })
}

impl Drop for Launched {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pg) = &self.pg {
            if self.keep_scratch {
                eprintln!("kept the scratch database {}", pg.name);
            } else if let Err(e) = crate::pgstats::drop_database(&pg.admin_url, &pg.name) {
                eprintln!("could not drop the scratch database {}: {e}", pg.name);
            }
        }
        if self.keep_scratch {
            eprintln!("kept the scratch folder {}", self.scratch.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_is_lifted_unless_overridden() {
        let env = server_env(&[]);
        assert!(
            env.iter()
                .any(|(k, _)| k == "DOORWARD_SIGN_IN_LIMITS__PER_ACCOUNT_AND_IP")
        );
        let env = server_env(&[
            (
                "DOORWARD_SIGN_IN_LIMITS__PER_ACCOUNT_AND_IP".into(),
                "5".into(),
            ),
            ("DOORWARD_PASSWORDS__MAX_QUEUED_HASHES".into(), "8".into()),
        ]);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(
            get("DOORWARD_SIGN_IN_LIMITS__PER_ACCOUNT_AND_IP"),
            Some("5")
        );
        assert_eq!(get("DOORWARD_PASSWORDS__MAX_QUEUED_HASHES"), Some("8"));
        assert_eq!(
            env.iter()
                .filter(|(k, _)| k == "DOORWARD_SIGN_IN_LIMITS__PER_ACCOUNT_AND_IP")
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn tls_is_refused_for_the_all_in_one() {
        let options = LaunchOptions {
            mode: Mode::AllInOne,
            bin_dir: PathBuf::from("/nonexistent"),
            database_url: None,
            keep_scratch: false,
            rust_log: None,
            code_users: 0,
            server_env: Vec::new(),
            tls: true,
        };
        let refused = Launched::start(&options)
            .await
            .err()
            .expect("refused before anything starts");
        assert!(
            refused.to_string().contains("--tls needs --mode split"),
            "{refused}"
        );
    }

    #[test]
    fn service_tokens_are_long_enough_and_random() {
        let (a, b) = (random_service_token(), random_service_token());
        // token-service refuses a SERVICE_TOKEN under 16 characters.
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn database_passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://bench:s3cret@127.0.0.1:5432/doorward"),
            "postgres://bench:***@127.0.0.1:5432/doorward"
        );
        assert_eq!(
            redact_url("postgres://bench@127.0.0.1/doorward"),
            "postgres://bench@127.0.0.1/doorward"
        );
        assert_eq!(redact_url("sqlite"), "sqlite");
    }
}
