//! `TokenValidation`: resource servers validate access tokens over gRPC.
//!
//! The caller authenticates as a confidential application: metadata
//! `authorization: Basic base64(client_id:client_secret)` (each half form-urlencoded as in
//! HTTP Basic, RFC 6749 §2.3.1; Doorward's ids and secrets need no encoding). Internal
//! callers (`grpc::caller`: the socket owner, a client certificate, the service token) need
//! no application. A missing or wrong credential is `UNAUTHENTICATED`, never an answer; failures count in the
//! client-authentication throttle (SEC-RL-03). A successful caller is remembered for
//! `tokens.validation_cache_seconds`, like the tokens it validates, so the hot path reads no
//! database.

use std::net::SocketAddr;

use base64::Engine;
use doorward_proto::v1 as pb;
use doorward_shared::secret::sha256;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::clients;
use crate::error::{GrantError, ServiceError};
use crate::grpc::caller::Caller;
use crate::grpc::convert;
use crate::listener::Peer;
use crate::state::AppState;
use crate::validation;

/// The `TokenValidation` service.
#[derive(Clone)]
pub struct TokenValidationImpl {
    state: AppState,
}

impl TokenValidationImpl {
    /// The service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn unauthenticated() -> Status {
    Status::unauthenticated(
        "TokenValidation needs an application's credentials: authorization: Basic base64(client_id:client_secret)",
    )
}

/// `client_id` and `client_secret` of a Basic credential.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |half: &str| -> Option<String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={half}")).ok()?;
        pairs.into_iter().next().map(|(_, v)| v)
    };
    Some((decode(id)?, decode(secret)?))
}

/// Authenticates the caller of `Validate`: internal, or a confidential application.
async fn authenticate_caller(
    state: &AppState,
    caller: Caller,
    metadata: &MetadataMap,
    remote: Option<SocketAddr>,
) -> Result<(), Status> {
    if caller.is_internal() {
        return Ok(());
    }
    let Some(value) = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 1024)
    else {
        return Err(unauthenticated());
    };
    let now = state.now();
    let key = sha256(value.as_bytes());
    let fresh_for = state.config.tokens.validation_cache_seconds;
    if state.caller_cache.fresh(&key, now, fresh_for) {
        return Ok(());
    }
    let Some((client_id, client_secret)) = basic_credentials(value) else {
        return Err(unauthenticated());
    };
    let ip = remote.map(|a| a.ip().to_string()).unwrap_or_default();
    let account = clients::throttle_account(&client_id);
    if state.client_throttle.check(&account, &ip, now).is_err() {
        crate::metrics::throttled(crate::metrics::Throttle::ClientAuth);
        tracing::warn!(target: "audit", event = "client_authentication_throttled", client_ip = %ip, "too many failed resource-server authentications");
        return Err(Status::unauthenticated(
            "Too many failed authentications. Try again later.",
        ));
    }
    let client = clients::ClientAuth {
        client_id: client_id.clone(),
        secret: Some(doorward_shared::Secret::new(client_secret)),
    };
    let authenticated = match clients::authenticate_async(state, Some(&client), now).await {
        // Only confidential applications have credentials to present.
        Ok(app) => app.confidential,
        Err(GrantError::OAuth(_)) => false,
        Err(GrantError::Service(e)) => return Err(Status::from(e)),
    };
    if !authenticated {
        state.client_throttle.record_failure(&account, &ip, now);
        tracing::warn!(target: "audit", event = "resource_server_authentication_failed", client_ip = %ip, "a TokenValidation caller presented wrong credentials");
        return Err(unauthenticated());
    }
    state.caller_cache.remember(key, now);
    Ok(())
}

#[tonic::async_trait]
impl pb::token_validation_server::TokenValidation for TokenValidationImpl {
    async fn validate(
        &self,
        request: Request<pb::ValidateRequest>,
    ) -> Result<Response<pb::ValidateResponse>, Status> {
        let remote = request
            .extensions()
            .get::<Peer>()
            .and_then(|peer| peer.remote_addr);
        authenticate_caller(
            &self.state,
            Caller::of(&request),
            request.metadata(),
            remote,
        )
        .await?;
        let r = request.into_inner();
        let outcome = validation::validate(&self.state, &r.token, &r.required_scopes)
            .await
            .map_err(|e: ServiceError| Status::from(e))?;
        Ok(Response::new(convert::validate_response(outcome)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_and_form_decoded() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret")
        );
        assert_eq!(
            basic_credentials(&header),
            Some(("my id".into(), "s:cret".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        let no_colon = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("id")
        );
        assert_eq!(basic_credentials(&no_colon), None);
    }
}
