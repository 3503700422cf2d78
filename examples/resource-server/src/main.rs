//! `resource-server`: the example API. See `docs/resource-servers.md`.
//!
//! ```sh
//! RESOURCE_SERVER_CLIENT_SECRET=dwcs-... resource-server --mode grpc --client-id <uid>
//! resource-server --mode jwks --issuer http://127.0.0.1:3000
//! ```

use std::process::ExitCode;

use clap::Parser;
use doorward_example_resource_server::{CLIENT_SECRET_VAR, Config, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = Config::parse();
    config.client_secret = std::env::var(CLIENT_SECRET_VAR).unwrap_or_default();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let (_, handle) = match start(config).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "could not wait for Ctrl-C");
    }
    tracing::info!("stopping");
    handle.stop(true).await;
    ExitCode::SUCCESS
}
