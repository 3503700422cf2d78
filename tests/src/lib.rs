//! The end-to-end harness: `TestApp::spawn(backend)` starts token-service and auth-web on
//! free ports, talking real gRPC, against a fresh database (a temporary SQLite file, or a
//! PostgreSQL database created for the test and dropped after it), with an injectable clock.

#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod logs;
pub mod netns;
pub mod pki;

use std::path::PathBuf;
use std::sync::Arc;

use diesel::Connection;
use diesel::RunQueryDsl;
use diesel::pg::PgConnection;
use doorward_shared::config::Config;
use doorward_shared::{ManualClock, Secret};
use serde_json::Value;
use token_service::apps::ApplicationFields;
use token_service::{AppState, TokenServiceApp};

/// The environment variable with a PostgreSQL URL (any database; tests create their own).
pub const POSTGRES_URL_VAR: &str = "TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on this server (admin URL).
    Postgres(String),
}

impl Backend {
    /// PostgreSQL if its URL is set.
    pub fn postgres() -> Option<Self> {
        std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())
            .map(Backend::Postgres)
    }
}

/// Says that a PostgreSQL test did not run; under CI (where `.ci/run` sets the URL) a
/// missing URL is a failure, so that a green CI always means both databases ran.
pub fn skip_postgres(test: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{POSTGRES_URL_VAR} must be set under CI; {test} cannot run on PostgreSQL");
    }
    eprintln!("skipped: {POSTGRES_URL_VAR} is not set, so {test} did not run on PostgreSQL");
}

/// Runs a test body on SQLite and, when `TEST_POSTGRES_URL` is set, on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    match $crate::Backend::postgres() {
                        Some(backend) => super::$name(backend).await,
                        None => $crate::skip_postgres(stringify!($name)),
                    }
                }
            }
        )*
    };
}

/// A registered application.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// client_id.
    pub id: String,
    /// client_secret (empty for public clients).
    pub secret: String,
}

/// Adds `authorization: Bearer <service token>` to every call (none: sends nothing).
#[derive(Clone)]
pub struct ServiceToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for ServiceToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the service token.
pub type InternalChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ServiceToken>;

/// Set as `public_url` in `spawn_with`: the issuer becomes auth-web's bound address.
pub const ISSUER_ON_BOUND_PORT: &str = "http://127.0.0.1:0";

/// Both services running on free ports.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of auth-web.
    pub base: String,
    /// A cookie-keeping HTTP client.
    pub http: reqwest::Client,
    /// The token service's shared state (to inspect the database).
    pub state: AppState,
    /// The clock both services read.
    pub clock: ManualClock,
    /// The configuration the services were started with.
    pub config: Config,
    grpc_addr: std::net::SocketAddr,
    grpc_stop: Option<tokio::sync::oneshot::Sender<()>>,
    grpc_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    web_handle: actix_web::dev::ServerHandle,
    sqlite_dir: Option<PathBuf>,
    postgres: Option<(String, String)>,
    /// token-service's Unix socket, when auth-web reaches it that way.
    socket: Option<PathBuf>,
}

fn random_suffix() -> String {
    hex_suffix(&rand::random::<[u8; 8]>())
}

fn hex_suffix(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PostgreSQL URL with its database replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host_part = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{database}?{q}"),
        None => format!("{host_part}/{database}"),
    }
}

impl TestApp {
    /// Starts both services on `backend` with the default configuration.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts both services, letting the test adjust the configuration first.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start(backend, adjust, false).await
    }

    /// Starts both services with TLS on every link, from `pki` (`pki::TestPki`): mTLS on
    /// token-service's gRPC port (auth-web presents `client.pem`; no service token), and
    /// HTTPS on auth-web, which `http` trusts. The issuer is `https://` auth-web's address.
    pub async fn spawn_tls(backend: Backend, pki: &pki::TestPki) -> Self {
        Self::start(
            backend,
            |config| {
                config.service_token = None;
                config.public_url = ISSUER_ON_BOUND_PORT.into();
                config.grpc_tls = Some(doorward_shared::config::GrpcTlsConfig {
                    cert_file: pki.cert("server"),
                    key_file: pki.key("server"),
                    client_ca_file: Some(pki.cert("ca")),
                });
                config.token_service_tls = Some(doorward_shared::config::TokenServiceTlsConfig {
                    ca_file: pki.cert("ca"),
                    cert_file: Some(pki.cert("client")),
                    key_file: Some(pki.key("client")),
                });
                config.web_tls = Some(doorward_shared::config::WebTlsConfig {
                    cert_file: pki.cert("server"),
                    key_file: pki.key("server"),
                });
            },
            false,
        )
        .await
    }

    /// Starts both services with auth-web reaching token-service over a Unix socket (as
    /// the all-in-one binary does) instead of TCP.
    pub async fn spawn_over_unix_socket(backend: Backend) -> Self {
        Self::start(backend, |_| {}, true).await
    }

    async fn start(backend: Backend, adjust: impl FnOnce(&mut Config), over_socket: bool) -> Self {
        logs::init();
        let socket = over_socket.then(|| {
            let dir = std::env::temp_dir().join(format!("doorward-sock-{}", random_suffix()));
            std::fs::create_dir_all(&dir).unwrap();
            dir.join("token-service.sock")
        });
        let mut config = Config::default();
        let (database_url, sqlite_dir, postgres) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("doorward-test-{}", random_suffix()));
                std::fs::create_dir_all(&dir).unwrap();
                (
                    format!("sqlite://{}", dir.join("doorward.db").display()),
                    Some(dir),
                    None,
                )
            }
            Backend::Postgres(admin_url) => {
                let name = format!("doorward_test_{}", random_suffix());
                let mut admin = PgConnection::establish(&admin_url).expect("connect to PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .unwrap();
                (
                    with_database(&admin_url, &name),
                    None,
                    Some((admin_url, name)),
                )
            }
        };
        config.database_url = database_url;
        config.token_service_addr = "127.0.0.1:0".into();
        config.auth_web_addr = "127.0.0.1:0".into();
        config.web.workers = Some(2);
        config.database.pool_size = Some(8);
        // Rotated keys reach the running service within a second.
        config.tokens.key_reload_seconds = 1;
        // New keys sign at once unless a test asks for a publication lead (SEC-JW-08).
        config.tokens.key_publish_ahead_seconds = 0;
        // There is no open mode: auth-web over TCP and the tests' own internal gRPC clients
        // (`internal_channel`) prove themselves with a service token. Over the socket, as in
        // the all-in-one binary, there is none: the socket's peer is the internal caller.
        if !over_socket {
            config.service_token = Some(Secret::new(format!(
                "test-service-token-{}",
                random_suffix()
            )));
        }
        adjust(&mut config);
        // A test that asks for `public_url = ISSUER_ON_BOUND_PORT` gets the address auth-web
        // listens on as its issuer (OpenID Connect discovery fetches from the issuer).
        let web_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if config.web_tls.is_some() {
            "https"
        } else {
            "http"
        };
        if config.public_url == ISSUER_ON_BOUND_PORT {
            config.public_url = format!("{scheme}://{}", web_listener.local_addr().unwrap());
        }

        let clock = ManualClock::new();
        config.token_service_socket = socket.clone();
        let token_service = TokenServiceApp::build(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("token-service starts");
        let grpc_addr = token_service.local_addr().unwrap();
        let state = token_service.state().clone();
        let (grpc_stop, stopped) = tokio::sync::oneshot::channel();
        let grpc_task = tokio::spawn(token_service.run(async {
            let _ = stopped.await;
        }));

        let mut web_config = config.clone();
        web_config.token_service_url = match &socket {
            Some(path) => format!("unix:{}", path.display()),
            None if config.grpc_tls.is_some() => format!("https://{grpc_addr}"),
            None => format!("http://{grpc_addr}"),
        };
        let auth_web =
            auth_web::AuthWebApp::build_on(web_listener, web_config, Arc::new(clock.clone()))
                .expect("auth-web starts");
        let base = format!("{scheme}://{}", auth_web.local_addr());
        let web_handle = auth_web.handle();
        tokio::spawn(auth_web.run());

        let mut http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none());
        // Over HTTPS the tests trust the CA that token-service's certificate comes from
        // (`spawn_tls` uses one CA for both).
        if let (Some(_), Some(tls)) = (&config.web_tls, &config.token_service_tls) {
            let ca = std::fs::read(&tls.ca_file).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
        }
        let http = http.build().unwrap();
        Self {
            base,
            http,
            state,
            clock,
            config,
            grpc_addr,
            grpc_stop: Some(grpc_stop),
            grpc_task: Some(grpc_task),
            web_handle,
            sqlite_dir,
            postgres,
            socket,
        }
    }

    /// token-service's Unix socket, for a TestApp started over one.
    pub fn socket(&self) -> Option<&std::path::Path> {
        self.socket.as_deref()
    }

    /// `http://ADDR` of the token service's gRPC port.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A channel to the token service's TCP port that proves itself an internal caller, as
    /// auth-web does (the configured service token).
    pub async fn internal_channel(&self) -> InternalChannel {
        let channel = tonic::transport::Channel::from_shared(self.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let token = self
            .config
            .service_token
            .as_ref()
            .map(|t| format!("Bearer {}", t.expose()).parse().unwrap());
        tonic::service::interceptor::InterceptedService::new(channel, ServiceToken(token))
    }

    /// A gRPC client of the token service's `Authorizations` API, as an internal caller.
    pub async fn authorizations(
        &self,
    ) -> doorward_proto::v1::authorizations_client::AuthorizationsClient<InternalChannel> {
        doorward_proto::v1::authorizations_client::AuthorizationsClient::new(
            self.internal_channel().await,
        )
    }

    /// `GET path` on auth-web, its body as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An absolute URL of auth-web.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the token service (auth-web keeps running).
    pub async fn stop_token_service(&mut self) {
        if let Some(stop) = self.grpc_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.grpc_task.take() {
            let _ = task.await;
        }
    }

    /// Starts the token service again on the same address and database.
    pub async fn restart_token_service(&mut self) {
        let mut config = self.config.clone();
        config.token_service_addr = self.grpc_addr.to_string();
        let token_service = TokenServiceApp::build(config, Arc::new(self.clock.clone()))
            .await
            .expect("token-service restarts");
        let (grpc_stop, stopped) = tokio::sync::oneshot::channel();
        self.grpc_stop = Some(grpc_stop);
        self.grpc_task = Some(tokio::spawn(token_service.run(async {
            let _ = stopped.await;
        })));
    }

    /// Creates a user with `password`; returns its id.
    pub async fn create_user(&self, username: &str, password: &str) -> i64 {
        self.create_account(username, password, false).await
    }

    /// Creates an administrator with `password`; returns its id.
    pub async fn create_admin(&self, username: &str, password: &str) -> i64 {
        self.create_account(username, password, true).await
    }

    async fn create_account(&self, username: &str, password: &str, admin: bool) -> i64 {
        let account = token_service::accounts::NewAccount {
            username: username.into(),
            email: format!("{username}@example.com"),
            name: format!("{username} Example"),
            password: Secret::new(password),
            admin,
        };
        match token_service::accounts::create(&self.state, account).await {
            Ok(user) => user.id,
            Err(e) => panic!("could not create user: {e:?}"),
        }
    }

    /// Registers an application with every grant its kind allows (minus `password` unless
    /// `password_grant`).
    pub async fn create_client(
        &self,
        scopes: &str,
        confidential: bool,
        password_grant: bool,
    ) -> TestClient {
        let grants: Vec<String> = token_service::apps::default_grant_types(confidential)
            .into_iter()
            .filter(|g| password_grant || g != "password")
            .collect();
        self.create_client_with_grants(scopes, confidential, &grants.join(" "))
            .await
    }

    /// Registers an application allowed exactly `grant_types` (space separated).
    pub async fn create_client_with_grants(
        &self,
        scopes: &str,
        confidential: bool,
        grant_types: &str,
    ) -> TestClient {
        self.register(ApplicationFields {
            name: "Test app".into(),
            redirect_uris: vec!["https://app.example/callback".into()],
            scopes: vec![scopes.into()],
            confidential,
            trusted: false,
            grant_types: vec![grant_types.into()],
            owner_id: None,
        })
        .await
    }

    /// Registers an application with exactly these fields; its secret is empty if public.
    pub async fn register(&self, fields: ApplicationFields) -> TestClient {
        let now = self.state.now();
        let (app, secret) = self
            .state
            .db(move |conn| {
                token_service::apps::create(conn, &fields, now).map_err(|e| {
                    token_service::error::ServiceError::Db(
                        diesel::result::Error::QueryBuilderError(format!("{e:?}").into()),
                    )
                })
            })
            .await
            .unwrap();
        TestClient {
            id: app.uid,
            secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
        }
    }

    /// A confidential client with `api read_user` and the password grant.
    pub async fn default_client(&self) -> TestClient {
        self.create_client("api read_user", true, true).await
    }

    /// `POST /oauth/token` with a form body.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `POST /oauth/token` with HTTP Basic client authentication.
    pub async fn token_basic(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/token"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The password grant for `username` with `scope`, the client authenticating with HTTP
    /// Basic; asserts success and returns the token response.
    pub async fn password_grant_scoped(
        &self,
        client: &TestClient,
        username: &str,
        password: &str,
        scope: &str,
    ) -> Value {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", scope),
        ];
        let response = self.token_basic(client, &form).await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        response.json().await.unwrap()
    }

    /// The password grant for `username` through `client` (client_secret_post); the JSON.
    pub async fn password_grant(
        &self,
        client: &TestClient,
        username: &str,
        password: &str,
    ) -> Value {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", &client.id),
                ("client_secret", &client.secret),
            ])
            .await;
        assert_eq!(response.status(), 200, "password grant failed");
        response.json().await.unwrap()
    }

    /// A refresh through `client`; status and JSON.
    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> (u16, Value) {
        let response = self
            .token_basic(
                client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `GET /api/v4/user` with a bearer header; status and JSON.
    pub async fn api_user(&self, access_token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/api/v4/user"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &'static str) -> i64 {
        self.scalar(format!("SELECT COUNT(*) AS n FROM {table}"))
            .await
    }

    /// A single integer from `sql` (its column must be named `n`).
    pub async fn scalar(&self, sql: String) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.state
            .db(move |conn| {
                let rows: Vec<N> = diesel::sql_query(sql).load(conn)?;
                Ok::<_, token_service::error::ServiceError>(rows.first().map_or(0, |r| r.n))
            })
            .await
            .unwrap()
    }

    /// Blocks a user (state "blocked").
    pub async fn block_user(&self, id: i64) {
        let now = self.state.now();
        let changes = self.state.token_changes.clone();
        self.state
            .db(move |conn| {
                Ok::<_, token_service::error::ServiceError>(token_service::db::users::set_state(
                    conn, &changes, id, "blocked", now,
                )?)
            })
            .await
            .unwrap();
    }
}

/// Drops a test database, closing any connection still open to it.
pub fn drop_postgres_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::establish(admin_url) {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.grpc_stop.take() {
            let _ = stop.send(());
        }
        let handle = self.web_handle.clone();
        // Stopping is asynchronous; the runtime ends with the test anyway.
        drop(handle.stop(false));
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin_url, name)) = &self.postgres {
            drop_postgres_database(admin_url, name);
        }
        if let Some(dir) = self.socket.as_ref().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_get_their_database_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "t"),
            "postgres://u@h:5432/t"
        );
        assert_eq!(with_database("postgres://u@h", "t"), "postgres://u@h/t");
        assert_eq!(
            with_database("postgres://u@h/x?sslmode=disable", "t"),
            "postgres://u@h/t?sslmode=disable"
        );
    }
}
