//! `device-login`: signs in with the device authorization grant and prints who you are.
//! See `docs/device-login.md`.
//!
//! ```sh
//! device-login --issuer http://127.0.0.1:3000 --client-id <uid> [--scope read_user]
//! DEVICE_LOGIN_CLIENT_SECRET=dwcs-... device-login --client-id <uid>   # confidential clients
//! ```
//!
//! The instructions go to stderr; stdout gets only the user's JSON (with `--print-token`,
//! `{"token": <token response>, "user": <user>}`). Errors are one line on stderr and a
//! non-zero exit; Ctrl-C exits with 130.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use doorward_example_device_login::{CLIENT_SECRET_VAR, DeviceLogin, RealSleep, is_insecure};
use serde_json::json;

/// The command line. The client secret has no flag: see `CLIENT_SECRET_VAR`.
#[derive(Debug, Parser)]
#[command(
    name = "device-login",
    about = "Sign in to Doorward with the device authorization grant (RFC 8628) and show the user"
)]
struct Args {
    /// Doorward's issuer (its public URL); the endpoints are read from its metadata.
    #[arg(
        long,
        env = "DEVICE_LOGIN_ISSUER",
        default_value = "http://127.0.0.1:3000"
    )]
    issuer: String,
    /// The application's client id (its `uid`).
    #[arg(long, env = "DEVICE_LOGIN_CLIENT_ID")]
    client_id: String,
    /// Space-separated scopes to ask for; `/api/v4/user` needs `read_user` or `api`.
    #[arg(long, env = "DEVICE_LOGIN_SCOPE", default_value = "read_user")]
    scope: String,
    /// Also print the token response (access and refresh token) on stdout.
    #[arg(long)]
    print_token: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let secret = std::env::var(CLIENT_SECRET_VAR).ok();
    let interrupted = async {
        // If the handler cannot be installed, run without it rather than stop at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    // Dropping the login future on Ctrl-C abandons the request in flight: nothing to undo,
    // the codes expire on their own.
    tokio::select! {
        result = run(args, secret) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("device-login: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        () = interrupted => {
            eprintln!("device-login: cancelled");
            ExitCode::from(130)
        }
    }
}

async fn run(args: Args, secret: Option<String>) -> anyhow::Result<()> {
    if is_insecure(&args.issuer) {
        eprintln!(
            "warning: {} is plain http to another machine; codes and tokens cross the network readable",
            args.issuer
        );
    }
    let http = reqwest::Client::builder()
        .user_agent(concat!("doorward-device-login/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .context("the HTTP client")?;
    let login = DeviceLogin::discover(http, &args.issuer, args.client_id, secret).await?;
    let started = login.start(Some(&args.scope)).await?;

    eprintln!();
    eprintln!(
        "  Open {} and enter {}",
        started.verification_uri, started.user_code
    );
    if let Some(complete) = &started.verification_uri_complete {
        eprintln!("  (or open {complete} , which has the code filled in)");
    }
    eprintln!();
    eprintln!(
        "Waiting for you to approve (the code expires in {} minutes; Ctrl-C to give up)...",
        started.expires_in.div_ceil(60)
    );

    let tokens = login.poll_until_done(&started, &mut RealSleep).await?;
    eprintln!("Approved.");
    let user = login.current_user(&tokens.access_token).await?;
    let output = if args.print_token {
        json!({ "token": tokens, "user": user })
    } else {
        user
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
