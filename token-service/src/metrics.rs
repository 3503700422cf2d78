//! token-service's metrics (Prometheus; rendered by `doorward_shared::metrics::render`).
//!
//! Process-wide statics, as `doorward_shared::metrics` explains. Label values come from
//! fixed sets: grant types, error codes, the RPCs of the served descriptor sets, and the
//! names below. Handles whose labels are known in advance are resolved once, so that the
//! hot paths (a token request, a validation) only add to an atomic.

use std::sync::LazyLock;

use doorward_shared::GrantType;
use doorward_shared::metrics::prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use doorward_shared::metrics::{
    LATENCY_BUCKETS, counter, counter_vec, gauge, gauge_vec, histogram, histogram_vec,
};

/// Every metric token-service records.
pub struct Metrics {
    /// gRPC calls by RPC and status code.
    pub grpc_requests: IntCounterVec,
    /// gRPC call latency by RPC.
    pub grpc_duration: HistogramVec,
    /// Token requests by grant type and outcome (`issued` or the error code).
    pub grants: IntCounterVec,
    /// Jobs per group commit.
    pub writer_batch_size: Histogram,
    /// How long a group commit's `COMMIT` takes.
    pub writer_commit: Histogram,
    /// Pooled connections in use and idle.
    pub pool_connections: IntGaugeVec,
    /// Requests waiting for a pooled connection.
    pub pool_waiting: IntGauge,
    /// 1 while the database answers, 0 while it does not.
    pub database_up: IntGauge,
    /// Cache lookups by cache and result.
    pub cache_lookups: IntCounterVec,
    /// Password hashes waiting for a hashing thread.
    pub hash_queue_depth: IntGauge,
    /// Password checks refused because the hashing queue was full.
    pub hash_shed: IntCounter,
    /// Requests a throttle refused, by throttle.
    pub throttle_refusals: IntCounterVec,
    /// Age of the key that signs, by purpose.
    pub key_age: IntGaugeVec,
    /// When the key that signs is due to be replaced, by purpose (absent when manual).
    pub key_next_rotation: IntGaugeVec,
    /// Rows housekeeping deleted, by kind.
    pub housekeeping_deleted: IntCounterVec,
    /// Tokens revoked, by cause.
    pub tokens_revoked: IntCounterVec,
}

/// The process's metrics, registered at first use.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// Cache lookups resolved once: the validation and client caches are on every request.
pub static CACHE: LazyLock<CacheCounters> = LazyLock::new(|| CacheCounters {
    validation_hit: METRICS
        .cache_lookups
        .with_label_values(&["validation", "hit"]),
    validation_miss: METRICS
        .cache_lookups
        .with_label_values(&["validation", "miss"]),
    client_hit: METRICS.cache_lookups.with_label_values(&["client", "hit"]),
    client_miss: METRICS.cache_lookups.with_label_values(&["client", "miss"]),
});

/// The four cache counters.
pub struct CacheCounters {
    /// A validation answered from memory.
    pub validation_hit: IntCounter,
    /// A validation that read the token's row.
    pub validation_miss: IntCounter,
    /// An application record used from memory.
    pub client_hit: IntCounter,
    /// An application record read from the database.
    pub client_miss: IntCounter,
}

impl Metrics {
    fn register() -> Self {
        Self {
            grpc_requests: counter_vec(
                "doorward_grpc_requests_total",
                "gRPC calls served, by RPC and status code.",
                &["rpc", "code"],
            ),
            grpc_duration: histogram_vec(
                "doorward_grpc_request_duration_seconds",
                "gRPC call latency, by RPC.",
                &["rpc"],
            ),
            grants: counter_vec(
                "doorward_grants_total",
                "Token requests, by grant type and outcome (issued, or the OAuth error code).",
                &["grant_type", "outcome"],
            ),
            // Powers of two up to the writer's largest batch.
            writer_batch_size: histogram(
                "doorward_writer_batch_size",
                "Write jobs carried by one group commit.",
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
            ),
            writer_commit: histogram(
                "doorward_writer_commit_duration_seconds",
                "How long a group commit's COMMIT takes.",
                LATENCY_BUCKETS,
            ),
            pool_connections: gauge_vec(
                "doorward_db_pool_connections",
                "Database connections of the pool, by state (in_use, idle).",
                &["state"],
            ),
            pool_waiting: gauge(
                "doorward_db_pool_waiting",
                "Requests waiting for a database connection.",
            ),
            database_up: gauge(
                "doorward_database_up",
                "1 while the database answers token-service's probe, 0 while it does not.",
            ),
            cache_lookups: counter_vec(
                "doorward_cache_lookups_total",
                "Cache lookups, by cache (validation, client) and result (hit, miss).",
                &["cache", "result"],
            ),
            hash_queue_depth: gauge(
                "doorward_password_hash_queue_depth",
                "Password hashes waiting for a hashing thread.",
            ),
            hash_shed: counter(
                "doorward_password_hash_shed_total",
                "Password checks refused with 503 because the hashing queue was full.",
            ),
            throttle_refusals: counter_vec(
                "doorward_throttle_refusals_total",
                "Requests refused by a throttle (sign_in, client_auth, device_user_code).",
                &["limit"],
            ),
            key_age: gauge_vec(
                "doorward_signing_key_age_seconds",
                "Age of the key that signs, by purpose (access_token, id_token).",
                &["purpose"],
            ),
            key_next_rotation: gauge_vec(
                "doorward_signing_key_next_rotation_timestamp_seconds",
                "When the key that signs is due to be replaced (Unix time), by purpose.",
                &["purpose"],
            ),
            housekeeping_deleted: counter_vec(
                "doorward_housekeeping_deleted_rows_total",
                "Rows housekeeping deleted, by kind.",
                &["kind"],
            ),
            tokens_revoked: counter_vec(
                "doorward_tokens_revoked_total",
                "Tokens revoked, by cause.",
                &["cause"],
            ),
        }
    }
}

/// Counts a token request's outcome: `issued`, or the error code it was answered with.
pub fn grant(grant_type: GrantType, outcome: &'static str) {
    METRICS
        .grants
        .with_label_values(&[grant_type.registration_name(), outcome])
        .inc();
}

/// Which throttle refused a request.
#[derive(Debug, Clone, Copy)]
pub enum Throttle {
    /// Password checks (`[sign_in_limits]`).
    SignIn,
    /// Failed client authentication (`[client_auth_limits]`).
    ClientAuth,
    /// Wrong user codes on the device page (`[device]`).
    DeviceUserCode,
}

/// Counts a throttled request.
pub fn throttled(limit: Throttle) {
    let name = match limit {
        Throttle::SignIn => "sign_in",
        Throttle::ClientAuth => "client_auth",
        Throttle::DeviceUserCode => "device_user_code",
    };
    METRICS.throttle_refusals.with_label_values(&[name]).inc();
}

/// Why tokens were revoked.
#[derive(Debug, Clone, Copy)]
pub enum RevokeCause {
    /// `/oauth/revoke` (RFC 7009).
    Revocation,
    /// A rotated refresh token presented again (SEC-RT-02).
    RefreshReuse,
    /// A used authorization code presented again.
    CodeReplay,
    /// A user revoked an application's access.
    AuthorizationRevoked,
}

/// Counts `rows` tokens revoked for `cause`.
pub fn revoked(cause: RevokeCause, rows: usize) {
    let name = match cause {
        RevokeCause::Revocation => "revocation",
        RevokeCause::RefreshReuse => "refresh_reuse",
        RevokeCause::CodeReplay => "code_replay",
        RevokeCause::AuthorizationRevoked => "authorization_revoked",
    };
    METRICS
        .tokens_revoked
        .with_label_values(&[name])
        .inc_by(rows as u64);
}
