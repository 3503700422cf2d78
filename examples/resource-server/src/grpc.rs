//! Online validation: one `doorward.v1.TokenValidation/Validate` call per request.
//!
//! Doorward answers from its database, so a revoked token is refused within the bound
//! Doorward documents for `Validate` (a few seconds), not only when it expires. The call
//! goes over plaintext gRPC for an `http://` URL and over TLS, verified against the
//! operator's CA, for an `https://` one.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use doorward_proto::v1 as pb;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::Principal;
use crate::bearer::Refusal;
use crate::token_service_tls::TokenServiceTls;

/// Adds `authorization: Basic base64(client_id:client_secret)` (this resource server's own
/// application) to every call.
#[derive(Clone)]
struct ClientCredentials(MetadataValue<Ascii>);

impl tonic::service::Interceptor for ClientCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = pb::token_validation_client::TokenValidationClient<
    InterceptedService<Channel, ClientCredentials>,
>;

/// The causes under a transport failure ("invalid peer certificate: UnknownIssuer"), which
/// `Status` alone reduces to "transport error".
fn causes(status: &Status) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        let cause = error.to_string();
        // An `io::Error` around a TLS error prints the same text as the error it wraps.
        if causes.last() != Some(&cause) {
            causes.push(cause);
        }
        source = error.source();
    }
    causes.join(": ")
}

/// A `TokenValidation` client over one lazily connected channel.
pub struct GrpcValidator {
    client: Client,
    required_scopes: Vec<String>,
    deadline: Duration,
}

impl GrpcValidator {
    /// A validator over plaintext gRPC (an `http://` URL); see [`GrpcValidator::with_tls`].
    pub fn new(
        token_service: &str,
        client_id: &str,
        client_secret: &str,
        required_scopes: Vec<String>,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        Self::with_tls(
            token_service,
            &TokenServiceTls::default(),
            client_id,
            client_secret,
            required_scopes,
            deadline,
        )
    }

    /// No connection is made yet: the resource server starts before (or without) Doorward
    /// and the channel reconnects by itself. The TLS files are read now, though. An
    /// `https://` URL needs `tls.ca_file`; a TLS file with any other URL is an error, never
    /// a quiet fall back to plaintext. Must run inside a tokio runtime.
    pub fn with_tls(
        token_service: &str,
        tls: &TokenServiceTls,
        client_id: &str,
        client_secret: &str,
        required_scopes: Vec<String>,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        if client_id.is_empty() || client_secret.is_empty() {
            anyhow::bail!(
                "grpc mode needs this resource server's application credentials: \
                 --client-id and RESOURCE_SERVER_CLIENT_SECRET"
            );
        }
        let mut endpoint = Endpoint::from_shared(token_service.to_owned())
            .map_err(|_| anyhow::anyhow!("--token-service {token_service:?} is not a valid URL"))?
            .connect_timeout(deadline.min(Duration::from_secs(1)))
            .timeout(deadline)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        if endpoint.uri().scheme_str() == Some("https") {
            endpoint = endpoint
                .tls_config(tls.client_config(token_service)?)
                .context("the TLS files for token-service are not usable")?;
        } else if !tls.is_empty() {
            anyhow::bail!(
                "--token-service-ca-file, --token-service-cert-file or --token-service-key-file \
                 (DOORWARD_TOKEN_SERVICE_TLS__*) is set but the token-service URL \
                 {token_service:?} is not https://HOST:PORT"
            );
        }
        let channel = endpoint.connect_lazy();
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{client_id}:{client_secret}"));
        let value: MetadataValue<Ascii> = format!("Basic {credentials}")
            .parse()
            .map_err(|_| anyhow::anyhow!("the client credentials do not fit in metadata"))?;
        Ok(Self {
            client: Client::new(InterceptedService::new(channel, ClientCredentials(value))),
            required_scopes,
            deadline,
        })
    }

    /// Asks Doorward about `token`.
    pub async fn validate(&self, token: &str) -> Result<Principal, Refusal> {
        let mut request = Request::new(pb::ValidateRequest {
            token: token.to_owned(),
            required_scopes: self.required_scopes.clone(),
        });
        // Sent as `grpc-timeout`, so Doorward stops working on it too.
        request.set_timeout(self.deadline);
        // Never log `request` or the token: generated messages print their fields.
        match self.client.clone().validate(request).await {
            Ok(response) => self.interpret(response.into_inner()),
            Err(status) => {
                match status.code() {
                    Code::Unauthenticated => tracing::error!(
                        "token-service refused this resource server's credentials; check \
                         --client-id and RESOURCE_SERVER_CLIENT_SECRET"
                    ),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                        // The cause tells a wrong CA or hostname apart from a down server.
                        tracing::warn!(
                            code = ?status.code(),
                            cause = %causes(&status),
                            "token-service is unreachable"
                        )
                    }
                    code => tracing::error!(?code, "TokenValidation.Validate failed"),
                }
                Err(Refusal::Unavailable)
            }
        }
    }

    fn interpret(&self, response: pb::ValidateResponse) -> Result<Principal, Refusal> {
        if response.active {
            return Ok(Principal {
                sub: response.subject,
                client_id: response.client_id,
                scopes: response.scopes,
                expires_at: response.expires_at,
            });
        }
        match response.inactive_reason.as_str() {
            "insufficient_scope" => Err(Refusal::InsufficientScope(self.required_scopes.join(" "))),
            // "invalid", "expired", "revoked", and any reason added later.
            reason => {
                tracing::debug!(reason, "token refused by token-service");
                Err(Refusal::InvalidToken)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a stand-in `TokenValidation` server that follows the documented contract, so
    //! the client side (metadata, deadline, mapping of answers) is checked on its own.

    use std::net::SocketAddr;

    use pb::token_validation_server::{TokenValidation, TokenValidationServer};
    use tonic::Response;
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};

    use super::*;
    use crate::test_tls::TestPki;

    struct StandIn;

    #[tonic::async_trait]
    impl TokenValidation for StandIn {
        async fn validate(
            &self,
            request: Request<pb::ValidateRequest>,
        ) -> Result<Response<pb::ValidateResponse>, Status> {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("rs-id:rs-secret")
            );
            if request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                != Some(expected.as_str())
            {
                return Err(Status::unauthenticated("client authentication failed"));
            }
            let request = request.into_inner();
            assert_eq!(request.required_scopes, vec!["read_user".to_owned()]);
            let inactive = |reason: &str| pb::ValidateResponse {
                inactive_reason: reason.into(),
                ..Default::default()
            };
            let response = match request.token.as_str() {
                "good" => pb::ValidateResponse {
                    active: true,
                    subject: "42".into(),
                    client_id: "app".into(),
                    scopes: vec!["read_user".into()],
                    expires_at: 2_000_000_000,
                    issued_at: 1_999_992_800,
                    user_id: Some(42),
                    inactive_reason: String::new(),
                },
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    inactive("invalid")
                }
                "broken" => return Err(Status::internal("database down")),
                "noscope" => inactive("insufficient_scope"),
                "expired" => inactive("expired"),
                "revoked" => inactive("revoked"),
                _ => inactive("invalid"),
            };
            Ok(Response::new(response))
        }
    }

    async fn stand_in() -> SocketAddr {
        serve(tonic::transport::Server::builder()).await
    }

    /// The stand-in over TLS with `pki`'s server certificate; with `client_ca`, clients must
    /// present a certificate it issued.
    async fn stand_in_tls(pki: &TestPki, client_ca: Option<&TestPki>) -> SocketAddr {
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
            pki.read("server.pem"),
            pki.read("server-key.pem"),
        ));
        if let Some(client_ca) = client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(client_ca.read("ca.pem")));
        }
        serve(tonic::transport::Server::builder().tls_config(tls).unwrap()).await
    }

    async fn serve(mut builder: tonic::transport::Server) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            builder
                .add_service(TokenValidationServer::new(StandIn))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    /// TLS settings trusting `pki`'s CA, presenting its client certificate if `client`.
    fn tls(pki: &TestPki, client: bool) -> TokenServiceTls {
        TokenServiceTls {
            ca_file: Some(pki.path("ca.pem")),
            cert_file: client.then(|| pki.path("client.pem")),
            key_file: client.then(|| pki.path("client-key.pem")),
        }
    }

    fn tls_validator(url: &str, tls: &TokenServiceTls) -> anyhow::Result<GrpcValidator> {
        GrpcValidator::with_tls(
            url,
            tls,
            "rs-id",
            "rs-secret",
            vec!["read_user".into()],
            Duration::from_millis(500),
        )
    }

    fn validator(url: &str, secret: &str) -> GrpcValidator {
        GrpcValidator::new(
            url,
            "rs-id",
            secret,
            vec!["read_user".into()],
            Duration::from_millis(500),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn answers_map_to_principals_and_refusals() {
        let url = format!("http://{}", stand_in().await);
        let v = validator(&url, "rs-secret");
        assert_eq!(
            v.validate("good").await.unwrap(),
            Principal {
                sub: "42".into(),
                client_id: "app".into(),
                scopes: vec!["read_user".into()],
                expires_at: 2_000_000_000,
            }
        );
        assert_eq!(
            v.validate("noscope").await.unwrap_err(),
            Refusal::InsufficientScope("read_user".into())
        );
        for token in ["expired", "revoked", "junk"] {
            assert_eq!(v.validate(token).await.unwrap_err(), Refusal::InvalidToken);
        }
        assert_eq!(
            v.validate("broken").await.unwrap_err(),
            Refusal::Unavailable
        );
        let started = std::time::Instant::now();
        assert_eq!(v.validate("slow").await.unwrap_err(), Refusal::Unavailable);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn refused_credentials_and_no_server_are_unavailable() {
        let url = format!("http://{}", stand_in().await);
        assert_eq!(
            validator(&url, "wrong").validate("good").await.unwrap_err(),
            Refusal::Unavailable
        );
        assert_eq!(
            validator("http://127.0.0.1:9", "rs-secret")
                .validate("good")
                .await
                .unwrap_err(),
            Refusal::Unavailable
        );
    }

    #[tokio::test]
    async fn credentials_are_required_in_grpc_mode() {
        let no_secret = GrpcValidator::new(
            "http://127.0.0.1:9",
            "rs-id",
            "",
            vec![],
            Duration::from_secs(1),
        );
        assert!(no_secret.is_err());
        let bad_url = GrpcValidator::new("not a url", "a", "b", vec![], Duration::from_secs(1));
        assert!(bad_url.is_err());
    }

    #[tokio::test]
    async fn over_https_the_server_is_verified_against_the_configured_ca() {
        let pki = TestPki::new();
        let url = format!("https://{}", stand_in_tls(&pki, None).await);
        let trusting = tls_validator(&url, &tls(&pki, false)).unwrap();
        assert_eq!(trusting.validate("good").await.unwrap().sub, "42");
        assert_eq!(
            trusting.validate("revoked").await.unwrap_err(),
            Refusal::InvalidToken
        );

        // A certificate from another CA is refused like an unreachable token-service.
        let other = TestPki::new();
        let distrusting = tls_validator(&url, &tls(&other, false)).unwrap();
        assert_eq!(
            distrusting.validate("good").await.unwrap_err(),
            Refusal::Unavailable
        );
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_when_configured() {
        let pki = TestPki::new();
        let url = format!("https://{}", stand_in_tls(&pki, Some(&pki)).await);
        let with_certificate = tls_validator(&url, &tls(&pki, true)).unwrap();
        assert_eq!(with_certificate.validate("good").await.unwrap().sub, "42");
        let without = tls_validator(&url, &tls(&pki, false)).unwrap();
        assert_eq!(
            without.validate("good").await.unwrap_err(),
            Refusal::Unavailable
        );
    }

    #[tokio::test]
    async fn tls_settings_that_do_not_fit_the_url_are_refused_at_start() {
        let pki = TestPki::new();
        let message = |result: anyhow::Result<GrpcValidator>| match result {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        };

        // https without a CA: the message names the option and its variable.
        let no_ca = message(tls_validator(
            "https://127.0.0.1:9",
            &TokenServiceTls::default(),
        ));
        assert!(no_ca.contains("--token-service-ca-file"), "{no_ca}");
        assert!(
            no_ca.contains("DOORWARD_TOKEN_SERVICE_TLS__CA_FILE"),
            "{no_ca}"
        );

        // A TLS file with an http URL: never a quiet plaintext connection.
        for settings in [tls(&pki, false), tls(&pki, true)] {
            let plaintext = message(tls_validator("http://127.0.0.1:9", &settings));
            assert!(plaintext.contains("is not https://"), "{plaintext}");
        }

        // A certificate without its key, or the other way round.
        for (cert_file, key_file) in [
            (Some(pki.path("client.pem")), None),
            (None, Some(pki.path("client-key.pem"))),
        ] {
            let half = TokenServiceTls {
                cert_file,
                key_file,
                ..tls(&pki, false)
            };
            let half = message(tls_validator("https://127.0.0.1:9", &half));
            assert!(half.contains("go together"), "{half}");
        }

        // Files that are missing, or not certificates, are named.
        let missing = TokenServiceTls {
            ca_file: Some(pki.path("nowhere.pem")),
            ..Default::default()
        };
        let missing = message(tls_validator("https://127.0.0.1:9", &missing));
        assert!(missing.contains("nowhere.pem"), "{missing}");
        let not_a_ca = TokenServiceTls {
            ca_file: Some(pki.path("server.ext")),
            ..Default::default()
        };
        let not_a_ca = message(tls_validator("https://127.0.0.1:9", &not_a_ca));
        assert!(not_a_ca.contains("server.ext"), "{not_a_ca}");
        let missing_key = TokenServiceTls {
            key_file: Some(pki.path("nokey.pem")),
            ..tls(&pki, true)
        };
        let missing_key = message(tls_validator("https://127.0.0.1:9", &missing_key));
        assert!(missing_key.contains("nokey.pem"), "{missing_key}");
    }
}
