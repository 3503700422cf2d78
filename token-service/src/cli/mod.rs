//! The operator CLI (ARCHITECTURE.md, "Contracts"), shared by the `token-service` binary and the
//! all-in-one `doorward` binary. It works on the database directly; `--json` makes every
//! command machine-readable. Errors are one line on stderr and a non-zero exit.

mod apps;
mod keys;
mod users;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use doorward_shared::config::Config;

use crate::accounts;
use crate::state::AppState;
use crate::tls_init::{self, TlsInitRequest};

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage applications (OAuth clients).
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Inspect, rotate and revoke signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Maintain issued tokens and grants.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Apply pending database migrations and exit.
    Migrate(JsonFlag),
    /// Make certificates for trying TLS locally (needs no database).
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Copy the SQLite database to a new file while the services run.
    ///
    /// An online, consistent copy (SQLite's `VACUUM INTO`), written with mode 0600 because it
    /// holds the signing keys; an existing file is never overwritten. The database is not
    /// migrated first. On PostgreSQL, use `pg_dump`.
    Backup(BackupArgs),
}

/// `backup --to FILE`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write (it must not exist).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// `users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        /// Login name.
        #[arg(long)]
        username: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Display name (defaults to the username).
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of standard input (otherwise a random
        /// one is generated and printed once).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `apps ...`
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Register an application; prints its client id and (once) its secret.
    Create(CreateApp),
    /// List applications.
    List(JsonFlag),
    /// Show one application.
    Show {
        /// Client id.
        uid: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete an application with its grants and tokens.
    Delete {
        /// Client id.
        uid: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Issue a new secret (printed once).
    RotateSecret {
        /// Client id.
        uid: String,
        /// Seconds the old secret keeps working (0: stops at once).
        #[arg(long, default_value_t = 0)]
        grace: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `apps create ...`
#[derive(Debug, Args)]
pub struct CreateApp {
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// A redirect URI (repeatable).
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes the application may ask for.
    #[arg(long, default_value = "api")]
    pub scopes: String,
    /// A public client (no secret; must use PKCE).
    #[arg(long)]
    pub public: bool,
    /// Trusted: skips the consent screen.
    #[arg(long)]
    pub trusted: bool,
    /// Space-separated grant types the application may use (default: all that its kind
    /// allows: authorization_code refresh_token device_code, plus client_credentials and
    /// password for confidential applications).
    #[arg(long)]
    pub grant_types: Option<String>,
    /// Bar the application from the resource-owner password grant.
    #[arg(long, conflicts_with = "grant_types")]
    pub no_password_grant: bool,
    /// The owning user's username.
    #[arg(long)]
    pub owner: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state.
    List(JsonFlag),
    /// Add a new signing key for access tokens and one for id_tokens: published at once,
    /// signing after `tokens.key_publish_ahead_seconds`; the old keys stay published until
    /// the tokens they signed have expired. Running token services pick the change up
    /// within `tokens.key_reload_seconds`.
    Rotate {
        /// Rotate only the keys of this purpose.
        #[arg(long, value_parser = ["access_token", "id_token"])]
        purpose: Option<String>,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a compromised key: it leaves the key set and every token it signed fails
    /// (within `tokens.key_reload_seconds`); a new key replaces it if it was signing.
    Revoke {
        /// The key's `kid`.
        kid: String,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `tokens ...`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Delete expired codes, device grants and tokens, and dead refresh families.
    ///
    /// Removes expired authorization codes and device grants, expired access tokens without
    /// a refresh token, and refresh families none of whose tokens can still be used: what
    /// token-service does every `housekeeping.interval_seconds`. Prints the rows removed
    /// per table.
    Cleanup(JsonFlag),
}

/// `tls ...`
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Write a local CA and certificates for TLS and mutual TLS between the services.
    ///
    /// Writes ca.pem, server.pem (for `--host`) and auth-web.pem (auth-web's client
    /// certificate: an internal caller), each with its `-key.pem`, and prints the
    /// configuration that uses them. For trying things out: the CA's key lies beside the
    /// certificates.
    Init {
        /// The folder to write into (created, mode 0700, if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A name of the server certificate: an IP address or a DNS name (repeatable; the
        /// first is the one in the printed URLs).
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
        /// Days the certificates stay valid.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 365,
            value_parser = clap::value_parser!(u32).range(1..=36500)
        )]
        days: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
}

fn field_errors(errors: &[accounts::FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `command` if it must not open the state (which migrates the database and loads the
/// keys): `tls ...`, which an operator runs before a database exists, and `backup`, whose
/// copy must be of the database as it is. `None` means the caller opens the state and calls
/// [`run`].
pub fn run_without_state(command: &Command, config: &Config) -> Option<anyhow::Result<()>> {
    match command {
        Command::Tls(tls) => Some(run_tls(tls)),
        Command::Backup(args) => Some(run_backup(&config.database_url, args)),
        Command::Users(_)
        | Command::Apps(_)
        | Command::Keys(_)
        | Command::Tokens(_)
        | Command::Migrate(_) => None,
    }
}

/// `backup --to FILE`: prints the file and its size.
fn run_backup(database_url: &str, args: &BackupArgs) -> anyhow::Result<()> {
    let written = crate::db::backup::backup(database_url, &args.to)?;
    if args.json.json {
        // As text: `json!` would panic on a path that is not UTF-8.
        let (database, backup) = (written.database.display(), written.path.display());
        println!(
            "{}",
            json!({"database": database.to_string(), "backup": backup.to_string(), "bytes": written.bytes})
        );
    } else {
        println!(
            "Backed up {} to {} ({} bytes).",
            written.database.display(),
            written.path.display(),
            written.bytes
        );
    }
    Ok(())
}

fn run_tls(command: &TlsCommand) -> anyhow::Result<()> {
    let TlsCommand::Init {
        out,
        hosts,
        force,
        days,
        json: flag,
    } = command;
    let request = TlsInitRequest {
        dir: out.clone(),
        hosts: hosts.clone(),
        force: *force,
        days: *days,
    };
    let written = tls_init::init(&request, time::OffsetDateTime::now_utc())?;
    if flag.json {
        println!("{}", written.to_json());
    } else {
        println!("{written}");
    }
    Ok(())
}

/// Runs one operator command against the state's database.
pub async fn run(state: &AppState, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate(flag) => {
            // Opening the state already applied every pending migration.
            if flag.json {
                println!("{}", json!({"migrated": true}));
            } else {
                println!("The database schema is up to date.");
            }
            Ok(())
        }
        Command::Users(command) => users::run(state, command).await,
        Command::Apps(command) => apps::run(state, command).await,
        // Callers run these through `run_without_state`; they are here so that `run` takes
        // every command.
        Command::Tls(command) => run_tls(&command),
        Command::Backup(args) => run_backup(&state.config.database_url, &args),
        Command::Tokens(TokensCommand::Cleanup(flag)) => cleanup(state, flag.json).await,
        Command::Keys(command) => keys::run(state, command).await,
    }
}

/// `tokens cleanup`: removes rows that can no longer be used (`housekeeping`).
async fn cleanup(state: &AppState, json: bool) -> anyhow::Result<()> {
    let report = crate::housekeeping::run(state).await?;
    if json {
        println!("{}", report.to_json());
    } else if report.is_empty() {
        println!("Nothing to remove.");
    } else {
        println!("{report}.");
    }
    Ok(())
}
