//! `doorward-bench`: Doorward's benchmark harness. It starts Doorward from the release
//! binaries (or targets a running one), seeds a user and an application through the
//! operator CLI, and measures each scenario at fixed concurrency for a fixed time after a
//! warm-up: requests per second, latency percentiles, errors, CPU per 1,000 requests and
//! memory of each service process. See `bench/README.md`.
//!
//! Benchmarks are not tests: nothing here asserts a speed.

pub mod floor;
pub mod machine;
pub mod ops;
pub mod pgstats;
pub mod prepare;
pub mod procstat;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::floor::FloorCosts;
use crate::machine::Machine;
use crate::ops::{Clients, Target};
use crate::pgstats::PgProbe;
use crate::procstat::Watched;
use crate::report::{FloorReport, Results, SCHEMA, Setup};
use crate::runner::{Pools, Preparation, RunResult, Scenario};
use crate::server::{LaunchOptions, Launched};

/// The workspace this crate was built in.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The cargo target folder (`CARGO_TARGET_DIR`, or the workspace's `target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where the server under test comes from.
#[derive(Debug, Clone)]
pub enum Under {
    /// Started by the harness.
    Launch(LaunchOptions),
    /// Already running; the harness only sends requests (and reads `/proc` of `pids` when
    /// given).
    External {
        /// URLs and credentials.
        target: Target,
        /// Processes to measure, if they run on this machine.
        watched: Vec<Watched>,
    },
}

/// One invocation of `doorward-bench run`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What to measure against.
    pub under: Under,
    /// Scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Concurrency levels, in order.
    pub concurrency: Vec<usize>,
    /// Timed phase per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Sizes of the prepared material.
    pub preparation: Preparation,
    /// gRPC channels shared by the workers.
    pub grpc_channels: usize,
    /// Criterion's output folder, for the floor.
    pub criterion_dir: PathBuf,
}

fn harness_cpu_seconds() -> Option<f64> {
    procstat::cpu_seconds(std::process::id(), procstat::ticks_per_second())
}

/// Reads the floor from criterion's output and describes what is missing.
pub fn floor_report(criterion_dir: &std::path::Path, scenarios: &[Scenario]) -> FloorReport {
    let costs = FloorCosts::read(criterion_dir);
    let cores = machine::cores();
    let per_scenario: BTreeMap<String, _> = scenarios
        .iter()
        .map(|s| (s.name().to_owned(), costs.scenario_floor(*s, cores)))
        .collect();
    let note = if costs.missing.is_empty() {
        format!(
            "floor rate = {cores} cores / summed per-request cost of the operations in floor::components (criterion means, {})",
            costs.source
        )
    } else {
        format!(
            "criterion results missing for {} in {}: run `cargo bench -p doorward-bench --bench floor` first; floor fractions of scenarios that need them are not computed",
            costs.missing.join(", "),
            costs.source
        )
    };
    FloorReport {
        costs,
        scenarios: per_scenario,
        note,
    }
}

/// Runs the plan; `progress` gets one line per finished run, and `finished` the results
/// so far after each run (so that they can be written at once: an interrupted run keeps
/// what it measured).
pub async fn execute(
    plan: &Plan,
    mut progress: impl FnMut(&str),
    mut finished: impl FnMut(&Results),
) -> anyhow::Result<Results> {
    let machine = Machine::detect();
    let (launched, target, watched, mode, database, bin_dir, tls) = match &plan.under {
        Under::Launch(options) => {
            progress(&format!(
                "starting Doorward from {} ({:?})",
                options.bin_dir.display(),
                options.mode
            ));
            let (launched, seeded) = Launched::start(options).await?;
            let target = Target {
                http_base: launched.http_base.clone(),
                grpc_url: launched.grpc_url.clone(),
                grpc_ca_file: launched.grpc_ca_file.clone(),
                client_id: seeded.client_id,
                client_secret: seeded.client_secret,
                username: seeded.username,
                password: seeded.password,
                user_id: Some(seeded.user_id),
                code_user_ids: seeded.code_user_ids,
                redirect_uri: seeded.redirect_uri,
                service_token: Some(launched.service_token.clone()),
            };
            let watched = launched.watched.clone();
            let mode = match options.mode {
                server::Mode::AllInOne => "all-in-one",
                server::Mode::Split => "split",
            };
            let database = launched.database.clone();
            (
                Some(launched),
                target,
                watched,
                mode.to_owned(),
                database,
                Some(options.bin_dir.display().to_string()),
                options.tls,
            )
        }
        Under::External { target, watched } => (
            None,
            target.clone(),
            watched.clone(),
            "external".to_owned(),
            "unknown".to_owned(),
            None,
            // What the harness knows of a running server: whether its gRPC port is TLS.
            target.grpc_url.starts_with("https://"),
        ),
    };
    let clients = Clients::connect(&target, plan.grpc_channels)
        .await
        .context("could not connect to token-service's gRPC port")?;
    let target = Arc::new(target);
    let pg = launched.as_ref().and_then(|l| l.pg.clone());
    let probe = match &pg {
        Some(pg) => match PgProbe::new(&pg.admin_url, &pg.name).await {
            Ok(probe) => Some(probe),
            Err(e) => {
                progress(&format!(
                    "PostgreSQL's counters will not be read (through psql): {e}"
                ));
                None
            }
        },
        None => None,
    };
    let server_env: BTreeMap<String, String> = launched
        .as_ref()
        .map(|l| l.server_env.iter().cloned().collect())
        .unwrap_or_default();
    let setup = |runs: &[RunResult], harness_cpu: f64| Setup {
        mode: mode.clone(),
        database: database.clone(),
        http_base: target.http_base.clone(),
        grpc_url: target.grpc_url.clone(),
        tls,
        bin_dir: bin_dir.clone(),
        grpc_channels: clients.channels.len(),
        preparation: plan.preparation.clone(),
        server_env: server_env.clone(),
        harness_cpu_seconds: Some(harness_cpu).filter(|_| !runs.is_empty()),
    };
    let mut pools = Pools::default();
    let floor = floor_report(&plan.criterion_dir, &plan.scenarios);
    let mut runs = Vec::new();
    let mut harness_cpu = 0.0;
    for scenario in &plan.scenarios {
        for &concurrency in &plan.concurrency {
            let before = harness_cpu_seconds();
            let mut result = runner::run(
                *scenario,
                concurrency,
                plan.warmup,
                plan.duration,
                &plan.preparation,
                &mut pools,
                &clients,
                &target,
                &watched,
                probe.as_ref(),
            )
            .await?;
            if let (Some(a), Some(b)) = (before, harness_cpu_seconds()) {
                harness_cpu += b - a;
            }
            // Without token-service's own count (an older build), say why nothing was.
            if result.db_statements_per_request.is_none() {
                if database == "sqlite" {
                    result.db_statements_note =
                        "not measured (SQLite keeps no statement counters, and token-service did not answer GetStats)".into();
                } else if probe.is_none() {
                    result.db_statements_note = "not measured (PostgreSQL's counters could not be read through psql, or the server is external)".into();
                }
            }
            result.floor_fraction = floor
                .scenarios
                .get(scenario.name())
                .cloned()
                .flatten()
                .map(|f| result.requests_per_second / f.rate_per_second);
            progress(&format!(
                "{} c={}: {:.0} req/s, {} errors{}",
                scenario.name(),
                concurrency,
                result.requests_per_second,
                result.errors,
                report::error_summary(&result)
            ));
            runs.push(result);
            finished(&Results {
                schema: SCHEMA,
                machine: machine.clone(),
                setup: setup(&runs, harness_cpu),
                floor: floor.clone(),
                runs: runs.clone(),
            });
        }
    }
    let setup = setup(&runs, harness_cpu);
    drop(launched);
    Ok(Results {
        schema: SCHEMA,
        machine,
        setup,
        floor,
        runs,
    })
}
