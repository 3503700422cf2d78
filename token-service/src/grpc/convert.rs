//! Rows to proto messages and back. Generated types stop here.

use std::sync::Arc;

use doorward_proto::v1 as pb;
use doorward_shared::{ErrorCode, GrantType, Secret};

use crate::accounts::FieldError;
use crate::apps;
use crate::authorize::{AuthorizationRequest, AuthorizeError};
use crate::bearer::BearerRefusal;
use crate::clients::ClientAuth;
use crate::db::models::{ApplicationRow, UserRow};
use crate::error::{OAuthFailure, Outcome};
use crate::grants::{
    AuthorizationCodeGrant, ClientCredentialsGrant, DeviceCodeGrant, GrantRequest, PasswordGrant,
    RefreshTokenGrant, TokenRequest,
};
use crate::issuance::TokenResponse;
use crate::lifecycle::Introspection;
use crate::validation::{Inactive, ValidToken};

/// A user row as a proto `User` (no password hash).
pub fn user(row: &UserRow) -> pb::User {
    pb::User {
        id: row.id,
        username: row.username.clone(),
        email: row.email.clone(),
        name: row.name.clone(),
        state: row.state.clone(),
        admin: row.admin,
        created_at: row.created_at,
        current_sign_in_at: row.current_sign_in_at,
        last_sign_in_at: row.last_sign_in_at,
    }
}

/// An application row as a proto `Application` (no secret hash).
pub fn application(row: &ApplicationRow) -> pb::Application {
    pb::Application {
        id: row.id,
        uid: row.uid.clone(),
        name: row.name.clone(),
        redirect_uris: apps::redirect_uris(row),
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        confidential: row.confidential,
        trusted: row.trusted,
        grant_types: row
            .grant_types
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        owner_id: row.owner_id,
        created_at: row.created_at,
    }
}

/// Proto fields to domain fields.
pub fn application_fields(fields: pb::ApplicationFields) -> apps::ApplicationFields {
    apps::ApplicationFields {
        name: fields.name,
        redirect_uris: fields.redirect_uris,
        scopes: fields.scopes,
        confidential: fields.confidential,
        trusted: fields.trusted,
        grant_types: fields.grant_types,
        owner_id: fields.owner_id,
    }
}

/// Field errors as proto.
pub fn validation_errors(errors: Vec<FieldError>) -> pb::ValidationErrors {
    pb::ValidationErrors {
        errors: errors
            .into_iter()
            .map(|e| pb::FieldError {
                field: e.field.to_owned(),
                message: e.message,
            })
            .collect(),
    }
}

/// A client's credentials as the domain takes them.
pub fn client_auth(client: pb::ClientAuthentication) -> ClientAuth {
    ClientAuth {
        client_id: client.client_id,
        secret: client.client_secret.map(Secret::new),
    }
}

/// An OAuth refusal as data in a response.
pub fn oauth_error(failure: &OAuthFailure) -> pb::OAuthError {
    pb::OAuthError {
        error: failure.code.as_str().to_owned(),
        error_description: failure.description.to_string(),
        retry_after_seconds: failure.retry_after_seconds,
    }
}

/// A token response as the proto `TokenSet`.
pub fn token_set(response: TokenResponse) -> pb::TokenSet {
    pb::TokenSet {
        access_token: response.access_token,
        token_type: "Bearer".into(),
        expires_in: response.expires_in,
        refresh_token: response.refresh_token.map(|r| r.expose().to_owned()),
        scope: response.scope,
        created_at: response.created_at,
        id_token: response.id_token,
    }
}

/// Parses a token request once, here at the edge: the grant type and the parameters that
/// grant requires (doorkeeper's "Missing required parameter" when one is absent or empty).
pub fn token_request(mut request: pb::ExchangeRequest) -> Result<TokenRequest, OAuthFailure> {
    if request.grant_type.is_empty() {
        return Err(OAuthFailure::missing("grant_type"));
    }
    let grant_type = GrantType::from_wire(&request.grant_type)
        .ok_or_else(|| OAuthFailure::new(ErrorCode::UnsupportedGrantType))?;
    let client_ip = request
        .context
        .take()
        .map(|c| c.client_ip)
        .unwrap_or_default();
    let client = request.client.take().map(client_auth);
    let grant = grant_request(grant_type, request)?;
    Ok(TokenRequest {
        client,
        client_ip,
        grant,
    })
}

/// The typed parameters of `grant_type`'s grant.
fn grant_request(
    grant_type: GrantType,
    request: pb::ExchangeRequest,
) -> Result<GrantRequest, OAuthFailure> {
    Ok(match grant_type {
        GrantType::AuthorizationCode => GrantRequest::AuthorizationCode(AuthorizationCodeGrant {
            code: Secret::new(required(request.code, "code")?),
            redirect_uri: required(request.redirect_uri, "redirect_uri")?,
            code_verifier: request.code_verifier.map(Secret::new),
        }),
        GrantType::RefreshToken => GrantRequest::RefreshToken(RefreshTokenGrant {
            refresh_token: Secret::new(required(request.refresh_token, "refresh_token")?),
            scope: request.scope,
        }),
        GrantType::ClientCredentials => GrantRequest::ClientCredentials(ClientCredentialsGrant {
            scope: request.scope,
        }),
        GrantType::Password => GrantRequest::Password(PasswordGrant {
            username: required(request.username, "username")?,
            password: Secret::new(required(request.password, "password")?),
            scope: request.scope,
            nonce: request.nonce.filter(|n| !n.is_empty()),
        }),
        GrantType::DeviceCode => GrantRequest::DeviceCode(DeviceCodeGrant {
            device_code: Secret::new(required(request.device_code, "device_code")?),
        }),
    })
}

/// A parameter the grant requires: present and not empty.
fn required(value: Option<String>, name: &str) -> Result<String, OAuthFailure> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthFailure::missing(name))
}

/// A bearer check's answer.
pub fn bearer_result(
    outcome: Outcome<Arc<ValidToken>, BearerRefusal>,
) -> pb::authenticate_bearer_response::Result {
    use pb::BearerErrorKind as Kind;
    use pb::authenticate_bearer_response::Result as Answer;
    let (kind, required_scope) = match outcome {
        Outcome::Done(valid) => {
            return Answer::Grant(pb::BearerGrant {
                token: Some(token_claims(&valid)),
                user: valid.user.as_ref().map(user),
            });
        }
        Outcome::Refused(BearerRefusal::Invalid) => (Kind::Invalid, String::new()),
        Outcome::Refused(BearerRefusal::Expired) => (Kind::Expired, String::new()),
        Outcome::Refused(BearerRefusal::Revoked) => (Kind::Revoked, String::new()),
        Outcome::Refused(BearerRefusal::NoResourceOwner) => (Kind::NoResourceOwner, String::new()),
        Outcome::Refused(BearerRefusal::InsufficientScope(scopes)) => {
            (Kind::InsufficientScope, scopes)
        }
    };
    Answer::Error(pb::BearerError {
        kind: kind as i32,
        required_scope,
    })
}

fn token_claims(valid: &ValidToken) -> pb::TokenClaims {
    pb::TokenClaims {
        jti: valid.jti.clone(),
        subject: valid.subject.clone(),
        client_id: valid.client_id.clone(),
        scopes: valid.scopes.clone(),
        issued_at: valid.issued_at,
        expires_at: valid.expires_at,
        user_id: valid.user_id,
    }
}

/// `TokenValidation.Validate`'s answer.
pub fn validate_response(outcome: Outcome<Arc<ValidToken>, Inactive>) -> pb::ValidateResponse {
    match outcome {
        Outcome::Done(valid) => pb::ValidateResponse {
            active: true,
            subject: valid.subject.clone(),
            client_id: valid.client_id.clone(),
            scopes: valid.scopes.clone(),
            expires_at: valid.expires_at,
            issued_at: valid.issued_at,
            user_id: valid.user_id,
            inactive_reason: String::new(),
        },
        Outcome::Refused(why) => pb::ValidateResponse {
            active: false,
            inactive_reason: why.as_str().to_owned(),
            ..Default::default()
        },
    }
}

/// An introspection answer.
pub fn introspection(answer: Introspection) -> pb::TokenIntrospection {
    pb::TokenIntrospection {
        active: answer.active,
        scope: answer.scope,
        client_id: answer.client_id,
        username: answer.username,
        token_type: answer.token_type,
        exp: answer.exp,
        iat: answer.iat,
        sub: answer.sub,
        aud: answer.aud,
        iss: answer.iss,
        jti: answer.jti,
    }
}

/// An authorization request as the domain reads it.
pub fn authorization_request(request: pb::AuthorizationRequest) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: request.client_id,
        redirect_uri: request.redirect_uri,
        response_type: request.response_type,
        response_mode: request.response_mode,
        scope: request.scope,
        state: request.state,
        code_challenge: request.code_challenge,
        code_challenge_method: request.code_challenge_method,
        nonce: request.nonce,
        prompt: request.prompt,
        max_age: request.max_age,
        has_request: request.has_request,
        has_request_uri: request.has_request_uri,
    }
}

/// A refusal at the authorization endpoint, with whether auth-web may redirect it.
pub fn authorize_error(error: &AuthorizeError) -> pb::AuthorizeError {
    pb::AuthorizeError {
        error: Some(oauth_error(&error.failure)),
        redirectable: error.redirectable,
    }
}
