//! Logging set-up for both services: `tracing` with an `RUST_LOG`-style filter.
//!
//! Nothing logged anywhere carries a token, code, secret or password (SEC-SL-03): request
//! logs print paths without query strings, and secrets are [`crate::Secret`]s.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests start many servers) are no-ops.
/// Colours only on a terminal: a file or a journal gets plain text.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}

/// `init` for operator commands: logs go to standard error, so that standard output is
/// only the command's answer (`--json` stays parseable even when an audit event is logged).
pub fn init_for_cli(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
