//! `auth-web`: serves HTTP, pointed at token-service by `TOKEN_SERVICE_URL`.

/// mimalloc instead of glibc's malloc (see the all-in-one `doorward` binary).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use auth_web::AuthWebApp;
use clap::Parser;
use doorward_shared::config::Config;
use doorward_shared::telemetry;

/// Doorward's HTTP service.
#[derive(Debug, Parser)]
#[command(name = "auth-web", version)]
struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let args = match doorward_shared::args::parse_args::<Cli>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "error: {}",
                err.chain()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(": ")
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Cli) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    telemetry::init("info", config.log_format);
    config.log_public_url_origin();
    let upstream = config.token_service_url.clone();
    let app = AuthWebApp::build(config)?;
    tracing::info!(addr = %app.local_addr(), token_service = %upstream, "auth-web listening");
    let handle = app.handle();
    tokio::spawn(async move {
        doorward_shared::signals::shutdown_requested().await;
        handle.stop(true).await;
    });
    app.run().await?;
    Ok(())
}
