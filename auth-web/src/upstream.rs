//! The gRPC clients auth-web uses to reach token-service. The channel connects lazily and
//! reconnects by itself, so auth-web starts before token-service and recovers when it
//! returns; every call has a deadline (SEC-DS-05). The link is a Unix socket
//! (`unix:PATH`), plain TCP (`http://`), or TLS (`https://` with `[token_service_tls]`,
//! and a client certificate for mTLS); TLS files are re-read when they change.

use std::sync::Arc;
use std::time::Duration;

use doorward_proto::v1 as pb;
use doorward_shared::Secret;
use doorward_shared::config::Config;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::upstream_timing::Timed;

/// Adds `authorization: Bearer <service token>` when one is configured, and the request id
/// of the HTTP request the call is made for (`x-request-id`), so that token-service logs
/// under the same id.
#[derive(Clone)]
pub struct CallMetadata(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for CallMetadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(id) = crate::observe::current_request_id()
            && let Ok(mut value) = id.as_str().parse::<MetadataValue<tonic::metadata::Ascii>>()
        {
            // Never indexed by HPACK: a value that changes on every call would only push
            // the headers that repeat (authorization, content-type) out of its table.
            value.set_sensitive(true);
            request
                .metadata_mut()
                .insert(doorward_shared::request_id::HEADER, value);
        }
        Ok(request)
    }
}

type Svc = InterceptedService<Timed<Channel>, CallMetadata>;

/// Clients of every token-service API auth-web calls.
#[derive(Clone)]
pub struct Upstream {
    /// `doorward.v1.TokenService`.
    pub tokens: pb::token_service_client::TokenServiceClient<Svc>,
    /// `doorward.v1.Users`.
    pub users: pb::users_client::UsersClient<Svc>,
    /// `doorward.v1.Applications`.
    pub applications: pb::applications_client::ApplicationsClient<Svc>,
    /// `doorward.v1.Authorizations`.
    pub authorizations: pb::authorizations_client::AuthorizationsClient<Svc>,
    /// `doorward.v1.DeviceAuthorizations`.
    pub devices: pb::device_authorizations_client::DeviceAuthorizationsClient<Svc>,
    /// `grpc.health.v1.Health` (readiness).
    pub health: tonic_health::pb::health_client::HealthClient<Svc>,
}

/// A bad `TOKEN_SERVICE_URL` or service token.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Not a URL tonic accepts.
    #[error("TOKEN_SERVICE_URL is not a valid URL: {0}")]
    Url(#[from] tonic::transport::Error),
    /// Not printable ASCII.
    #[error("SERVICE_TOKEN must be printable ASCII")]
    Token,
    /// `unix:` with no path.
    #[error(
        "TOKEN_SERVICE_URL=unix: needs the socket's path (unix:/run/doorward/token-service.sock)"
    )]
    Socket,
    /// `https://` without a host, or `[token_service_tls]` missing.
    #[error(
        "TOKEN_SERVICE_URL {0:?}: https takes https://HOST:PORT (no path) and needs [token_service_tls] ca_file"
    )]
    Https(String),
    /// A certificate, key or CA file that cannot be used.
    #[error("token_service_tls: {0}")]
    Tls(#[from] doorward_shared::tls::TlsError),
}

/// How auth-web reaches token-service.
#[derive(Clone)]
enum Link {
    /// `http://HOST:PORT`.
    Tcp,
    /// `unix:PATH`: token-service's Unix socket on this host.
    Socket(std::path::PathBuf),
    /// `https://HOST:PORT`: TLS to `server_name`, verified against the configured CA.
    Tls {
        /// `HOST:PORT`.
        address: String,
        /// The name the certificate must carry.
        server_name: rustls::pki_types::ServerName<'static>,
        /// CA, client certificate, ALPN h2.
        config: Arc<rustls::ClientConfig>,
    },
}

/// The link that `url` names (checked once, at start).
fn link(config: &Config) -> Result<(Link, String), UpstreamError> {
    let url = &config.token_service_url;
    if let Some(path) = url.strip_prefix("unix:") {
        let path = std::path::PathBuf::from(path.trim_start_matches("//"));
        if path.as_os_str().is_empty() {
            return Err(UpstreamError::Socket);
        }
        // Over the socket the URL only names the HTTP/2 authority.
        return Ok((Link::Socket(path), "http://token-service".to_owned()));
    }
    if !url.starts_with("https://") {
        return Ok((Link::Tcp, url.clone()));
    }
    let https = || UpstreamError::Https(url.clone());
    let tls = config.token_service_tls.as_ref().ok_or_else(https)?;
    let parsed = url::Url::parse(url).map_err(|_| https())?;
    // Only scheme, host and port: a path, a query or credentials would be silently dropped.
    if !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some()
        || !parsed.username().is_empty()
    {
        return Err(https());
    }
    let port = parsed.port_or_known_default().ok_or_else(https)?;
    let host = match parsed.host().ok_or_else(https)? {
        url::Host::Domain(name) => name.to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    let address = match parsed.host().ok_or_else(https)? {
        url::Host::Ipv6(ip) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let server_name = rustls::pki_types::ServerName::try_from(host).map_err(|_| https())?;
    let client = doorward_shared::tls::client_config(
        &tls.ca_file,
        tls.identity(),
        doorward_shared::tls::ALPN_H2,
    )?;
    // TLS is done by `connect`'s connector; tonic sees a plain authority.
    let authority = format!("http://{address}");
    Ok((
        Link::Tls {
            address,
            server_name,
            config: client,
        },
        authority,
    ))
}

/// What `Upstream` is made from: the endpoint and the service token, checked once.
///
/// Each actix worker connects its own clients (`connect`), so that a worker's gRPC calls
/// run on its own thread: a channel made once and shared would run its connection on the
/// thread that made it, and every token request would cross threads twice more.
#[derive(Clone)]
pub struct UpstreamConfig {
    endpoint: Endpoint,
    link: Link,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl UpstreamConfig {
    /// Checks `config.token_service_url` and the service token; no connection is made.
    pub fn new(config: &Config) -> Result<Self, UpstreamError> {
        let deadline = Duration::from_millis(config.web.grpc_timeout_ms);
        let (link, url) = link(config)?;
        let endpoint = Endpoint::from_shared(url)?
            .connect_timeout(Duration::from_secs(1).min(deadline))
            .timeout(deadline)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        let token = match &config.service_token {
            Some(secret) => Some(bearer(secret)?),
            None => None,
        };
        Ok(Self {
            endpoint,
            link,
            token,
        })
    }

    /// Clients on a channel of the calling thread's runtime; it connects on first use.
    pub fn connect(&self) -> Upstream {
        let channel = match &self.link {
            Link::Tcp => self.endpoint.connect_lazy(),
            Link::Socket(path) => {
                let path = path.clone();
                self.endpoint.connect_with_connector_lazy(tower::service_fn(
                    move |_: tonic::codegen::http::Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                        }
                    },
                ))
            }
            Link::Tls {
                address,
                server_name,
                config,
            } => {
                let (address, name) = (address.clone(), server_name.clone());
                let tls = tokio_rustls::TlsConnector::from(config.clone());
                self.endpoint.connect_with_connector_lazy(tower::service_fn(
                    move |_: tonic::codegen::http::Uri| {
                        let (address, name, tls) = (address.clone(), name.clone(), tls.clone());
                        async move {
                            let tcp = tokio::net::TcpStream::connect(&address).await?;
                            tcp.set_nodelay(true)?;
                            let stream = tls.connect(name, tcp).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                        }
                    },
                ))
            }
        };
        let svc = InterceptedService::new(Timed::new(channel), CallMetadata(self.token.clone()));
        Upstream {
            tokens: pb::token_service_client::TokenServiceClient::new(svc.clone()),
            users: pb::users_client::UsersClient::new(svc.clone()),
            applications: pb::applications_client::ApplicationsClient::new(svc.clone()),
            authorizations: pb::authorizations_client::AuthorizationsClient::new(svc.clone()),
            devices: pb::device_authorizations_client::DeviceAuthorizationsClient::new(svc.clone()),
            health: tonic_health::pb::health_client::HealthClient::new(svc),
        }
    }
}

fn bearer(secret: &Secret) -> Result<MetadataValue<tonic::metadata::Ascii>, UpstreamError> {
    format!("Bearer {}", secret.expose())
        .parse()
        .map_err(|_| UpstreamError::Token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        Config {
            token_service_url: url.to_owned(),
            ..Config::default()
        }
    }

    #[test]
    fn token_service_url_takes_tcp_and_unix_socket_forms() {
        let tcp = UpstreamConfig::new(&config("http://127.0.0.1:50051")).unwrap();
        assert!(matches!(tcp.link, Link::Tcp));
        for url in [
            "unix:/run/doorward/token-service.sock",
            "unix:///run/doorward/token-service.sock",
        ] {
            let unix = UpstreamConfig::new(&config(url)).unwrap();
            assert!(
                matches!(&unix.link, Link::Socket(path) if path == std::path::Path::new("/run/doorward/token-service.sock")),
                "{url}"
            );
        }
        assert!(matches!(
            UpstreamConfig::new(&config("unix:")),
            Err(UpstreamError::Socket)
        ));
        assert!(matches!(
            UpstreamConfig::new(&config("not a url")),
            Err(UpstreamError::Url(_))
        ));
        assert!(matches!(
            UpstreamConfig::new(&config("https://127.0.0.1:50051")),
            Err(UpstreamError::Https(_))
        ));
        let mut tls = config("https://127.0.0.1:50051/some/path");
        tls.token_service_tls = Some(doorward_shared::config::TokenServiceTlsConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            cert_file: None,
            key_file: None,
        });
        assert!(
            matches!(UpstreamConfig::new(&tls), Err(UpstreamError::Https(_))),
            "a path in TOKEN_SERVICE_URL is refused, not dropped"
        );
    }
}
