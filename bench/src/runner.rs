//! Scenarios and the timed loop: `concurrency` workers send requests back to back (each
//! waits for its answer before the next: a closed loop) for the warm-up and then the timed
//! phase; only requests started in the timed phase are counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::ops::{self, Clients, Failure, Target};
use crate::pgstats::{DbPerRequest, PgProbe};
use crate::prepare::{Input, Prepared, prepare};
pub use crate::prepare::{Pools, codes_for_run};
use crate::procstat::{self, ProcessUsage, Watched};
pub use crate::scenario::{Preparation, Scenario};
use crate::stats::{self, LatencySummary};

/// One scenario at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The scenario.
    pub scenario: Scenario,
    /// Workers sending at once.
    pub concurrency: usize,
    /// The warm-up, seconds (not counted).
    pub warmup_s: f64,
    /// The timed phase as asked, seconds.
    pub duration_s: f64,
    /// The timed phase as it ran (shorter only when minted codes ran out), seconds.
    pub elapsed_s: f64,
    /// Successful requests started in the timed phase.
    pub requests: u64,
    /// Failed requests (non-2xx HTTP, non-OK gRPC, inactive tokens) in the timed phase.
    pub errors: u64,
    /// Failures by kind (timed phase).
    pub error_kinds: BTreeMap<String, u64>,
    /// Failures during the warm-up (not in `errors`).
    pub warmup_errors: u64,
    /// The warm-up's failures by kind.
    pub warmup_error_kinds: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Latency of successful requests; `None` when there were none.
    pub latency: Option<LatencySummary>,
    /// Per service process; empty when the target is not a local process.
    pub processes: Vec<ProcessUsage>,
    /// PostgreSQL's counters for Doorward's database over the timed phase, per request
    /// (successful or not); `None` on SQLite or when they could not be read.
    pub db_per_request: Option<DbPerRequest>,
    /// Database statements per request (`pg_stat_statements` calls), when that extension
    /// is loaded in the server; else `None`, and `db_per_request` holds what was counted.
    pub db_statements_per_request: Option<f64>,
    /// Why `db_statements_per_request` is absent.
    pub db_statements_note: String,
    /// Notes on this run (codes ran out, workers stopped, ...).
    pub notes: Vec<String>,
    /// Throughput as a fraction of the floor (see `floor` in the results).
    pub floor_fraction: Option<f64>,
}

#[derive(Default)]
struct WorkerOutcome {
    latencies_ns: Vec<u64>,
    errors: BTreeMap<String, u64>,
    warmup_errors: u64,
    ran_out_at: Option<Instant>,
    stopped: Option<String>,
    warmup_error_kinds: BTreeMap<String, u64>,
    /// Authorization codes the worker did not get to.
    leftover_codes: Vec<String>,
}

async fn one_request(
    scenario: Scenario,
    input: &mut Input,
    clients: &Clients,
    channel: &tonic::transport::Channel,
    target: &Target,
) -> Option<Result<(), Failure>> {
    Some(match (scenario, input) {
        (Scenario::ClientCredentials, _) => {
            ops::client_credentials(clients, target).await.map(drop)
        }
        (Scenario::Password, _) => ops::password(clients, target).await.map(drop),
        (Scenario::Refresh, Input::Refresh(token)) => {
            match ops::refresh(clients, target, token).await {
                Ok(tokens) => {
                    if let Some(next) = tokens.refresh_token {
                        *token = next;
                    }
                    Ok(())
                }
                Err(f) => Err(f),
            }
        }
        (Scenario::AuthorizationCode, Input::Codes(codes)) => {
            let code = codes.pop()?;
            ops::exchange_code(clients, target, &code).await.map(drop)
        }
        (Scenario::ApiUser, Input::Pool(pool, next)) => {
            let token = &pool[*next % pool.len()];
            *next += 1;
            ops::api_user(clients, target, token).await
        }
        (Scenario::Introspect, Input::Pool(pool, next)) => {
            let token = &pool[*next % pool.len()];
            *next += 1;
            ops::introspect(clients, target, token).await
        }
        (Scenario::GrpcValidate, Input::Pool(pool, next)) => {
            let token = &pool[*next % pool.len()];
            *next += 1;
            ops::grpc_validate(clients, channel.clone(), token).await
        }
        _ => return None,
    })
}

/// The phases of one run, shared by its workers.
#[derive(Clone, Copy)]
struct Phases {
    warm_end: Instant,
    end: Instant,
    request_timeout: Duration,
}

async fn worker(
    scenario: Scenario,
    mut input: Input,
    clients: Clients,
    channel: tonic::transport::Channel,
    target: Arc<Target>,
    phases: Phases,
) -> WorkerOutcome {
    let Phases {
        warm_end,
        end,
        request_timeout,
    } = phases;
    let mut outcome = WorkerOutcome::default();
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        // A request that gets no answer is an error, not a hang (the server may stall).
        let answer = tokio::time::timeout(
            request_timeout,
            one_request(scenario, &mut input, &clients, &channel, &target),
        )
        .await
        .unwrap_or_else(|_| {
            Some(Err(Failure(format!(
                "timeout: no answer within {request_timeout:?}"
            ))))
        });
        let Some(result) = answer else {
            outcome.ran_out_at = Some(started);
            break;
        };
        let timed = started >= warm_end;
        match result {
            Ok(()) if timed => outcome
                .latencies_ns
                .push(started.elapsed().as_nanos() as u64),
            Ok(()) => {}
            Err(Failure(kind)) => {
                if timed {
                    *outcome.errors.entry(kind.clone()).or_default() += 1;
                } else {
                    outcome.warmup_errors += 1;
                    *outcome.warmup_error_kinds.entry(kind.clone()).or_default() += 1;
                }
                if scenario == Scenario::Refresh {
                    // The worker's refresh family is gone; it cannot go on.
                    outcome.stopped = Some(kind);
                    break;
                }
            }
        }
    }
    if let Input::Codes(codes) = input {
        outcome.leftover_codes = codes;
    }
    outcome
}

fn usage_snapshot(watched: &[Watched], ticks: u64) -> Vec<Option<f64>> {
    watched
        .iter()
        .map(|w| procstat::cpu_seconds(w.pid, ticks))
        .collect()
}

/// A run that could not be measured (its preparation failed or timed out): no requests,
/// one error of kind `preparation failed: ...`, so that it shows (grey) and counts.
fn unmeasured(
    scenario: Scenario,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    why: String,
) -> RunResult {
    RunResult {
        scenario,
        concurrency,
        warmup_s: warmup.as_secs_f64(),
        duration_s: duration.as_secs_f64(),
        elapsed_s: 0.0,
        requests: 0,
        errors: 1,
        error_kinds: BTreeMap::from([(format!("preparation failed: {why}"), 1)]),
        warmup_errors: 0,
        warmup_error_kinds: BTreeMap::new(),
        requests_per_second: 0.0,
        latency: None,
        processes: Vec::new(),
        db_per_request: None,
        db_statements_per_request: None,
        db_statements_note: "not measured".into(),
        notes: vec!["not measured: the preparation did not complete".into()],
        floor_fraction: None,
    }
}

/// Prepares and runs one scenario at one concurrency. Neither part can hang: preparation
/// is bounded by `prep.prepare_timeout_s`, each request by `prep.request_timeout_s`, and
/// the workers must all be back shortly after the timed phase. A run whose preparation
/// fails is returned as an error (`preparation failed: ...`), not as `Err`, so that the
/// other runs go on; `Err` is for the harness's own failures.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    scenario: Scenario,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    prep: &Preparation,
    pools: &mut Pools,
    clients: &Clients,
    target: &Arc<Target>,
    watched: &[Watched],
    db: Option<&PgProbe>,
) -> anyhow::Result<RunResult> {
    let concurrency = concurrency.max(1);
    let prepare_started = Instant::now();
    let deadline = prepare_started + prep.prepare_timeout();
    // The outer bound a little later than the inner one: minting stops at `deadline`
    // and keeps what it has; this catches anything else that would hang.
    let prepared = tokio::time::timeout_at(
        (deadline + Duration::from_secs(5)).into(),
        prepare(
            scenario,
            concurrency,
            (warmup, duration),
            prep,
            pools,
            clients,
            target,
            deadline,
        ),
    )
    .await;
    let Prepared { inputs, mut notes } = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(e)) => {
            return Ok(unmeasured(
                scenario,
                concurrency,
                warmup,
                duration,
                format!("{e:#}"),
            ));
        }
        Err(_) => {
            return Ok(unmeasured(
                scenario,
                concurrency,
                warmup,
                duration,
                format!(
                    "not ready within --prepare-timeout ({:.0} s)",
                    prep.prepare_timeout_s
                ),
            ));
        }
    };
    let prepare_s = prepare_started.elapsed().as_secs_f64();
    if prepare_s > 10.0 {
        notes.push(format!("preparation took {prepare_s:.1} s"));
    }

    let ticks = procstat::ticks_per_second();
    let reset: Vec<bool> = watched
        .iter()
        .map(|w| procstat::reset_peak_rss(w.pid))
        .collect();
    let idle_rss: Vec<Option<u64>> = watched
        .iter()
        .map(|w| procstat::status_kib(w.pid, "VmRSS"))
        .collect();

    let start = Instant::now() + Duration::from_millis(20);
    let phases = Phases {
        warm_end: start + warmup,
        end: start + warmup + duration,
        request_timeout: prep.request_timeout(),
    };
    let (warm_end, end) = (phases.warm_end, phases.end);
    let handles: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let clients = clients.clone();
            let channel = clients.channel(i);
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                worker(scenario, input, clients, channel, target, phases).await
            })
        })
        .collect();
    tokio::time::sleep_until(warm_end.into()).await;
    let cpu_before = usage_snapshot(watched, ticks);
    let db_before = match db {
        Some(probe) => probe.sample().await,
        None => None,
    };
    let statements_before = ops::service_statements(clients.channel(0), target).await;
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = usage_snapshot(watched, ticks);
    let db_after = match db {
        Some(probe) => probe.sample().await,
        None => None,
    };
    let statements_after = ops::service_statements(clients.channel(0), target).await;
    // Each worker's last request started before `end` and is bounded by the request
    // timeout; past this deadline something is wrong in the harness itself, and the run
    // says so rather than waiting for ever.
    let join_deadline = end + phases.request_timeout + Duration::from_secs(5);
    let mut outcomes = Vec::with_capacity(handles.len());
    let mut lost = 0;
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(join_deadline.into(), handle).await {
            Ok(outcome) => outcomes.push(outcome?),
            Err(_) => {
                abort.abort();
                lost += 1;
            }
        }
    }

    let mut latencies = Vec::new();
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut warmup_error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut warmup_errors = 0;
    let mut ran_out = None;
    let mut stopped = 0;
    let mut leftover_codes = Vec::new();
    for outcome in outcomes {
        latencies.extend(outcome.latencies_ns);
        for (kind, n) in outcome.errors {
            *error_kinds.entry(kind).or_default() += n;
        }
        for (kind, n) in outcome.warmup_error_kinds {
            *warmup_error_kinds.entry(kind).or_default() += n;
        }
        warmup_errors += outcome.warmup_errors;
        if let Some(at) = outcome.ran_out_at {
            ran_out = Some(ran_out.map_or(at, |prev: Instant| prev.max(at)));
        }
        if outcome.stopped.is_some() {
            stopped += 1;
        }
        leftover_codes.extend(outcome.leftover_codes);
    }
    if lost > 0 {
        *error_kinds
            .entry("deadline: worker did not stop after the timed phase".into())
            .or_default() += lost;
        notes.push(format!(
            "{lost} of {concurrency} workers were still busy {:.0} s after the end and were abandoned; their requests are not counted",
            join_deadline.saturating_duration_since(end).as_secs_f64()
        ));
    }
    if scenario == Scenario::AuthorizationCode {
        pools.keep_unused_codes(leftover_codes);
    }
    // When minted codes ran out, the phase ended when the last worker ran dry.
    let elapsed = match ran_out {
        Some(at) if at < end => {
            notes.push(format!(
                "the minted authorization codes ran out before the end: raise --code-rate-hint (was {}) or --prepare-timeout",
                prep.code_rate_hint
            ));
            at.saturating_duration_since(warm_end)
        }
        _ => duration,
    };
    if stopped > 0 {
        notes.push(format!(
            "{stopped} of {concurrency} workers stopped after a failed refresh (their refresh family is gone)"
        ));
    }
    let requests = latencies.len() as u64;
    let errors: u64 = error_kinds.values().sum();
    let elapsed_s = elapsed.as_secs_f64();
    let processes = watched
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let cpu = match (cpu_before[i], cpu_after[i]) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            };
            ProcessUsage {
                name: w.name.clone(),
                pid: w.pid,
                cpu_seconds: cpu,
                cpu_seconds_per_1000_requests: cpu
                    .and_then(|c| stats::cpu_seconds_per_1000(c, requests)),
                cores_busy: cpu.map(|c| c / duration.as_secs_f64()),
                idle_rss_kib: idle_rss[i],
                peak_rss_kib: procstat::status_kib(w.pid, "VmHWM"),
                peak_rss_reset: reset[i],
            }
        })
        .collect();
    let db_per_request = match (db_before, db_after) {
        (Some(a), Some(b)) => b.since(&a).per_request(requests + errors),
        _ => None,
    };
    let (db_statements_per_request, db_statements_note) = match (db, &db_per_request) {
        (Some(probe), Some(per)) => (per.statements, probe.note()),
        (Some(_), None) => (
            None,
            "not measured (pg_stat_database could not be read)".into(),
        ),
        (None, _) => (None, "not measured".into()),
    };
    // token-service's own count, on either database, wins over PostgreSQL's: it is the same
    // on both, and needs no server extension.
    let (db_statements_per_request, db_statements_note) =
        match statements_per_request(statements_before, statements_after, requests + errors) {
            Some(per) => (
                Some(per),
                "token-service's count of the SQL statements it ran in the timed phase (BEGIN, SAVEPOINT and COMMIT included; group commit shares one BEGIN and COMMIT among a batch) per request".into(),
            ),
            None => (db_statements_per_request, db_statements_note),
        };
    Ok(RunResult {
        scenario,
        concurrency,
        warmup_s: warmup.as_secs_f64(),
        duration_s: duration.as_secs_f64(),
        elapsed_s,
        requests,
        errors,
        error_kinds,
        warmup_errors,
        warmup_error_kinds,
        requests_per_second: stats::rate(requests, elapsed_s),
        latency: LatencySummary::of(latencies),
        processes,
        db_per_request,
        db_statements_per_request,
        db_statements_note,
        notes,
        floor_fraction: None,
    })
}

/// Statements per request from token-service's counter read around the timed phase.
pub fn statements_per_request(
    before: Option<u64>,
    after: Option<u64>,
    requests: u64,
) -> Option<f64> {
    let (before, after) = (before?, after?);
    (requests > 0 && after >= before).then(|| (after - before) as f64 / requests as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_match_the_command_line() {
        use clap::ValueEnum;
        for scenario in Scenario::ALL {
            let parsed = Scenario::from_str(scenario.name(), false).expect("parses");
            assert_eq!(parsed, scenario);
            assert_eq!(
                serde_json::to_value(scenario).expect("json"),
                serde_json::json!(scenario.name())
            );
        }
    }

    #[test]
    fn statements_per_request_needs_both_readings_and_requests() {
        assert_eq!(statements_per_request(Some(100), Some(160), 10), Some(6.0));
        assert_eq!(statements_per_request(None, Some(160), 10), None);
        assert_eq!(statements_per_request(Some(100), None, 10), None);
        assert_eq!(statements_per_request(Some(100), Some(160), 0), None);
        // A restarted service counts from zero again: no figure rather than a wrong one.
        assert_eq!(statements_per_request(Some(100), Some(5), 10), None);
    }
}
