//! The floor: what one token request cannot avoid, one operation at a time, through
//! Doorward's own code where it has it. `doorward-bench run` reads the results
//! (`target/criterion/floor_*/new/estimates.json`) and reports each scenario's throughput
//! as a fraction of `cores / summed cost` (see `bench/src/floor.rs`).
//!
//! `cargo bench -p doorward-bench --bench floor`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use criterion::{Criterion, criterion_group, criterion_main};
use doorward_bench::floor;
use doorward_shared::config::Config;
use token_service::apps::ApplicationFields;
use token_service::db::models::AccessTokenRow;
use token_service::keys::{AccessClaims, KeyRing, KeyTimes};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(i: u64) -> AccessClaims {
    let now = now();
    AccessClaims {
        iss: "http://127.0.0.1:3000".into(),
        sub: "2".into(),
        aud: "http://127.0.0.1:3000".into(),
        exp: now + 7_200,
        iat: now,
        jti: format!("{i:032x}"),
        client_id: "6a741d33765e95541491b772300f303952e85725dd77d65f5df9a60598393a6c".into(),
        scope: "api read_user".into(),
        nbf: None,
    }
}

/// A scratch SQLite database, migrated, with one application; removed on drop.
struct Scratch {
    dir: std::path::PathBuf,
    pool: token_service::db::DbPool,
    application_id: i64,
}

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("doorward-floor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}", dir.join("floor.db").display());
        let pool =
            token_service::db::connect_and_migrate(&url, 2, Duration::from_secs(10)).unwrap();
        let mut conn = pool.get().unwrap();
        let fields = ApplicationFields {
            name: "floor".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            scopes: vec!["api read_user".into()],
            confidential: true,
            trusted: false,
            grant_types: vec!["client_credentials".into()],
            owner_id: None,
        };
        let (app, _) = token_service::apps::create(&mut conn, &fields, now())
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        drop(conn);
        Self {
            dir,
            pool,
            application_id: app.id,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keyring(scratch: &Scratch) -> KeyRing {
    let mut conn = scratch.pool.get().unwrap();
    let times = KeyTimes::from_config(&Config::default());
    KeyRing::load_or_create(
        &mut conn,
        "http://127.0.0.1:3000",
        "http://127.0.0.1:3000",
        times,
        now(),
    )
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let scratch = Scratch::new();
    let ring = keyring(&scratch);

    let mut i = 0u64;
    c.bench_function(floor::ED25519_SIGN, |b| {
        b.iter(|| {
            i += 1;
            ring.sign_access_token(&claims(i)).unwrap()
        })
    });

    let token = ring.sign_access_token(&claims(0)).unwrap();
    let at = now();
    c.bench_function(floor::ED25519_VERIFY, |b| {
        b.iter(|| ring.verify_access_token(&token, at).unwrap())
    });

    // A secret as `apps create` makes them.
    let secret = format!(
        "dwcs-{}",
        "d8403dd377d111a4ba462c6426b754106aac755bd2943d780e84c84ea91cf3e4"
    );
    c.bench_function(floor::SHA256, |b| {
        b.iter(|| doorward_shared::secret::sha256(std::hint::black_box(secret.as_bytes())))
    });

    // One access-token row with a refresh token, as a grant stores it, on a pooled
    // connection (WAL, synchronous=NORMAL: what token-service runs with).
    let mut conn = scratch.pool.get().unwrap();
    let mut n = 0u64;
    let application_id = scratch.application_id;
    c.bench_function(floor::SQLITE_INSERT, |b| {
        b.iter(|| {
            n += 1;
            let now = now();
            let row = AccessTokenRow {
                jti: format!("{n:032x}"),
                application_id,
                user_id: None,
                scopes: "api".into(),
                created_at: now,
                expires_at: now + 7_200,
                revoked_at: None,
                refresh_token_hash: Some(
                    doorward_shared::secret::sha256(&n.to_le_bytes()).to_vec(),
                ),
                family_id: Some(format!("{n:032x}")),
                family_created_at: Some(now),
                refresh_rotated_at: None,
                successor_jti: None,
                grant_id: None,
                refresh_scopes: Some("api".into()),
            };
            token_service::db::tokens::insert(&mut conn, &row).unwrap()
        })
    });
    drop(conn);

    // One gRPC round trip: a tonic health check against a server on loopback, the server
    // on its own runtime thread as token-service's would be.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, service) = tonic_health::server::health_reporter();
        tokio::spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    });
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = client_rt.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        tonic_health::pb::health_client::HealthClient::new(channel)
    });
    c.bench_function(floor::GRPC_ROUND_TRIP, |b| {
        b.iter(|| {
            client_rt
                .block_on(client.check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                }))
                .unwrap()
        })
    });
    drop(server_rt);
}

/// argon2id with Doorward's default parameters (the password grant's cost), on every core at
/// once: each iteration runs one verification per core in parallel, so its time is what one
/// verification costs a core while the others hash too. argon2id is bound by memory
/// bandwidth (19 MiB per hash), so two at once take longer each than one alone, and the
/// single-thread time times the cores would promise a rate no program reaches. Each core
/// hashes into a buffer allocated once, as Doorward's hashing threads do, so page faults
/// and zeroing are not counted. Few samples, since one takes milliseconds.
fn argon2_bench(c: &mut Criterion) {
    let params = Config::default().passwords;
    let argon2 = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(
            params.argon2_memory_kib,
            params.argon2_iterations,
            params.argon2_parallelism,
            None,
        )
        .unwrap(),
    );
    let salt = SaltString::encode_b64(b"doorward-floor-salt").unwrap();
    let hash = argon2
        .hash_password(b"correct horse battery", &salt)
        .unwrap()
        .to_string();
    let parsed = argon2::PasswordHash::new(&hash).unwrap();
    let stored = parsed.hash.expect("an output");
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = parsed
        .salt
        .expect("a salt")
        .decode_b64(&mut salt_bytes)
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut buffers: Vec<Vec<argon2::Block>> = (0..cores)
        .map(|_| vec![argon2::Block::default(); argon2.params().block_count()])
        .collect();
    c.bench_function(floor::ARGON2_VERIFY, |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for blocks in buffers.iter_mut() {
                    let (argon2, stored, salt) = (&argon2, &stored, &salt_bytes);
                    scope.spawn(move || {
                        let mut out = vec![0u8; stored.len()];
                        argon2
                            .hash_password_into_with_memory(
                                b"correct horse battery",
                                salt,
                                &mut out,
                                blocks.as_mut_slice(),
                            )
                            .unwrap();
                        assert!(doorward_shared::secret::constant_time_eq(
                            &out,
                            stored.as_bytes()
                        ));
                    });
                }
            })
        })
    });
}

criterion_group! {
    name = floor_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_group! {
    name = slow_benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = argon2_bench
}
criterion_main!(floor_benches, slow_benches);
