//! Building and running auth-web: `AuthWebApp::build(config)` binds the listener (port 0
//! works) and prepares the gRPC clients; `run()` serves until the handle stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use doorward_shared::config::Config;

use crate::client_ip::TrustedProxies;
use crate::error::OAuthError;
use crate::page_error::log_page_errors;
use crate::routes;
use crate::session;
use crate::state::WebState;
use crate::upstream::UpstreamConfig;
use doorward_shared::SystemClock;
use doorward_shared::clock::SharedClock;
use doorward_shared::metrics::MonitoringIps;

/// HSTS on every response of a TLS listener: one year.
pub const HSTS: &str = "max-age=31536000";

/// The TLS configuration of the listener, if `[web_tls]` is set (re-read when its files
/// change; a bad file stops the start).
fn web_tls(config: &Config) -> anyhow::Result<Option<rustls::ServerConfig>> {
    let Some(tls) = &config.web_tls else {
        return Ok(None);
    };
    let server = doorward_shared::tls::server_config(
        &tls.cert_file,
        &tls.key_file,
        None,
        doorward_shared::tls::ALPN_WEB,
    )
    .context("web_tls")?;
    Ok(Some(server.as_ref().clone()))
}

/// auth-web, bound and ready to run.
pub struct AuthWebApp {
    server: Server,
    addr: SocketAddr,
}

impl AuthWebApp {
    /// Binds `config.auth_web_addr` and builds the server (nothing is served until `run`).
    pub fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock))
    }

    /// `build` with an injected clock (tests).
    pub fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(&config.auth_web_addr)
            .with_context(|| format!("could not listen on {}", config.auth_web_addr))?;
        Self::build_on(listener, config, clock)
    }

    /// `build_with_clock` on a listener bound beforehand (tests that need the address in
    /// the configuration, such as an issuer on a free port).
    pub fn build_on(
        listener: std::net::TcpListener,
        config: Config,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let session_key = match &config.web.session_key {
            Some(secret) => session::parse_key(secret).map_err(anyhow::Error::msg)?,
            None => {
                tracing::warn!(
                    "no web.session_key configured: sessions use a throwaway key and end when auth-web restarts"
                );
                session::parse_key(&doorward_shared::Secret::new(session::generate_key()))
                    .map_err(anyhow::Error::msg)?
            }
        };
        let addr = listener.local_addr()?;
        let workers = config
            .web
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let upstream = UpstreamConfig::new(&config)?;
        let proxies = TrustedProxies::new(&config.web.trusted_proxies);
        let monitoring = MonitoringIps::parse(&config.web.monitoring_ips)?;
        let tls = web_tls(&config)?;
        let hsts = tls.is_some();
        let config = Arc::new(config);
        let session_config = config.clone();
        let server = HttpServer::new(move || {
            // Built on each worker's thread: see `UpstreamConfig::connect`.
            let state = web::Data::new(WebState::new(
                upstream.connect(),
                config.clone(),
                proxies.clone(),
                clock.clone(),
                monitoring.clone(),
            ));
            let mut headers = DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "no-referrer"))
                // Pages set their own policy; everything else (404s, JSON) gets the
                // strictest one (SEC-SC-06).
                .add(("Content-Security-Policy", crate::pages::STRICT_CSP));
            if hsts {
                // RFC 6797: browsers that saw it never try this host in plaintext again.
                headers = headers.add(("Strict-Transport-Security", HSTS));
            }
            App::new()
                .app_data(state.clone())
                // Query-string and form errors in the protocol's JSON form, never actix's text.
                .app_data(web::QueryConfig::default().error_handler(|_, _| {
                    OAuthError::invalid_request("The query string is malformed.").into()
                }))
                // Innermost, so that it sees the handler's own error before anything else.
                .wrap(from_fn(log_page_errors))
                .wrap(headers)
                .wrap(session::middleware(&session_config, session_key.clone()))
                // Outermost: it times everything and sees the final status.
                .wrap(from_fn(crate::observe::observe))
                .configure(routes::configure)
        })
        .workers(workers)
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(30))
        .disable_signals()
        .shutdown_timeout(5);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Self { server, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
