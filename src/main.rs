//! `doorward`: the all-in-one launcher. With no sub-command it runs token-service and
//! auth-web in one process on the embedded SQLite database (ARCHITECTURE.md, "Contracts"); with
//! one it runs the operator CLI.

/// mimalloc instead of glibc's malloc: the token path allocates many small, short-lived
/// buffers (HTTP/2 frames, JSON, SQL) across threads, where glibc's arenas cost about 8%
/// of the CPU of a token request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use auth_web::AuthWebApp;
use clap::Parser;
use doorward_shared::config::Config;
use doorward_shared::{Secret, SystemClock, telemetry};
use token_service::accounts::{self, CreateError, NewAccount};
use token_service::cli::{self, Command};
use token_service::{AppState, TokenServiceApp, open_state};

/// Doorward: an OAuth 2.0 and OpenID Connect authorization server.
#[derive(Debug, Parser)]
#[command(name = "doorward", version)]
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
    match run(args) {
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

fn run(args: Cli) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    // token-service gets a multi-threaded tokio runtime of its own; auth-web runs its
    // actix workers (one thread each) beside it, as it would in its own process.
    let runtime =
        token_service::startup::runtime(&config).context("could not start the async runtime")?;
    if let Some(command) = args.command {
        telemetry::init_for_cli("warn", config.log_format);
        if let Some(done) = cli::run_without_state(&command, &config) {
            return done;
        }
        return runtime.block_on(async {
            let state = open_state(config, Arc::new(SystemClock)).await?;
            cli::run(&state, command).await
        });
    }
    telemetry::init("info", config.log_format);
    config.log_public_url_origin();
    let (config, upstream) = in_process_link(config)?;
    let token_service = runtime.block_on(TokenServiceApp::build(
        config.clone(),
        Arc::new(SystemClock),
    ))?;
    let grpc_addr = token_service.local_addr()?;
    let upstream_url = match upstream {
        Upstream::Socket(socket) => format!("unix:{}", socket.display()),
        Upstream::Tcp => format!("http://{grpc_addr}"),
    };
    runtime.block_on(create_first_administrator(token_service.state()))?;
    let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc = runtime.spawn(token_service.run(async {
        let _ = grpc_stopped.await;
    }));
    tracing::info!(addr = %grpc_addr, "token-service listening (gRPC)");

    // auth-web reaches the token service it runs beside, and keeps its session key in the
    // data folder so that sessions survive a restart.
    let mut web_config = Config {
        token_service_url: upstream_url,
        ..config
    };
    if web_config.web.session_key.is_none() {
        web_config.web.session_key = Some(session_key_in(&web_config.data_dir)?);
    }
    actix_web::rt::System::new().block_on(async move {
        let auth_web = AuthWebApp::build(web_config.clone())?;
        let scheme = if web_config.web_tls.is_some() { "https" } else { "http" };
        tracing::info!(url = %format!("{scheme}://{}", auth_web.local_addr()), "auth-web listening");
        let handle = auth_web.handle();
        actix_web::rt::spawn(async move {
            doorward_shared::signals::shutdown_requested().await;
            tracing::info!("shutting down");
            handle.stop(true).await;
        });
        auth_web.run().await.context("auth-web failed")
    })?;
    let _ = stop_grpc.send(());
    runtime
        .block_on(grpc)
        .context("token-service task failed")??;
    Ok(())
}

/// How the in-process auth-web reaches token-service.
enum Upstream {
    Socket(PathBuf),
    Tcp,
}

/// Longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// auth-web reaches the token service beside it over a Unix socket (`token_service_socket`,
/// or `<data_dir>/token-service.sock`): the same gRPC without the loopback TCP stack, and the
/// socket's peer is an internal caller, so the TCP port needs no credentials of its own (it
/// serves resource servers). A data folder too deep for a socket path falls back to TCP,
/// proven by a service token made for this run (unless one is configured); over a TLS port
/// that fallback cannot work, and start-up says so.
fn in_process_link(mut config: Config) -> anyhow::Result<(Config, Upstream)> {
    let socket = config
        .token_service_socket
        .clone()
        .unwrap_or_else(|| config.data_dir.join("token-service.sock"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        std::fs::create_dir_all(socket.parent().unwrap_or(&config.data_dir))
            .with_context(|| format!("could not create the folder of {}", socket.display()))?;
        config.token_service_socket = Some(socket.clone());
        return Ok((config, Upstream::Socket(socket)));
    }
    if config.grpc_tls.is_some() {
        anyhow::bail!(
            "{} is too long for a Unix socket; set token_service_socket (DOORWARD_TOKEN_SERVICE_SOCKET) to a shorter path",
            socket.display()
        );
    }
    tracing::warn!(path = %socket.display(), "the socket path is too long; auth-web uses TCP with a service token of this run");
    if config.service_token.is_none() {
        config.service_token = Some(doorward_shared::secret::random_token());
    }
    Ok((config, Upstream::Tcp))
}

/// The session key kept in `<data_dir>/session.key` (mode 0600), created on first start.
fn session_key_in(data_dir: &std::path::Path) -> anyhow::Result<Secret> {
    let path = data_dir.join("session.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(Secret::new(existing.trim()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("could not create {}", data_dir.display()))?;
    let key = auth_web::session::generate_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(&path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(key.as_bytes())?;
    tracing::info!(path = %path.display(), "generated the session key");
    Ok(Secret::new(key))
}

/// On first start (no users yet) creates the administrator `root` and prints its one-time
/// password, as GitLab does.
async fn create_first_administrator(state: &AppState) -> anyhow::Result<()> {
    let any = state
        .db(|conn| {
            Ok::<_, token_service::error::ServiceError>(token_service::db::users::any_exist(conn)?)
        })
        .await?;
    if any {
        return Ok(());
    }
    let password: Secret = doorward_shared::secret::random_token();
    let account = NewAccount {
        username: "root".into(),
        email: "admin@example.com".into(),
        name: "Administrator".into(),
        password: password.clone(),
        admin: true,
    };
    match accounts::create(state, account).await {
        Ok(_) => {
            println!();
            println!("  First start: created the administrator.");
            println!("    username: root");
            println!(
                "    password: {}   (shown once; change it after signing in)",
                password.expose()
            );
            println!();
            Ok(())
        }
        Err(CreateError::Invalid(errors)) => {
            anyhow::bail!("could not create the administrator: {errors:?}")
        }
        Err(CreateError::Service(e)) => Err(e.into()),
    }
}
