//! The floor: what one request cannot avoid, measured by `cargo bench -p doorward-bench
//! --bench floor` (criterion), and each scenario's throughput as a fraction of it.
//!
//! A scenario's floor cost is the sum of the per-request costs of the operations it must
//! do (the components below); with every core busy on nothing else, the floor rate is
//! `cores / cost`. HTTP parsing, JSON and the database reads are not in the floor, so a
//! real server stays below 1.0.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::runner::Scenario;

/// The criterion benchmarks of `benches/floor.rs`, by id.
pub const ED25519_SIGN: &str = "floor_ed25519_sign";
/// Verifying an access token's signature.
pub const ED25519_VERIFY: &str = "floor_ed25519_verify";
/// SHA-256 of a client secret (or of a code, a refresh token).
pub const SHA256: &str = "floor_sha256_secret";
/// One access-token row inserted into SQLite (WAL) through Diesel.
pub const SQLITE_INSERT: &str = "floor_sqlite_wal_insert";
/// One gRPC round trip (tonic health check) on loopback.
pub const GRPC_ROUND_TRIP: &str = "floor_grpc_round_trip";
/// One argon2id verification with Doorward's default parameters, timed while every core
/// runs one (memory bandwidth is shared, so this is the per-core cost at full load).
pub const ARGON2_VERIFY: &str = "floor_argon2id_verify_all_cores";

/// Every benchmark of the floor.
pub const ALL: [&str; 6] = [
    ED25519_SIGN,
    ED25519_VERIFY,
    SHA256,
    SQLITE_INSERT,
    GRPC_ROUND_TRIP,
    ARGON2_VERIFY,
];

/// The operations (and how many of each) one request of `scenario` cannot avoid.
pub fn components(scenario: Scenario) -> &'static [(&'static str, u32)] {
    match scenario {
        // Client secret hash, one signature, one row, the auth-web -> token-service call.
        Scenario::ClientCredentials => &[
            (SHA256, 1),
            (ED25519_SIGN, 1),
            (SQLITE_INSERT, 1),
            (GRPC_ROUND_TRIP, 1),
        ],
        Scenario::Password => &[
            (SHA256, 1),
            (ARGON2_VERIFY, 1),
            (ED25519_SIGN, 1),
            (SQLITE_INSERT, 1),
            (GRPC_ROUND_TRIP, 1),
        ],
        // Secret and refresh-token hashes.
        Scenario::Refresh | Scenario::AuthorizationCode => &[
            (SHA256, 2),
            (ED25519_SIGN, 1),
            (SQLITE_INSERT, 1),
            (GRPC_ROUND_TRIP, 1),
        ],
        Scenario::ApiUser => &[(ED25519_VERIFY, 1), (GRPC_ROUND_TRIP, 1)],
        Scenario::Introspect => &[(SHA256, 1), (ED25519_VERIFY, 1), (GRPC_ROUND_TRIP, 1)],
        // The caller's credential and the token are looked up by hash in caches (the
        // signature check is cached within `tokens.validation_cache_seconds`).
        Scenario::GrpcValidate => &[(SHA256, 2), (GRPC_ROUND_TRIP, 1)],
    }
}

/// Per-request costs read from criterion, in nanoseconds (mean), by benchmark id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloorCosts {
    /// Where they were read.
    pub source: String,
    /// Mean nanoseconds per operation.
    pub ns: BTreeMap<String, f64>,
    /// Benchmarks that have no result yet.
    pub missing: Vec<String>,
}

/// The floor of one scenario.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScenarioFloor {
    /// Sum of the components' costs, microseconds.
    pub cost_us: f64,
    /// `cores / cost`: requests per second if every core did only this.
    pub rate_per_second: f64,
}

/// The `mean.point_estimate` of a criterion `estimates.json`.
pub fn mean_of_estimates(json: &str) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["mean"]["point_estimate"].as_f64()
}

impl FloorCosts {
    /// Reads `<criterion_dir>/<id>/new/estimates.json` for every floor benchmark.
    pub fn read(criterion_dir: &Path) -> Self {
        let mut costs = Self {
            source: criterion_dir.display().to_string(),
            ..Self::default()
        };
        for id in ALL {
            let path = criterion_dir.join(id).join("new").join("estimates.json");
            match std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| mean_of_estimates(&text))
            {
                Some(ns) => {
                    costs.ns.insert(id.to_owned(), ns);
                }
                None => costs.missing.push(id.to_owned()),
            }
        }
        costs
    }

    /// The floor of `scenario` on `cores`; `None` when a component was not measured.
    pub fn scenario_floor(&self, scenario: Scenario, cores: usize) -> Option<ScenarioFloor> {
        let mut ns = 0.0;
        for (id, times) in components(scenario) {
            ns += self.ns.get(*id)? * f64::from(*times);
        }
        (ns > 0.0).then(|| ScenarioFloor {
            cost_us: ns / 1_000.0,
            rate_per_second: cores as f64 * 1e9 / ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_means_are_read() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":16900.0,"upper_bound":17100.0},"point_estimate":17000.5,"standard_error":50.0},"median":{"point_estimate":16990.0}}"#;
        assert_eq!(mean_of_estimates(json), Some(17_000.5));
        assert_eq!(mean_of_estimates("{}"), None);
        assert_eq!(mean_of_estimates("not json"), None);
    }

    #[test]
    fn floor_rate_is_cores_over_the_summed_cost() {
        let mut costs = FloorCosts::default();
        for (id, ns) in [
            (SHA256, 100.0),
            (ED25519_SIGN, 17_000.0),
            (SQLITE_INSERT, 11_500.0),
            (GRPC_ROUND_TRIP, 37_000.0),
        ] {
            costs.ns.insert(id.to_owned(), ns);
        }
        // 100 + 17,000 + 11,500 + 37,000 ns = 65.6 µs; two cores: 2 / 65.6 µs.
        let floor = costs
            .scenario_floor(Scenario::ClientCredentials, 2)
            .expect("all measured");
        assert!((floor.cost_us - 65.6).abs() < 1e-9);
        assert!((floor.rate_per_second - 2e9 / 65_600.0).abs() < 1e-6);
        // Refresh counts two hashes.
        let refresh = costs
            .scenario_floor(Scenario::Refresh, 1)
            .expect("measured");
        assert!((refresh.cost_us - 65.7).abs() < 1e-9);
        // The password grant needs argon2, which was not measured here.
        assert_eq!(costs.scenario_floor(Scenario::Password, 2), None);
    }

    #[test]
    fn missing_results_are_listed() {
        let dir = std::env::temp_dir().join(format!("doorward-bench-floor-{}", std::process::id()));
        let found = dir.join(SHA256).join("new");
        std::fs::create_dir_all(&found).expect("dir");
        std::fs::write(
            found.join("estimates.json"),
            r#"{"mean":{"point_estimate":95.0}}"#,
        )
        .expect("write");
        let costs = FloorCosts::read(&dir);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(costs.ns.get(SHA256), Some(&95.0));
        assert_eq!(costs.missing.len(), ALL.len() - 1);
        assert!(!costs.missing.contains(&SHA256.to_owned()));
    }
}
