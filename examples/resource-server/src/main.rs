//! `resource-server`: the example API. See `docs/resource-servers.md`.
//!
//! ```sh
//! RESOURCE_SERVER_CLIENT_SECRET=dwcs-... resource-server --mode grpc --client-id <uid>
//! resource-server --mode jwks --issuer http://127.0.0.1:3000
//! ```

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use doorward_example_resource_server::{CLIENT_SECRET_VAR, Config, TOKEN_SERVICE_URL_VAR, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Config::command().get_matches();
    let mut config = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(url) = contract_url(&matches, std::env::var(TOKEN_SERVICE_URL_VAR).ok()) {
        config.token_service = url;
    }
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

/// `TOKEN_SERVICE_URL` (the name Doorward's own configuration uses) when token-service's URL
/// came from neither `--token-service` nor `RESOURCE_SERVER_TOKEN_SERVICE`. It is applied
/// here rather than as a second clap `env`, which clap does not have, or by setting the
/// variable, which edition 2024 makes unsafe.
fn contract_url(matches: &ArgMatches, token_service_url: Option<String>) -> Option<String> {
    let defaulted = matches.value_source("token_service") == Some(ValueSource::DefaultValue);
    token_service_url.filter(|url| defaulted && !url.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_service_url_applies_only_when_nothing_else_names_token_service() {
        let contract = Some("https://10.0.0.2:50051".to_owned());
        let flag = Config::command()
            .try_get_matches_from(["resource-server", "--token-service", "http://a:1"])
            .unwrap();
        assert_eq!(contract_url(&flag, contract.clone()), None);

        let none = Config::command()
            .try_get_matches_from(["resource-server"])
            .unwrap();
        // RESOURCE_SERVER_TOKEN_SERVICE in this process's environment outranks the contract's
        // name, exactly as in the binary.
        let expected = match std::env::var_os("RESOURCE_SERVER_TOKEN_SERVICE") {
            Some(_) => None,
            None => contract.clone(),
        };
        assert_eq!(contract_url(&none, contract), expected);
        assert_eq!(contract_url(&none, None), None);
        assert_eq!(contract_url(&none, Some(String::new())), None);
    }
}
