//! Building and running the token service: `build(config, clock)` opens the database,
//! applies migrations, loads keys and binds the listener (port 0 works); `run(shutdown)`
//! serves gRPC until the shutdown future completes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use doorward_proto::v1 as pb;
use doorward_shared::clock::SharedClock;
use doorward_shared::config::Config;
use doorward_shared::secret::random_bytes;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

use crate::clients::cache::CallerCache;
use crate::db;
use crate::error::ServiceError;
use crate::grpc::applications::ApplicationsImpl;
use crate::grpc::authorizations::AuthorizationsImpl;
use crate::grpc::caller::{Audience, CallerCheck};
use crate::grpc::device_authorizations::DeviceAuthorizationsImpl;
use crate::grpc::token_service::TokenServiceImpl;
use crate::grpc::token_validation::TokenValidationImpl;
use crate::grpc::users::UsersImpl;
use crate::keys::KeyRing;
use crate::monitoring::Readiness;
use crate::passwords::PasswordHasher;
use crate::state::AppState;
use crate::throttle::SignInThrottle;
use crate::validation::cache::ValidationCache;

/// Largest gRPC message accepted (SEC-DS-05): token requests are small.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The database pool's size: `database.pool_size`, or twice the cores (at least 4).
pub fn pool_size(config: &Config) -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    config.database.pool_size.unwrap_or((cores * 2).max(4))
}

/// The tokio runtime token-service runs on: a worker per core, and no more blocking threads
/// than the database pool can keep busy, plus a few for start-up and housekeeping. (Tokio's
/// default of 512 let a burst of cache misses start dozens of threads, each keeping an
/// allocator heap of its own: 95 threads and +60 MiB of RSS in the benchmark.)
pub fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("token-service")
        .max_blocking_threads(pool_size(config) as usize + 4)
        .build()
}

/// Opens the database (migrating it) and loads everything a request needs.
pub async fn open_state(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    let config = Arc::new(config);
    let pool_size = pool_size(&config);
    let timeout = Duration::from_millis(config.database.connection_timeout_ms);
    let url = config.database_url.clone();
    let issuer = config.issuer().to_owned();
    let audience = config.access_token_audience().to_owned();
    let times = crate::keys::KeyTimes::from_config(&config);
    let now = clock.now();
    let statements = db::StatementCount::default();
    let counted = statements.clone();
    let (pool, keys, refresh_key) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let pool = db::connect_counted(&url, pool_size, timeout, counted)?;
        let mut conn = pool.get().context("could not get a database connection")?;
        let keys = KeyRing::load_or_create(&mut conn, &issuer, &audience, times, now)?;
        let refresh_key = db::secrets::get_or_create(
            &mut conn,
            "refresh_successor_key",
            || random_bytes::<32>().to_vec(),
            now,
        )?;
        Ok((pool, keys, refresh_key))
    })
    .await??;
    // SQLite has one writer, and its WAL checkpoints run beside it; PostgreSQL takes writes
    // from several connections at once.
    let sqlite = matches!(
        db::DatabaseTarget::parse(&config.database_url)?,
        db::DatabaseTarget::Sqlite(_)
    );
    let (writers, checkpoints) = match db::DatabaseTarget::parse(&config.database_url)? {
        db::DatabaseTarget::Sqlite(_) => (
            1,
            Some(
                db::checkpoint::Checkpointer::start(pool.clone())
                    .context("could not start the WAL checkpoints")?,
            ),
        ),
        db::DatabaseTarget::Postgres(_) => (2, None),
    };
    let writer = db::writer::Writer::start(pool.clone(), writers, checkpoints)
        .context("could not start the database writer")?;
    Ok(AppState {
        clients: Arc::new(crate::clients::cache::ApplicationCache::new(
            config.tokens.client_cache_seconds,
        )),
        writer,
        pool,
        keys: Arc::new(keys),
        hasher: PasswordHasher::new(&config.passwords)?,
        throttle: Arc::new(SignInThrottle::new(config.sign_in_limits.clone())),
        client_throttle: Arc::new(SignInThrottle::new((&config.client_auth_limits).into())),
        device_throttle: Arc::new(SignInThrottle::new((&config.device).into())),
        refresh_derivation_key: Arc::new(refresh_key),
        validation_cache: Arc::new(ValidationCache::new(config.tokens.validation_cache_entries)),
        caller_cache: Arc::new(CallerCache::default()),
        read_before_write: sqlite,
        token_changes: db::TokenChanges::default(),
        statements,
        config,
        clock,
    })
}

/// Every `tokens.key_reload_seconds` (and once at start): rotates the keys that
/// `tokens.key_rotation_days` says are due, then re-reads the signing keys, so that a
/// rotation or revocation made anywhere against the shared database reaches this process
/// within that bound.
fn spawn_key_reloader(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let every = state.config.tokens.key_reload_seconds;
    if every == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(every));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let tick_state = state.clone();
            let reloaded = state
                .db(move |conn| Ok::<_, ServiceError>(refresh_keys(&tick_state, conn)?))
                .await;
            match reloaded {
                Ok(true) => tracing::info!("a new signing key signs from now on"),
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "could not reload the signing keys"),
            }
        }
    }))
}

/// One tick of the key reloader. A failed rotation is logged and tried again on the next
/// tick, and does not hold up the reload: revocations must still arrive within the bound.
fn refresh_keys(
    state: &AppState,
    conn: &mut db::DbConnection,
) -> Result<bool, crate::keys::KeyError> {
    let now = state.now();
    let policy = crate::keys::RotationPolicy::from_days(state.config.tokens.key_rotation_days);
    let publish_ahead = state.keys.times().publish_ahead;
    if let Err(err) = crate::keys::rotate_due(conn, policy, publish_ahead, now) {
        tracing::warn!(error = %err, "could not rotate the signing keys due for rotation; trying again on the next reload");
    }
    let changed = state.keys.reload(conn, now)?;
    record_key_metrics(&db::signing_keys::list(conn)?, policy, now);
    Ok(changed)
}

/// `doorward_signing_key_age_seconds` and `..._next_rotation_timestamp_seconds` for each
/// purpose, from the key the schedule counts (absent while rotation is manual).
fn record_key_metrics(
    rows: &[db::models::SigningKeyRow],
    policy: crate::keys::RotationPolicy,
    now: i64,
) {
    let metrics = &crate::metrics::METRICS;
    for purpose in crate::keys::PURPOSES {
        if let Some(key) = crate::keys::current_key(rows, purpose) {
            metrics
                .key_age
                .with_label_values(&[purpose])
                .set(now - key.created_at);
        }
        match policy.next_rotation(rows, purpose) {
            Some(at) => metrics
                .key_next_rotation
                .with_label_values(&[purpose])
                .set(at),
            None => {
                let _ = metrics.key_next_rotation.remove_label_values(&[purpose]);
            }
        }
    }
}

/// Runs `housekeeping::cleanup` every `housekeeping.interval_seconds` (the first run one
/// interval after start). A failure is logged and the next run tries again.
fn spawn_housekeeper(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let every = state.config.housekeeping.interval_seconds;
    if every == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let period = Duration::from_secs(every);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match crate::housekeeping::run(&state).await {
                Ok(report) if !report.is_empty() => tracing::info!(
                    access_tokens = report.access_tokens,
                    access_grants = report.access_grants,
                    device_grants = report.device_grants,
                    total = report.total(),
                    "housekeeping removed rows that can no longer be used"
                ),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "housekeeping failed; the next run tries again")
                }
            }
        }
    }))
}

/// Whether anything can prove a caller internal: the service token, a client CA, or the
/// Unix socket. Without one, only `TokenValidation` and health can be served; the split
/// `token-service` refuses to start that way (the all-in-one's own auth-web uses the socket).
pub fn internal_callers_configured(config: &Config) -> bool {
    config.service_token.is_some()
        || config.token_service_socket.is_some()
        || config
            .grpc_tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_file.is_some())
}

/// The one line the split `token-service` prints when nothing identifies internal callers.
pub const NO_INTERNAL_CALLERS: &str = concat!(
    "token-service needs a way to recognise auth-web: set SERVICE_TOKEN (16+ characters, ",
    "the same for auth-web), or [grpc_tls] cert_file, key_file and client_ca_file for mTLS ",
    "(DOORWARD_GRPC_TLS__CERT_FILE, DOORWARD_GRPC_TLS__KEY_FILE, ",
    "DOORWARD_GRPC_TLS__CLIENT_CA_FILE), or token_service_socket ",
    "(DOORWARD_TOKEN_SERVICE_SOCKET) for an auth-web on this host"
);

/// The TLS configuration of the gRPC port, if `[grpc_tls]` is set.
fn grpc_tls(config: &Config) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(tls) = &config.grpc_tls else {
        return Ok(None);
    };
    let server = doorward_shared::tls::server_config(
        &tls.cert_file,
        &tls.key_file,
        tls.client_ca_file.as_deref(),
        doorward_shared::tls::ALPN_H2,
    )
    .context("grpc_tls")?;
    Ok(Some(server))
}

/// Says at start-up what the TCP port will accept, and warns where a credential would
/// cross a network in the clear.
fn describe_boundary(config: &Config, addr: SocketAddr) {
    let tls = config.grpc_tls.is_some();
    if config.service_token.is_some() && !tls && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "SERVICE_TOKEN is sent in plaintext to this non-loopback address; set [grpc_tls]");
    }
    let internal_over_tcp = config.service_token.is_some()
        || config
            .grpc_tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some());
    if !internal_over_tcp {
        tracing::info!(%addr, "the gRPC port serves TokenValidation and health only (no SERVICE_TOKEN or grpc_tls.client_ca_file)");
    }
}

/// A token service, bound and ready to run.
pub struct TokenServiceApp {
    listener: TcpListener,
    /// `metrics_addr`'s listener, when set.
    metrics: Option<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    unix: Option<(crate::listener::UnixSocket, crate::listener::SocketFile)>,
    state: AppState,
}

impl TokenServiceApp {
    /// Opens the state and binds `config.token_service_addr`.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let addr = config.token_service_addr.clone();
        let socket = config.token_service_socket.clone();
        // Certificates first: a bad file stops the start before the database is touched.
        let tls = grpc_tls(&config)?;
        let state = open_state(config, clock).await?;
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        describe_boundary(&state.config, listener.local_addr()?);
        let metrics = match &state.config.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("could not listen on {addr} (metrics_addr)"))?,
            ),
            None => None,
        };
        let mut app = Self {
            listener,
            metrics,
            tls,
            unix: None,
            state,
        };
        if let Some(path) = socket {
            app.listen_unix(&path).with_context(|| {
                format!(
                    "could not listen on {} (token_service_socket: choose a path on a local filesystem)",
                    path.display()
                )
            })?;
        }
        Ok(app)
    }

    /// The Unix socket it listens on too, if any.
    pub fn unix_socket(&self) -> Option<&std::path::Path> {
        self.unix.as_ref().map(|(_, file)| file.path())
    }

    /// Also accepts connections on the Unix socket `path` (mode 0600; its owner's processes
    /// are internal callers), removed on stop.
    pub fn listen_unix(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        let listener = crate::listener::bind_unix(path)?;
        self.unix = Some((
            listener,
            crate::listener::SocketFile::created(path.to_owned()),
        ));
        Ok(())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `metrics_addr` bound, if it is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (tests and the all-in-one launcher use it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let (unix_listener, socket_file) = match self.unix {
            Some((listener, file)) => (Some(listener), Some(file)),
            None => (None, None),
        };
        let reloader = spawn_key_reloader(state.clone());
        let housekeeper = spawn_housekeeper(state.clone());
        let (reporter, health) = tonic_health::server::health_reporter();
        for service in SERVICES {
            reporter
                .set_service_status(service, tonic_health::ServingStatus::Serving)
                .await;
        }
        let readiness = Readiness::default();
        let probe = crate::monitoring::spawn_probe(
            state.clone(),
            reporter,
            SERVICES.to_vec(),
            readiness.clone(),
        );
        let metrics = self
            .metrics
            .map(|listener| crate::monitoring::spawn_listener(listener, readiness));
        routes(&state, health)?
            .serve_with_incoming_shutdown(
                crate::listener::incoming(self.listener, self.tls, unix_listener),
                shutdown,
            )
            .await?;
        drop(socket_file);
        for task in [reloader, housekeeper, Some(probe), metrics]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        Ok(())
    }
}

/// The `doorward.v1` services, whose health follows the database's.
const SERVICES: [&str; 6] = [
    <pb::token_service_server::TokenServiceServer<TokenServiceImpl> as tonic::server::NamedService>::NAME,
    <pb::users_server::UsersServer<UsersImpl> as tonic::server::NamedService>::NAME,
    <pb::applications_server::ApplicationsServer<ApplicationsImpl> as tonic::server::NamedService>::NAME,
    <pb::token_validation_server::TokenValidationServer<TokenValidationImpl> as tonic::server::NamedService>::NAME,
    <pb::authorizations_server::AuthorizationsServer<AuthorizationsImpl> as tonic::server::NamedService>::NAME,
    <pb::device_authorizations_server::DeviceAuthorizationsServer<DeviceAuthorizationsImpl> as tonic::server::NamedService>::NAME,
];

/// Reflection's one RPC, labelled in the metrics by its name.
const REFLECTION_RPC: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/// Every service the gRPC port serves: health open, everything else (reflection and every
/// `doorward.v1` service) behind the caller check (`grpc::caller`).
fn routes(
    state: &AppState,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> anyhow::Result<
    tonic::transport::server::Router<
        tower::layer::util::Stack<crate::grpc::observe::ObserveLayer, tower::layer::util::Identity>,
    >,
> {
    let token = state.config.service_token.clone();
    let check = |service: &'static str, audience: Audience| {
        CallerCheck::new(service, audience, token.clone())
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    // Every doorward.v1 service behind the caller check; only health is open.
    macro_rules! guarded {
        ($server:ty, $service:expr) => {
            guarded!($server, $service, Audience::Internal)
        };
        ($server:ty, $service:expr, $audience:expr) => {
            InterceptedService::new(
                <$server>::new($service)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
                check(<$server as tonic::server::NamedService>::NAME, $audience),
            )
        };
    }

    let observe = crate::grpc::observe::ObserveLayer::new(
        &[
            pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ],
        &[REFLECTION_RPC],
    );
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .layer(observe)
        .add_service(health_service)
        // Reflection describes every internal RPC: internal callers only.
        .add_service(InterceptedService::new(
            reflection,
            check("grpc.reflection.v1.ServerReflection", Audience::Internal),
        ))
        .add_service(guarded!(
            pb::token_service_server::TokenServiceServer<TokenServiceImpl>,
            TokenServiceImpl::new(state.clone())
        ))
        .add_service(guarded!(
            pb::users_server::UsersServer<UsersImpl>,
            UsersImpl::new(state.clone())
        ))
        .add_service(guarded!(
            pb::applications_server::ApplicationsServer<ApplicationsImpl>,
            ApplicationsImpl::new(state.clone())
        ))
        // Resource servers authenticate with their application's credentials, which
        // the handler checks (see `grpc::token_validation`).
        .add_service(guarded!(
            pb::token_validation_server::TokenValidationServer<TokenValidationImpl>,
            TokenValidationImpl::new(state.clone()),
            Audience::InternalOrApplication
        ))
        .add_service(guarded!(
            pb::authorizations_server::AuthorizationsServer<AuthorizationsImpl>,
            AuthorizationsImpl::new(state.clone())
        ))
        .add_service(guarded!(
            pb::device_authorizations_server::DeviceAuthorizationsServer<
                DeviceAuthorizationsImpl,
            >,
            DeviceAuthorizationsImpl::new(state.clone())
        ));
    Ok(router)
}
