//! What a run needs before its timed phase: authorization codes minted through
//! `Authorizations.IssueCode`, refresh families, and pools of live tokens, all within the
//! run's preparation deadline. Kept between runs of one invocation in [`Pools`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::ops::{self, Clients, Target};
use crate::scenario::{Preparation, Scenario};
use crate::stats;

/// The tokens kept between runs of one invocation (they live for two hours).
#[derive(Default)]
pub struct Pools {
    user_id: Option<i64>,
    /// The next of `Target::code_user_ids` to mint codes for.
    next_code_user: usize,
    user_tokens: Option<Arc<Vec<String>>>,
    cc_tokens: Option<Arc<Vec<String>>>,
    /// Authorization codes minted for an earlier run and not used.
    codes: Vec<String>,
    /// When the oldest of `codes` was minted (they expire: `authorization_code_ttl_seconds`,
    /// 600 s by default).
    codes_minted: Option<Instant>,
}

impl Pools {
    /// Codes minted for a run and not used: the next run of `authorization_code` starts
    /// with them.
    pub(crate) fn keep_unused_codes(&mut self, codes: Vec<String>) {
        self.codes = codes;
    }
}

/// How long a minted code is reused for: well within the default 600 s code lifetime.
const CODE_REUSE: Duration = Duration::from_secs(480);

/// A worker's input.
pub(crate) enum Input {
    None,
    Refresh(String),
    Codes(Vec<String>),
    Pool(Arc<Vec<String>>, usize),
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

/// A user to mint many codes for: the next one seeded for that, else the main user.
async fn code_user(pools: &mut Pools, clients: &Clients, target: &Target) -> anyhow::Result<i64> {
    match target.code_user_ids.get(pools.next_code_user) {
        Some(&id) => {
            pools.next_code_user += 1;
            Ok(id)
        }
        None => user_id(pools, clients, target).await,
    }
}

/// Codes minted through `Authorizations.IssueCode`, at most `count`, until `deadline`.
struct Minted {
    codes: Vec<String>,
    elapsed: Duration,
    /// Why minting stopped short of `count` (the deadline or a refusal).
    short: Option<String>,
}

async fn mint_codes(
    clients: &Clients,
    target: &Target,
    user_id: i64,
    count: usize,
    deadline: Instant,
) -> Minted {
    let started = Instant::now();
    let mut minted = stream::iter(0..count)
        .map(|i| {
            let channel = clients.channel(i);
            async move { ops::issue_code(channel, target, user_id).await }
        })
        .buffer_unordered(PREP_PARALLEL);
    let mut codes = Vec::with_capacity(count);
    let mut short = None;
    while codes.len() < count {
        match tokio::time::timeout_at(deadline.into(), minted.next()).await {
            Ok(Some(Ok(code))) => codes.push(code),
            Ok(Some(Err(e))) => {
                short = Some(format!("Authorizations.IssueCode failed: {e:#}"));
                break;
            }
            Ok(None) => break,
            Err(_) => {
                short = Some("the preparation deadline (--prepare-timeout) passed".into());
                break;
            }
        }
    }
    Minted {
        codes,
        elapsed: started.elapsed(),
        short,
    }
}

/// Exactly `count` codes, or an error.
async fn mint_all_codes(
    clients: &Clients,
    target: &Target,
    user_id: i64,
    count: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<String>> {
    let minted = mint_codes(clients, target, user_id, count, deadline).await;
    match minted.short {
        None if minted.codes.len() == count => Ok(minted.codes),
        short => anyhow::bail!(
            "minted {} of {count} authorization codes in {:.1} s: {}",
            minted.codes.len(),
            minted.elapsed.as_secs_f64(),
            short.unwrap_or_default()
        ),
    }
}

async fn user_tokens(
    pools: &mut Pools,
    clients: &Clients,
    target: &Target,
    size: usize,
    deadline: Instant,
) -> anyhow::Result<Arc<Vec<String>>> {
    if let Some(pool) = &pools.user_tokens {
        return Ok(pool.clone());
    }
    let id = code_user(pools, clients, target).await?;
    let codes = mint_all_codes(clients, target, id, size.max(1), deadline).await?;
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

/// What a run starts with: each worker's input, and notes for the results.
pub(crate) struct Prepared {
    pub(crate) inputs: Vec<Input>,
    pub(crate) notes: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn prepare(
    scenario: Scenario,
    concurrency: usize,
    timing: (Duration, Duration),
    prep: &Preparation,
    pools: &mut Pools,
    clients: &Clients,
    target: &Target,
    deadline: Instant,
) -> anyhow::Result<Prepared> {
    let mut notes = Vec::new();
    let inputs = match scenario {
        Scenario::ClientCredentials | Scenario::Password => {
            (0..concurrency).map(|_| Input::None).collect()
        }
        Scenario::Refresh => {
            // Each worker's own refresh family, started with a code exchange.
            let id = user_id(pools, clients, target).await?;
            let codes = mint_all_codes(clients, target, id, concurrency, deadline).await?;
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
            let id = code_user(pools, clients, target).await?;
            let count = codes_for_run(prep.code_rate_hint, timing.0, timing.1);
            // Codes an earlier run left unused are still good: start with those.
            let mut codes = std::mem::take(&mut pools.codes);
            let fresh = pools.codes_minted.filter(|t| t.elapsed() < CODE_REUSE);
            if fresh.is_none() {
                codes.clear();
            }
            codes.truncate(count);
            let reused = codes.len();
            pools.codes_minted = Some(fresh.filter(|_| reused > 0).unwrap_or_else(Instant::now));
            let minted = mint_codes(clients, target, id, count - reused, deadline).await;
            if let Some(why) = &minted.short {
                if minted.codes.is_empty() && reused == 0 {
                    anyhow::bail!("no authorization code could be minted: {why}");
                }
                notes.push(format!(
                    "minted {} of {} authorization codes in {:.1} s ({:.0}/s; {reused} reused from an earlier run), then stopped: {why}; the run ends early if they run out",
                    minted.codes.len(),
                    count - reused,
                    minted.elapsed.as_secs_f64(),
                    stats::rate(minted.codes.len() as u64, minted.elapsed.as_secs_f64()),
                ));
            }
            if minted.short.is_none() {
                notes.push(format!(
                    "minted {} authorization codes in {:.1} s ({:.0}/s); {reused} reused from an earlier run",
                    minted.codes.len(),
                    minted.elapsed.as_secs_f64(),
                    stats::rate(minted.codes.len() as u64, minted.elapsed.as_secs_f64()),
                ));
            }
            codes.extend(minted.codes);
            let per_worker = codes.len().div_ceil(concurrency);
            let mut inputs: Vec<Input> = codes
                .chunks(per_worker.max(1))
                .map(|chunk| Input::Codes(chunk.to_vec()))
                .collect();
            inputs.resize_with(concurrency, || Input::Codes(Vec::new()));
            inputs
        }
        Scenario::ApiUser | Scenario::Introspect => {
            let pool = user_tokens(pools, clients, target, prep.token_pool, deadline).await?;
            spread(pool, concurrency)
        }
        Scenario::GrpcValidate => {
            let pool = cc_tokens(pools, clients, target, prep.working_set).await?;
            spread(pool, concurrency)
        }
    };
    Ok(Prepared { inputs, notes })
}

fn spread(pool: Arc<Vec<String>>, concurrency: usize) -> Vec<Input> {
    let stride = (pool.len() / concurrency.max(1)).max(1);
    (0..concurrency)
        .map(|i| Input::Pool(pool.clone(), i * stride))
        .collect()
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
}
