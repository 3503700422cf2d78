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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match doorward_shared::args::parse_args::<Cli>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(args).await {
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

async fn run(args: Cli) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    match args.command {
        Some(command) => {
            telemetry::init_for_cli("warn");
            let state = open_state(config, Arc::new(SystemClock)).await?;
            cli::run(&state, command).await
        }
        None => {
            telemetry::init("info");
            let app = TokenServiceApp::build(config, Arc::new(SystemClock)).await?;
            tracing::info!(addr = %app.local_addr()?, "token-service listening (gRPC)");
            app.run(async {
                doorward_shared::signals::shutdown_requested().await;
            })
            .await
        }
    }
}
