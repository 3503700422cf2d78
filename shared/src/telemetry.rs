//! Logging set-up for both services: `tracing` with an `RUST_LOG`-style filter, as text or
//! as one JSON object per line (`log_format`).
//!
//! Nothing logged anywhere carries a token, code, secret or password (SEC-SL-03): request
//! logs print paths without query strings, and secrets are [`crate::Secret`]s.
//!
//! In JSON, an event's own fields sit at the top level beside `timestamp`, `level`,
//! `target` and `message` (auth-web puts `request_id` there); the fields of the span it
//! happened in (on token-service, `rpc` and `request_id`) are under `span`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (tests start many servers) are no-ops.
/// Colours only on a terminal: a file or a journal gets plain text.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// `init` for operator commands: logs go to standard error, so that standard output is
/// only the command's answer (`--json` stays parseable even when an audit event is logged).
pub fn init_for_cli(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
