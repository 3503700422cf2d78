//! `doorward.v1.TokenService`: the token endpoint and bearer checks for auth-web.

use doorward_proto::v1 as pb;
use pb::token_service_server::TokenService;
use tonic::{Request, Response, Status};

use crate::error::{GrantError, Outcome};
use crate::grpc::convert;
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
        let outcome = match convert::token_request(request) {
            Ok(request) => grants::exchange(&self.state, request).await,
            Err(failure) => Err(failure.into()),
        };
        let result = match outcome {
            Ok(tokens) => pb::exchange_response::Result::Tokens(convert::token_set(tokens)),
            Err(GrantError::OAuth(failure)) => {
                tracing::info!(grant_type = %grant_type, error = %failure.code, "token request refused");
                pb::exchange_response::Result::Error(convert::oauth_error(&failure))
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
        let r = request.into_inner();
        let request = lifecycle::RevokeRequest {
            client: r.client.map(convert::client_auth),
            token: r.token,
            token_type_hint: r.token_type_hint,
        };
        let state = self.state.clone();
        let outcome = self
            .state
            .db(move |conn| lifecycle::revoke(&state, conn, &request))
            .await?;
        let result = match outcome {
            Outcome::Done(()) => pb::revoke_response::Result::Revoked(pb::Empty {}),
            Outcome::Refused(failure) => {
                pb::revoke_response::Result::Error(convert::oauth_error(&failure))
            }
        };
        Ok(Response::new(pb::RevokeResponse {
            result: Some(result),
        }))
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResponse>, Status> {
        let r = request.into_inner();
        let request = lifecycle::IntrospectRequest {
            client: r.client.map(convert::client_auth),
            caller_bearer_token: r.caller_bearer_token,
            token: r.token,
            token_type_hint: r.token_type_hint,
        };
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
            Outcome::Done(introspection) => pb::introspect_response::Result::Introspection(
                convert::introspection(introspection),
            ),
            Outcome::Refused(failure) => {
                pb::introspect_response::Result::Error(convert::oauth_error(&failure))
            }
        };
        Ok(Response::new(pb::IntrospectResponse {
            result: Some(result),
        }))
    }

    async fn authenticate_bearer(
        &self,
        request: Request<pb::AuthenticateBearerRequest>,
    ) -> Result<Response<pb::AuthenticateBearerResponse>, Status> {
        let r = request.into_inner();
        let outcome = bearer::authenticate(
            &self.state,
            &r.access_token,
            r.require_user,
            &r.any_of_scopes,
        )
        .await?;
        Ok(Response::new(pb::AuthenticateBearerResponse {
            result: Some(convert::bearer_result(outcome)),
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
            database_statements: self.state.statements.get(),
        }))
    }
}
