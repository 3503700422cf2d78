//! Who is calling: decided for every `doorward.v1` RPC before its handler runs, from what
//! the connection proves (`listener::Peer`) and the `authorization` metadata. There is no
//! open mode (SEC-GB-* in `docs/security-model.md`; explained in `docs/tokens-and-security.md`,
//! "Between the services").
//!
//! - *Internal callers* (auth-web and its replicas) are a Unix-socket peer running as
//!   token-service's own user (`SO_PEERCRED`), a TLS client with a certificate from
//!   `grpc_tls.client_ca_file`, or a caller presenting `Bearer <SERVICE_TOKEN>`. They may
//!   call every service, and only their request context (client IP, user agent) counts.
//! - Anyone else may call only `TokenValidation`, which then asks for an application's
//!   credentials (`grpc::token_validation`), and gRPC health.

use doorward_shared::Secret;
use doorward_shared::secret::constant_time_eq;
use tonic::{Request, Status};

use crate::listener::{Peer, Transport};

/// The caller of one RPC, as the interceptor decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// auth-web or a replica: every service, and its request context counts.
    Internal(InternalBy),
    /// Not identified by the transport or the service token; `TokenValidation` may still
    /// authenticate it as an application.
    Outside,
}

/// What proved a caller internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalBy {
    /// The Unix socket, from token-service's own user.
    SocketPeer,
    /// A client certificate from `grpc_tls.client_ca_file`.
    ClientCertificate,
    /// `authorization: Bearer <SERVICE_TOKEN>`.
    ServiceToken,
}

impl Caller {
    /// Whether the caller is one of Doorward's own services.
    pub fn is_internal(self) -> bool {
        matches!(self, Caller::Internal(_))
    }

    /// The caller of `request`, as the interceptor recorded it (`Outside` if none did).
    pub fn of<T>(request: &Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .copied()
            .unwrap_or(Caller::Outside)
    }
}

/// Who may call a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Internal callers only; anyone else gets `UNAUTHENTICATED` before the handler.
    Internal,
    /// Anyone reaches the handler, which authenticates outside callers itself
    /// (`TokenValidation`).
    InternalOrApplication,
}

/// The interceptor in front of every `doorward.v1` service (and reflection): it records
/// the [`Caller`] in the request's extensions and refuses what the service's audience
/// does not allow.
#[derive(Clone)]
pub struct CallerCheck {
    service: &'static str,
    audience: Audience,
    service_token: Option<Secret>,
}

impl CallerCheck {
    /// The check of `service` (its full name, for the refusal's message).
    pub fn new(service: &'static str, audience: Audience, service_token: Option<Secret>) -> Self {
        Self {
            service,
            audience,
            service_token,
        }
    }

    fn identify(&self, request: &Request<()>) -> Result<Caller, Status> {
        if let Some(presented) = bearer(request) {
            // A presented service token must be right: a wrong one is never "no token". One
            // message either way, so a guesser does not learn whether a token exists.
            return match &self.service_token {
                Some(expected)
                    if constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) =>
                {
                    Ok(Caller::Internal(InternalBy::ServiceToken))
                }
                _ => Err(Status::unauthenticated("the Bearer credential is refused")),
            };
        }
        let transport = request
            .extensions()
            .get::<Peer>()
            .map(|peer| peer.transport);
        Ok(match transport {
            Some(Transport::Unix { same_user: true }) => Caller::Internal(InternalBy::SocketPeer),
            Some(Transport::Tls {
                client_certificate: true,
            }) => Caller::Internal(InternalBy::ClientCertificate),
            _ => Caller::Outside,
        })
    }
}

/// The value of `authorization: Bearer ...`, if that is what was sent.
fn bearer<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

impl tonic::service::Interceptor for CallerCheck {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.identify(&request)?;
        if self.audience == Audience::Internal && !caller.is_internal() {
            return Err(Status::unauthenticated(format!(
                "{} is only for Doorward's internal callers (auth-web): connect over \
                 token-service's Unix socket as its user, with a client certificate from \
                 grpc_tls.client_ca_file, or with authorization: Bearer <SERVICE_TOKEN>",
                self.service
            )));
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn request(transport: Option<Transport>, authorization: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(transport) = transport {
            request.extensions_mut().insert(Peer {
                remote_addr: None,
                transport,
            });
        }
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request
    }

    fn internal(token: Option<&str>) -> CallerCheck {
        CallerCheck::new(
            "doorward.v1.Users",
            Audience::Internal,
            token.map(Secret::new),
        )
    }

    #[test]
    fn only_the_socket_owner_a_client_certificate_or_the_service_token_is_internal() {
        let mut check = internal(Some("service-token-0123456789"));
        let allowed = [
            request(Some(Transport::Unix { same_user: true }), None),
            request(
                Some(Transport::Tls {
                    client_certificate: true,
                }),
                None,
            ),
            request(
                Some(Transport::Tcp),
                Some("Bearer service-token-0123456789"),
            ),
        ];
        for r in allowed {
            let r = check.call(r).expect("internal");
            assert!(Caller::of(&r).is_internal());
        }
        let refused = [
            request(None, None),
            request(Some(Transport::Tcp), None),
            request(Some(Transport::Unix { same_user: false }), None),
            request(
                Some(Transport::Tls {
                    client_certificate: false,
                }),
                None,
            ),
            request(Some(Transport::Tcp), Some("Bearer wrong-token-0123456789")),
            request(
                Some(Transport::Unix { same_user: true }),
                Some("Bearer wrong"),
            ),
            request(Some(Transport::Tcp), Some("Basic c29tZTpvbmU=")),
        ];
        for r in refused {
            let status = check.call(r).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn without_a_service_token_a_bearer_credential_is_refused_not_ignored() {
        let mut check = internal(None);
        let status = check
            .call(request(Some(Transport::Tcp), Some("Bearer anything")))
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn token_validation_lets_outside_callers_reach_its_own_authentication() {
        let mut check = CallerCheck::new(
            "doorward.v1.TokenValidation",
            Audience::InternalOrApplication,
            None,
        );
        let r = check
            .call(request(Some(Transport::Tcp), Some("Basic c29tZTpvbmU=")))
            .expect("reaches the handler");
        assert_eq!(Caller::of(&r), Caller::Outside);
    }
}
