//! `doorward-bench run`: see `bench/README.md`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use doorward_bench::ops::Target;
use doorward_bench::procstat::Watched;
use doorward_bench::runner::{Preparation, Scenario};
use doorward_bench::server::{LaunchOptions, Mode};
use doorward_bench::{Plan, Under, machine, target_dir, workspace_root};

/// Doorward's benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "doorward-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start Doorward (or target a running one), seed it, and measure.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenarios to run, comma separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    scenario: Vec<Scenario>,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Seconds of each timed phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up before each timed phase (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// How the harness starts Doorward.
    #[arg(long, value_enum, default_value = "all-in-one")]
    mode: Mode,
    /// With --mode split: auth-web reaches token-service over mutual TLS (certificates
    /// from `token-service tls init` in the scratch folder), and the harness's gRPC clients
    /// over TLS. Refused with all-in-one, whose services talk over a Unix socket.
    #[arg(long, conflicts_with = "target")]
    tls: bool,
    /// Folder with the binaries to start (default: the workspace's target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Run on this PostgreSQL database instead of a scratch SQLite file.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// RUST_LOG of the started services (default: theirs).
    #[arg(long)]
    rust_log: Option<String>,
    /// Keep the scratch folder (database and service logs).
    #[arg(long)]
    keep_scratch: bool,
    /// Distinct live tokens grpc_validate cycles through.
    #[arg(long, default_value_t = 10_000)]
    working_set: usize,
    /// User tokens api_user and introspect cycle through.
    #[arg(long, default_value_t = 1_000)]
    token_pool: usize,
    /// Expected authorization_code exchanges per second (sizes the codes minted per run).
    #[arg(long, default_value_t = 5_000)]
    code_rate_hint: u64,
    /// Seconds one request may wait for its answer before it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Seconds the preparation of one run may take (minting codes, filling token pools);
    /// past it, authorization_code runs with the codes minted so far, and other scenarios
    /// are reported as failed.
    #[arg(long, default_value_t = 120.0)]
    prepare_timeout: f64,
    /// Configuration for the started services, as KEY=VALUE (repeatable), for example
    /// DOORWARD_PASSWORDS__MAX_QUEUED_HASHES=8. The harness lifts the sign-in throttle
    /// by default (see bench/README.md); this overrides that too.
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// gRPC channels (HTTP/2 connections) the workers share.
    #[arg(long, default_value_t = 2)]
    grpc_channels: usize,
    /// Where results go (default: bench/results).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Criterion's output folder, for the floor (default: target/criterion).
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    #[command(flatten)]
    external: ExternalArgs,
}

/// A running Doorward instead of one the harness starts.
#[derive(Debug, Args)]
struct ExternalArgs {
    /// auth-web's base URL (for example http://127.0.0.1:3000): target a running server.
    #[arg(long)]
    target: Option<String>,
    /// token-service's gRPC URL (required with --target).
    #[arg(long, requires = "target")]
    grpc: Option<String>,
    /// The CA of token-service's certificate (PEM), when --grpc is https://.
    #[arg(long, requires = "grpc")]
    grpc_ca: Option<PathBuf>,
    /// A confidential application's client_id, allowed the grants of the scenarios.
    #[arg(long, requires = "target", env = "BENCH_CLIENT_ID")]
    client_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        requires = "target",
        env = "BENCH_CLIENT_SECRET",
        hide_env_values = true
    )]
    client_secret: Option<String>,
    /// A user's login (for the user scenarios).
    #[arg(long, requires = "target", env = "BENCH_USERNAME")]
    username: Option<String>,
    /// Its password.
    #[arg(
        long,
        requires = "target",
        env = "BENCH_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// A redirect URI registered for the application.
    #[arg(long, requires = "target")]
    redirect_uri: Option<String>,
    /// token-service's SERVICE_TOKEN, if it requires one (codes are minted through an
    /// internal RPC).
    #[arg(
        long,
        requires = "target",
        env = "BENCH_SERVICE_TOKEN",
        hide_env_values = true
    )]
    service_token: Option<String>,
    /// Processes to measure, as NAME=PID (repeatable), when the server runs on this machine.
    #[arg(long = "pid", requires = "target", value_parser = parse_pid)]
    pids: Vec<Watched>,
}

fn parse_pid(value: &str) -> Result<Watched, String> {
    let (name, pid) = value
        .split_once('=')
        .ok_or_else(|| "expected NAME=PID".to_owned())?;
    Ok(Watched {
        name: name.to_owned(),
        pid: pid.parse().map_err(|_| format!("bad pid {pid:?}"))?,
    })
}

/// Users to seed for minting codes: one per authorization_code run, one for the token
/// pool of api_user and introspect.
fn code_users(scenarios: &[Scenario], levels: usize) -> usize {
    let wants = |s: Scenario| scenarios.is_empty() || scenarios.contains(&s);
    let mut n = 0;
    if wants(Scenario::AuthorizationCode) {
        n += levels;
    }
    if wants(Scenario::ApiUser) || wants(Scenario::Introspect) {
        n += 1;
    }
    n
}

fn parse_env(value: &str) -> Result<(String, String), String> {
    let (key, value) = value
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_owned())?;
    if !key.starts_with("DOORWARD_") && key != "RUST_LOG" {
        return Err(format!(
            "{key}: only DOORWARD_* configuration (and RUST_LOG) can be set this way"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("--{what} must be a number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

fn plan(args: RunArgs) -> anyhow::Result<(Plan, PathBuf)> {
    let e = args.external;
    let under = match e.target {
        Some(http_base) => {
            let need = |v: Option<String>, flag: &str| {
                v.with_context(|| format!("--{flag} is required with --target"))
            };
            Under::External {
                target: Target {
                    http_base: http_base.trim_end_matches('/').to_owned(),
                    grpc_url: need(e.grpc, "grpc")?,
                    grpc_ca_file: e.grpc_ca,
                    client_id: need(e.client_id, "client-id")?,
                    client_secret: need(e.client_secret, "client-secret")?,
                    username: e.username.unwrap_or_default(),
                    password: e.password.unwrap_or_default(),
                    user_id: None,
                    code_user_ids: Vec::new(),
                    redirect_uri: need(e.redirect_uri, "redirect-uri")?,
                    service_token: e.service_token,
                },
                watched: e.pids,
            }
        }
        None if args.tls && args.mode != Mode::Split => {
            bail!(
                "--tls needs --mode split: the all-in-one's services talk over a Unix socket, with no link to put TLS on"
            )
        }
        None => Under::Launch(LaunchOptions {
            mode: args.mode,
            tls: args.tls,
            bin_dir: args.bin_dir.unwrap_or_else(|| target_dir().join("release")),
            database_url: args.database_url,
            keep_scratch: args.keep_scratch,
            rust_log: args.rust_log,
            server_env: args.server_env,
            code_users: code_users(&args.scenario, args.concurrency.len()),
        }),
    };
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario
    };
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs levels of at least 1");
    }
    let results = args
        .results
        .unwrap_or_else(|| workspace_root().join("bench").join("results"));
    Ok((
        Plan {
            under,
            scenarios,
            concurrency: args.concurrency,
            duration: seconds(args.duration, "duration")?,
            warmup: seconds(args.warmup, "warmup")?,
            preparation: Preparation {
                working_set: args.working_set.max(1),
                token_pool: args.token_pool.max(1),
                code_rate_hint: args.code_rate_hint,
                request_timeout_s: seconds(args.request_timeout, "request-timeout")?
                    .as_secs_f64()
                    .max(0.001),
                prepare_timeout_s: seconds(args.prepare_timeout, "prepare-timeout")?
                    .as_secs_f64()
                    .max(0.001),
            },
            grpc_channels: args.grpc_channels.max(1),
            criterion_dir: args
                .criterion_dir
                .unwrap_or_else(|| target_dir().join("criterion")),
        },
        results,
    ))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        // Measured, but some requests failed: the numbers are not to be trusted.
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
                _ = term.recv() => "terminated (SIGTERM)",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "interrupted (Ctrl-C)"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted (Ctrl-C)"
    }
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let (plan, results_dir) = plan(args)?;
    let stamp = machine::file_stamp();
    // The results so far are written after every run, so that an interrupted or failed
    // invocation keeps what it measured.
    let write_so_far = |so_far: &doorward_bench::report::Results| {
        if let Err(e) = so_far.write(&results_dir, &stamp) {
            eprintln!(
                "warning: could not write the results to {}: {e:#}",
                results_dir.display()
            );
        }
    };
    // On a signal, dropping `execute` stops the services it started and removes their
    // scratch folder and database; what was measured is already written.
    let results = tokio::select! {
        results = doorward_bench::execute(&plan, |line| eprintln!("{line}"), write_so_far) => results?,
        why = interrupted() => {
            anyhow::bail!("{why}; the runs finished so far are in {}", results_dir.display())
        }
    };
    let written = results.write(&results_dir, &stamp)?;
    println!(
        "{} · {} cores · {} · {} · {}",
        results.machine.cpu_model,
        results.machine.cores,
        results.machine.date,
        results.setup.mode_label(),
        results.setup.database
    );
    print!("{}", results.table());
    for path in written {
        println!("wrote {}", path.display());
    }
    let errors: u64 = results.runs.iter().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("{errors} requests failed: see error_kinds in the results");
    }
    Ok(errors == 0)
}
