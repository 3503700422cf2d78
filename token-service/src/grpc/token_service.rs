//! `doorward.v1.TokenService`: the token endpoint and bearer checks for auth-web.

use doorward_proto::v1 as pb;
use pb::token_service_server::TokenService;
use tonic::{Request, Response, Status};

use crate::error::GrantError;
use crate::state::AppState;
use crate::{bearer, grants, lifecycle};

/// The tonic service.
pub struct TokenServiceImpl {
    state: AppState,
}

impl TokenServiceImpl {
    /// Wraps the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl TokenService for TokenServiceImpl {
    async fn exchange(
        &self,
        request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let request = request.into_inner();
        // Logged only when it is one we know: the value is the client's and may be anything.
        let grant_type = doorward_shared::GrantType::from_wire(&request.grant_type)
            .map_or("(other)", doorward_shared::GrantType::registration_name);
        let result = match grants::exchange(&self.state, request).await {
            Ok(tokens) => pb::exchange_response::Result::Tokens(tokens),
            Err(GrantError::OAuth(failure)) => {
                tracing::info!(grant_type = %grant_type, error = %failure.code, "token request refused");
                pb::exchange_response::Result::Error(failure.to_proto())
            }
            Err(GrantError::Service(err)) => return Err(err.into()),
        };
        Ok(Response::new(pb::ExchangeResponse {
            result: Some(result),
        }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.clone();
        let outcome = self
            .state
            .db(move |conn| lifecycle::revoke(&state, conn, &request))
            .await?;
        let result = match outcome {
            Ok(()) => pb::revoke_response::Result::Revoked(pb::Empty {}),
            Err(failure) => pb::revoke_response::Result::Error(failure.to_proto()),
        };
        Ok(Response::new(pb::RevokeResponse {
            result: Some(result),
        }))
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResponse>, Status> {
        let request = request.into_inner();
        let outcome = match lifecycle::introspect_access_token(&self.state, &request).await? {
            Some(outcome) => outcome,
            None => {
                let state = self.state.clone();
                self.state
                    .db(move |conn| lifecycle::introspect(&state, conn, &request))
                    .await?
            }
        };
        let result = match outcome {
            Ok(introspection) => pb::introspect_response::Result::Introspection(introspection),
            Err(failure) => pb::introspect_response::Result::Error(failure.to_proto()),
        };
        Ok(Response::new(pb::IntrospectResponse {
            result: Some(result),
        }))
    }

    async fn authenticate_bearer(
        &self,
        request: Request<pb::AuthenticateBearerRequest>,
    ) -> Result<Response<pb::AuthenticateBearerResponse>, Status> {
        let result = bearer::authenticate(&self.state, request.into_inner()).await?;
        Ok(Response::new(pb::AuthenticateBearerResponse {
            result: Some(result),
        }))
    }

    async fn get_jwks(&self, _request: Request<pb::Empty>) -> Result<Response<pb::Jwks>, Status> {
        Ok(Response::new(pb::Jwks {
            json: self.state.keys.jwks_json(),
        }))
    }

    async fn get_stats(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ServiceStats>, Status> {
        Ok(Response::new(pb::ServiceStats {
            database_statements: crate::db::statements_run(),
        }))
    }
}
