//! The operator CLI (ARCHITECTURE.md, "Contracts"), shared by the `token-service` binary and the
//! all-in-one `doorward` binary. It works on the database directly; `--json` makes every
//! command machine-readable. Errors are one line on stderr and a non-zero exit.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use doorward_shared::Secret;
use doorward_shared::secret::random_token;

use crate::accounts::{self, CreateError, NewAccount};
use crate::apps::{self, ApplicationFields, SaveError};
use crate::db;
use crate::db::models::ApplicationRow;
use crate::error::ServiceError;
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
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// A redirect URI (repeatable).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Space-separated scopes the application may ask for.
        #[arg(long, default_value = "api")]
        scopes: String,
        /// A public client (no secret; must use PKCE).
        #[arg(long)]
        public: bool,
        /// Trusted: skips the consent screen.
        #[arg(long)]
        trusted: bool,
        /// Space-separated grant types the application may use (default: all that its kind
        /// allows: authorization_code refresh_token device_code, plus client_credentials and
        /// password for confidential applications).
        #[arg(long)]
        grant_types: Option<String>,
        /// Bar the application from the resource-owner password grant.
        #[arg(long, conflicts_with = "grant_types")]
        no_password_grant: bool,
        /// The owning user's username.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
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

fn app_json(app: &ApplicationRow) -> serde_json::Value {
    json!({
        "id": app.id,
        "uid": app.uid,
        "name": app.name,
        "redirect_uris": apps::redirect_uris(app),
        "scopes": app.scopes,
        "confidential": app.confidential,
        "trusted": app.trusted,
        "grant_types": app.grant_types.split_whitespace().collect::<Vec<_>>(),
        "owner_id": app.owner_id,
        "created_at": app.created_at,
    })
}

fn print_app(app: &ApplicationRow, secret: Option<&Secret>, json: bool) {
    if json {
        let mut value = app_json(app);
        if let Some(secret) = secret {
            value["secret"] = json!(secret.expose());
        }
        println!("{value}");
        return;
    }
    println!("Application: {}", app.name);
    println!("  client_id (uid): {}", app.uid);
    if let Some(secret) = secret {
        println!(
            "  secret:          {}   (shown once; store it now)",
            secret.expose()
        );
    }
    println!("  confidential:    {}", app.confidential);
    println!("  trusted:         {}", app.trusted);
    println!("  grant types:     {}", app.grant_types);
    println!("  scopes:          {}", app.scopes);
    for uri in apps::redirect_uris(app) {
        println!("  redirect_uri:    {uri}");
    }
}

fn field_errors(errors: &[accounts::FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `command` if it needs no database (`tls ...`, which an operator runs before one
/// exists); `None` means it does, and the caller opens the state and calls [`run`].
pub fn run_without_database(command: &Command) -> Option<anyhow::Result<()>> {
    match command {
        Command::Tls(tls) => Some(run_tls(tls)),
        Command::Users(_)
        | Command::Apps(_)
        | Command::Keys(_)
        | Command::Tokens(_)
        | Command::Migrate(_) => None,
    }
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
        }
        Command::Users(UsersCommand::Create {
            username,
            email,
            name,
            password_stdin,
            admin,
            json: flag,
        }) => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("could not read the password from standard input")?;
                (Secret::new(line.trim_end_matches(['\r', '\n'])), false)
            } else {
                (random_token(), true)
            };
            let account = NewAccount {
                username,
                email,
                name,
                password: password.clone(),
                admin,
            };
            let user = match accounts::create(state, account).await {
                Ok(user) => user,
                Err(CreateError::Invalid(errors)) => {
                    bail!("invalid user: {}", field_errors(&errors))
                }
                Err(CreateError::Service(e)) => return Err(e.into()),
            };
            if flag.json {
                let mut value = json!({
                    "id": user.id, "username": user.username, "email": user.email,
                    "name": user.name, "admin": user.admin,
                });
                if generated {
                    value["password"] = json!(password.expose());
                }
                println!("{value}");
            } else {
                println!("Created user {} (id {}).", user.username, user.id);
                if generated {
                    println!("Password (shown once): {}", password.expose());
                }
            }
        }
        Command::Apps(command) => run_apps(state, command).await?,
        // Callers run it through `run_without_database`; it is here so that `run` takes
        // every command.
        Command::Tls(command) => run_tls(&command)?,
        Command::Tokens(TokensCommand::Cleanup(flag)) => {
            let report = crate::housekeeping::run(state).await?;
            if flag.json {
                println!("{}", report.to_json());
            } else if report.is_empty() {
                println!("Nothing to remove.");
            } else {
                println!("{report}.");
            }
        }
        Command::Keys(KeysCommand::Rotate { purpose, json }) => {
            let now = state.now();
            let ahead = state.keys.times().publish_ahead;
            let purposes: Vec<&'static str> = crate::keys::PURPOSES
                .into_iter()
                .filter(|p| purpose.as_deref().is_none_or(|wanted| wanted == *p))
                .collect();
            let rows = state
                .db(move |conn| {
                    Ok::<_, ServiceError>(crate::keys::rotate(conn, &purposes, ahead, now)?)
                })
                .await?;
            if json {
                let keys: Vec<_> = rows
                    .iter()
                    .map(|k| json!({"kid": k.kid, "algorithm": k.algorithm, "purpose": k.purpose, "signs_from": now + ahead}))
                    .collect();
                println!("{}", json!({"keys": keys}));
            } else {
                for k in rows {
                    println!(
                        "New {} key {} ({}) is published and signs in {ahead} s.",
                        k.purpose, k.kid, k.algorithm
                    );
                }
            }
        }
        Command::Keys(KeysCommand::Revoke { kid, json }) => {
            let now = state.now();
            let revoked = kid.clone();
            let replacement = state
                .db(move |conn| Ok::<_, ServiceError>(crate::keys::revoke(conn, &revoked, now)?))
                .await?;
            if json {
                println!(
                    "{}",
                    json!({"revoked": kid, "replacement": replacement.as_ref().map(|k| &k.kid)})
                );
            } else {
                println!("Key {kid} is revoked.");
                if let Some(k) = replacement {
                    println!("New {} key {} signs from now on.", k.purpose, k.kid);
                }
            }
        }
        Command::Keys(KeysCommand::List(flag)) => {
            let now = state.now();
            let times = state.keys.times();
            let keys = state
                .db(|conn| Ok::<_, ServiceError>(db::signing_keys::list(conn)?))
                .await?;
            let states = crate::keys::key_states(&keys, now, times);
            if flag.json {
                let list: Vec<_> = keys
                    .iter()
                    .zip(&states)
                    .map(|(k, s)| {
                        json!({"kid": k.kid, "algorithm": k.algorithm, "purpose": k.purpose,
                               "created_at": k.created_at, "retired_at": k.retired_at,
                               "revoked_at": k.revoked_at, "state": s.as_str()})
                    })
                    .collect();
                println!("{}", json!(list));
            } else {
                for (k, s) in keys.iter().zip(&states) {
                    println!("{}  {}  {}  {}", k.kid, k.algorithm, k.purpose, s.as_str());
                }
            }
        }
    }
    Ok(())
}

async fn run_apps(state: &AppState, command: AppsCommand) -> anyhow::Result<()> {
    let now = state.now();
    match command {
        AppsCommand::Create {
            name,
            redirect_uris,
            scopes,
            public,
            trusted,
            grant_types,
            no_password_grant,
            owner,
            json: flag,
        } => {
            let result = state
                .db(move |conn| {
                    let owner_id = match owner {
                        Some(login) => match db::users::find_by_login(conn, &login)? {
                            Some(user) => Some(user.id),
                            None => return Ok(Err(format!("no user named {login:?}"))),
                        },
                        None => None,
                    };
                    let fields = ApplicationFields {
                        name,
                        redirect_uris,
                        scopes: vec![scopes],
                        confidential: !public,
                        trusted,
                        grant_types: match (grant_types, no_password_grant) {
                            (Some(named), _) => vec![named],
                            (None, true) => apps::default_grant_types(!public)
                                .into_iter()
                                .filter(|g| g != "password")
                                .collect(),
                            (None, false) => Vec::new(),
                        },
                        owner_id,
                    };
                    match apps::create(conn, &fields, now) {
                        Ok(created) => Ok(Ok(created)),
                        Err(SaveError::Invalid(errors)) => Ok(Err(format!(
                            "invalid application: {}",
                            field_errors(&errors)
                        ))),
                        Err(SaveError::Service(e)) => Err(e),
                    }
                })
                .await?;
            match result {
                Ok((app, secret)) => print_app(&app, secret.as_ref(), flag.json),
                Err(message) => bail!(message),
            }
        }
        AppsCommand::List(flag) => {
            let list = state
                .db(|conn| Ok::<_, ServiceError>(db::applications::list(conn, None)?))
                .await?;
            if flag.json {
                println!("{}", json!(list.iter().map(app_json).collect::<Vec<_>>()));
            } else if list.is_empty() {
                println!("No applications.");
            } else {
                for app in list {
                    let kind = if app.confidential {
                        "confidential"
                    } else {
                        "public"
                    };
                    println!("{}  {}  {}  [{}]", app.uid, kind, app.name, app.scopes);
                }
            }
        }
        AppsCommand::Show { uid, json: flag } => {
            let found = state
                .db(move |conn| Ok::<_, ServiceError>(db::applications::find_by_uid(conn, &uid)?))
                .await?;
            match found {
                Some(app) => print_app(&app, None, flag.json),
                None => bail!("no application with that client id"),
            }
        }
        AppsCommand::Delete { uid, json: flag } => {
            let forgotten = uid.clone();
            let deleted = state
                .db(move |conn| Ok::<_, ServiceError>(db::applications::delete(conn, &uid)?))
                .await?;
            state.clients.forget(&forgotten);
            if deleted == 0 {
                bail!("no application with that client id");
            }
            if flag.json {
                println!("{}", json!({"deleted": true}));
            } else {
                println!("Deleted the application, its grants and its tokens.");
            }
        }
        AppsCommand::RotateSecret {
            uid,
            grace,
            json: flag,
        } => {
            let forgotten = uid.clone();
            let rotated = state
                .db(move |conn| apps::rotate_secret(conn, &uid, i64::from(grace), now))
                .await?;
            state.clients.forget(&forgotten);
            let Some(apps::RotatedSecret {
                secret,
                previous_valid_until,
            }) = rotated
            else {
                bail!("no confidential application with that client id");
            };
            if flag.json {
                println!(
                    "{}",
                    json!({
                        "secret": secret.expose(),
                        "previous_secret_valid_for": grace,
                        "previous_secret_expires_at": previous_valid_until,
                    })
                );
            } else {
                println!("New secret (shown once): {}", secret.expose());
                if grace > 0 {
                    println!("The previous secret keeps working for {grace} seconds.");
                }
            }
        }
    }
    Ok(())
}
