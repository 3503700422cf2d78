//! `token-service`: serves gRPC (the default) or runs an operator command.

/// mimalloc instead of glibc's malloc (see the all-in-one `doorward` binary).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use doorward_shared::config::Config;
use doorward_shared::{SystemClock, telemetry};
use token_service::cli::{self, Command};
use token_service::{TokenServiceApp, open_state};

/// Doorward's token service.
#[derive(Debug, Parser)]
#[command(name = "token-service", version)]
struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> std::process::ExitCode {
    let args = match doorward_shared::args::parse_args::<Cli>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let started = Config::load(args.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let runtime = token_service::startup::runtime(&config)
                .map_err(|e| anyhow::anyhow!("could not start the async runtime: {e}"))?;
            runtime.block_on(run(args.command, config))
        });
    match started {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

async fn run(command: Option<Command>, config: Config) -> anyhow::Result<()> {
    match command {
        Some(command) => {
            telemetry::init_for_cli("warn", config.log_format);
            if let Some(done) = cli::run_without_state(&command, &config) {
                return done;
            }
            let state = open_state(config, Arc::new(SystemClock)).await?;
            cli::run(&state, command).await
        }
        None => {
            // No open mode: alone, token-service must be able to tell auth-web from anyone.
            if !token_service::startup::internal_callers_configured(&config) {
                anyhow::bail!(token_service::startup::NO_INTERNAL_CALLERS);
            }
            telemetry::init("info", config.log_format);
            config.log_public_url_origin();
            let app = TokenServiceApp::build(config, Arc::new(SystemClock)).await?;
            tracing::info!(addr = %app.local_addr()?, socket = ?app.unix_socket(), "token-service listening (gRPC)");
            app.run(async {
                doorward_shared::signals::shutdown_requested().await;
            })
            .await
        }
    }
}
