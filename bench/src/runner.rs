//! Scenarios and the timed loop: `concurrency` workers send requests back to back (each
//! waits for its answer before the next: a closed loop) for the warm-up and then the timed
//! phase; only requests started in the timed phase are counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::ops::{self, Clients, Failure, Target};
use crate::procstat::{self, ProcessUsage, Watched};
use crate::stats::{self, LatencySummary};

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Scenario {
    /// `POST /oauth/token` grant_type=client_credentials.
    ClientCredentials,
    /// `POST /oauth/token` grant_type=password (argon2-bound).
    Password,
    /// `POST /oauth/token` grant_type=refresh_token, each worker rotating its own token.
    Refresh,
    /// `POST /oauth/token` grant_type=authorization_code with codes minted beforehand.
    AuthorizationCode,
    /// `GET /api/v4/user` over a pool of user tokens.
    ApiUser,
    /// `POST /oauth/introspect` over a pool of user tokens.
    Introspect,
    /// gRPC `TokenValidation.Validate` over a working set of client_credentials tokens.
    GrpcValidate,
}

impl Scenario {
    /// Every scenario, in the order a full run measures them.
    pub const ALL: [Scenario; 7] = [
        Scenario::ClientCredentials,
        Scenario::Password,
        Scenario::Refresh,
        Scenario::AuthorizationCode,
        Scenario::ApiUser,
        Scenario::Introspect,
        Scenario::GrpcValidate,
    ];

    /// The name used on the command line, in file names and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ClientCredentials => "client_credentials",
            Scenario::Password => "password",
            Scenario::Refresh => "refresh",
            Scenario::AuthorizationCode => "authorization_code",
            Scenario::ApiUser => "api_user",
            Scenario::Introspect => "introspect",
            Scenario::GrpcValidate => "grpc_validate",
        }
    }
}

/// Sizes of what is prepared before the timed phase.
#[derive(Debug, Clone, Serialize)]
pub struct Preparation {
    /// Distinct live tokens that `grpc_validate` cycles through.
    pub working_set: usize,
    /// User access tokens that `api_user` and `introspect` cycle through.
    pub token_pool: usize,
    /// Expected authorization_code exchanges per second: codes minted per run are this
    /// times (warm-up + duration) times 1.25.
    pub code_rate_hint: u64,
}

/// The tokens kept between runs of one invocation (they live for two hours).
#[derive(Default)]
pub struct Pools {
    user_id: Option<i64>,
    user_tokens: Option<Arc<Vec<String>>>,
    cc_tokens: Option<Arc<Vec<String>>>,
}

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
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Latency of successful requests; `None` when there were none.
    pub latency: Option<LatencySummary>,
    /// Per service process; empty when the target is not a local process.
    pub processes: Vec<ProcessUsage>,
    /// Database statements per request: measured only where it is cheap and exact.
    pub db_statements_per_request: Option<f64>,
    /// Why `db_statements_per_request` is absent.
    pub db_statements_note: String,
    /// Notes on this run (codes ran out, workers stopped, ...).
    pub notes: Vec<String>,
    /// Throughput as a fraction of the floor (see `floor` in the results).
    pub floor_fraction: Option<f64>,
}

/// A worker's input.
enum Input {
    None,
    Refresh(String),
    Codes(Vec<String>),
    Pool(Arc<Vec<String>>, usize),
}

#[derive(Default)]
struct WorkerOutcome {
    latencies_ns: Vec<u64>,
    errors: BTreeMap<String, u64>,
    warmup_errors: u64,
    ran_out_at: Option<Instant>,
    stopped: Option<String>,
}

/// Runs `tasks` futures with at most `parallel` at once, in order, failing on the first
/// error.
async fn bounded<T, F>(
    count: usize,
    parallel: usize,
    make: impl Fn(usize) -> F,
) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    stream::iter((0..count).map(make))
        .buffered(parallel.max(1))
        .try_collect()
        .await
}

const PREP_PARALLEL: usize = 16;

async fn user_id(pools: &mut Pools, clients: &Clients, target: &Target) -> anyhow::Result<i64> {
    if let Some(id) = pools.user_id.or(target.user_id) {
        pools.user_id = Some(id);
        return Ok(id);
    }
    let tokens = ops::password(clients, target)
        .await
        .map_err(|f| anyhow::anyhow!("password grant for the user failed: {}", f.0))?;
    let id = ops::user_id(clients, target, &tokens.access_token).await?;
    pools.user_id = Some(id);
    Ok(id)
}

async fn mint_codes(
    clients: &Clients,
    target: &Target,
    user_id: i64,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    bounded(count, PREP_PARALLEL, |i| {
        let channel = clients.channel(i);
        async move { ops::issue_code(channel, target, user_id).await }
    })
    .await
    .context("could not mint authorization codes through Authorizations.IssueCode")
}

async fn user_tokens(
    pools: &mut Pools,
    clients: &Clients,
    target: &Target,
    size: usize,
) -> anyhow::Result<Arc<Vec<String>>> {
    if let Some(pool) = &pools.user_tokens {
        return Ok(pool.clone());
    }
    let id = user_id(pools, clients, target).await?;
    let codes = mint_codes(clients, target, id, size.max(1)).await?;
    let tokens = bounded(codes.len(), PREP_PARALLEL, |i| {
        let code = &codes[i];
        async move {
            ops::exchange_code(clients, target, code)
                .await
                .map(|t| t.access_token)
                .map_err(|f| anyhow::anyhow!("code exchange failed: {}", f.0))
        }
    })
    .await?;
    let pool = Arc::new(tokens);
    pools.user_tokens = Some(pool.clone());
    Ok(pool)
}

async fn cc_tokens(
    pools: &mut Pools,
    clients: &Clients,
    target: &Target,
    size: usize,
) -> anyhow::Result<Arc<Vec<String>>> {
    if let Some(pool) = &pools.cc_tokens {
        return Ok(pool.clone());
    }
    let tokens = bounded(size.max(1), PREP_PARALLEL, |_| async {
        ops::client_credentials(clients, target)
            .await
            .map(|t| t.access_token)
            .map_err(|f| anyhow::anyhow!("client_credentials failed: {}", f.0))
    })
    .await?;
    let pool = Arc::new(tokens);
    pools.cc_tokens = Some(pool.clone());
    Ok(pool)
}

/// How many codes a run mints: the hint times the whole run, with a quarter to spare.
pub fn codes_for_run(rate_hint: u64, warmup: Duration, duration: Duration) -> usize {
    let seconds = (warmup + duration).as_secs_f64();
    ((rate_hint as f64 * seconds * 1.25).ceil() as usize).max(1)
}

async fn prepare(
    scenario: Scenario,
    concurrency: usize,
    timing: (Duration, Duration),
    prep: &Preparation,
    pools: &mut Pools,
    clients: &Clients,
    target: &Target,
) -> anyhow::Result<Vec<Input>> {
    Ok(match scenario {
        Scenario::ClientCredentials | Scenario::Password => {
            (0..concurrency).map(|_| Input::None).collect()
        }
        Scenario::Refresh => {
            // Each worker's own refresh family, started with a code exchange.
            let id = user_id(pools, clients, target).await?;
            let codes = mint_codes(clients, target, id, concurrency).await?;
            let mut inputs = Vec::with_capacity(concurrency);
            for code in codes {
                let tokens = ops::exchange_code(clients, target, &code)
                    .await
                    .map_err(|f| anyhow::anyhow!("code exchange failed: {}", f.0))?;
                let refresh = tokens
                    .refresh_token
                    .context("the code exchange gave no refresh token")?;
                inputs.push(Input::Refresh(refresh));
            }
            inputs
        }
        Scenario::AuthorizationCode => {
            let id = user_id(pools, clients, target).await?;
            let count = codes_for_run(prep.code_rate_hint, timing.0, timing.1);
            let codes = mint_codes(clients, target, id, count).await?;
            let per_worker = codes.len().div_ceil(concurrency);
            let mut inputs: Vec<Input> = codes
                .chunks(per_worker.max(1))
                .map(|chunk| Input::Codes(chunk.to_vec()))
                .collect();
            inputs.resize_with(concurrency, || Input::Codes(Vec::new()));
            inputs
        }
        Scenario::ApiUser | Scenario::Introspect => {
            let pool = user_tokens(pools, clients, target, prep.token_pool).await?;
            spread(pool, concurrency)
        }
        Scenario::GrpcValidate => {
            let pool = cc_tokens(pools, clients, target, prep.working_set).await?;
            spread(pool, concurrency)
        }
    })
}

fn spread(pool: Arc<Vec<String>>, concurrency: usize) -> Vec<Input> {
    let stride = (pool.len() / concurrency.max(1)).max(1);
    (0..concurrency)
        .map(|i| Input::Pool(pool.clone(), i * stride))
        .collect()
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

#[allow(clippy::too_many_arguments)]
async fn worker(
    scenario: Scenario,
    mut input: Input,
    clients: Clients,
    channel: tonic::transport::Channel,
    target: Arc<Target>,
    warm_end: Instant,
    end: Instant,
) -> WorkerOutcome {
    let mut outcome = WorkerOutcome::default();
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let Some(result) = one_request(scenario, &mut input, &clients, &channel, &target).await
        else {
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
                }
                if scenario == Scenario::Refresh {
                    // The worker's refresh family is gone; it cannot go on.
                    outcome.stopped = Some(kind);
                    break;
                }
            }
        }
    }
    outcome
}

fn usage_snapshot(watched: &[Watched], ticks: u64) -> Vec<Option<f64>> {
    watched
        .iter()
        .map(|w| procstat::cpu_seconds(w.pid, ticks))
        .collect()
}

/// Prepares and runs one scenario at one concurrency.
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
) -> anyhow::Result<RunResult> {
    let concurrency = concurrency.max(1);
    let inputs = prepare(
        scenario,
        concurrency,
        (warmup, duration),
        prep,
        pools,
        clients,
        target,
    )
    .await
    .with_context(|| format!("preparing {}", scenario.name()))?;

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
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let handles: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let clients = clients.clone();
            let channel = clients.channel(i);
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                worker(scenario, input, clients, channel, target, warm_end, end).await
            })
        })
        .collect();
    tokio::time::sleep_until(warm_end.into()).await;
    let cpu_before = usage_snapshot(watched, ticks);
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = usage_snapshot(watched, ticks);
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.await?);
    }

    let mut latencies = Vec::new();
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut warmup_errors = 0;
    let mut notes = Vec::new();
    let mut ran_out = None;
    let mut stopped = 0;
    for outcome in outcomes {
        latencies.extend(outcome.latencies_ns);
        for (kind, n) in outcome.errors {
            *error_kinds.entry(kind).or_default() += n;
        }
        warmup_errors += outcome.warmup_errors;
        if let Some(at) = outcome.ran_out_at {
            ran_out = Some(ran_out.map_or(at, |prev: Instant| prev.max(at)));
        }
        if outcome.stopped.is_some() {
            stopped += 1;
        }
    }
    // When minted codes ran out, the phase ended when the last worker ran dry.
    let elapsed = match ran_out {
        Some(at) if at < end => {
            notes.push(format!(
                "the minted authorization codes ran out before the end: raise --code-rate-hint (was {})",
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
        requests_per_second: stats::rate(requests, elapsed_s),
        latency: LatencySummary::of(latencies),
        processes,
        db_statements_per_request: None,
        db_statements_note: "not measured".into(),
        notes,
        floor_fraction: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_cover_the_whole_run_with_a_quarter_to_spare() {
        let n = codes_for_run(1_000, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(n, 15_000);
        assert_eq!(codes_for_run(0, Duration::ZERO, Duration::ZERO), 1);
    }

    #[test]
    fn pools_are_spread_over_workers() {
        let pool = Arc::new((0..10).map(|i| i.to_string()).collect::<Vec<_>>());
        let offsets: Vec<usize> = spread(pool.clone(), 3)
            .into_iter()
            .map(|input| match input {
                Input::Pool(_, offset) => offset,
                _ => usize::MAX,
            })
            .collect();
        assert_eq!(offsets, [0, 3, 6]);
        // More workers than tokens: every worker still gets a start.
        assert_eq!(spread(pool, 20).len(), 20);
    }

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
}
