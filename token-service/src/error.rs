//! The token service's errors, mapped in one place: OAuth outcomes become data in the
//! response; everything else becomes a gRPC status whose message carries no values.

use std::borrow::Cow;

use doorward_shared::ErrorCode;

use crate::passwords::HashError;

/// An OAuth protocol refusal (RFC 6749 §5.2), returned to the client as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthFailure {
    /// The error code.
    pub code: ErrorCode,
    /// The description.
    pub description: Cow<'static, str>,
    /// Set when a rate limit refused the request (`invalid_grant`, answered 429) or the
    /// service is overloaded (`temporarily_unavailable`, answered 503).
    pub retry_after_seconds: u32,
}

impl OAuthFailure {
    /// A refusal with the code's default description.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            description: Cow::Borrowed(code.default_description()),
            retry_after_seconds: 0,
        }
    }

    /// A refusal with a specific description.
    pub fn with(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after_seconds: 0,
        }
    }

    /// `invalid_request` for a missing parameter, worded as doorkeeper does.
    pub fn missing(parameter: &str) -> Self {
        Self::with(
            ErrorCode::InvalidRequest,
            format!("Missing required parameter: {parameter}."),
        )
    }
}

/// A failure of the service itself (not the client's fault).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A query failed.
    #[error("database query failed: {0}")]
    Db(#[from] diesel::result::Error),
    /// No connection could be had.
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Claims could not be encoded for signing.
    #[error("token signing failed: {0}")]
    Jwt(#[from] serde_json::Error),
    /// The blocking task died.
    #[error("worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Password hashing failed or is saturated.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A batch of writes was not committed (see `db::writer`).
    #[error("database write failed: {0}")]
    Commit(String),
    /// Signing keys could not be read or made.
    #[error("signing keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    /// A stored value does not parse: the row is named, and nothing is guessed for it.
    #[error("stored row {table} {id}: {column} does not parse")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// The column.
        column: &'static str,
    },
}

impl ServiceError {
    /// A stored value of `table`'s row `id` that does not parse.
    pub fn corrupt(table: &'static str, id: impl ToString, column: &'static str) -> Self {
        Self::Corrupt {
            table,
            id: id.to_string(),
            column,
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(err: ServiceError) -> Self {
        tracing::error!(error = %err, "request failed");
        match err {
            ServiceError::Pool(_) | ServiceError::Hash(HashError::Overloaded) => {
                tonic::Status::unavailable("the token service is temporarily unavailable")
            }
            // SQLite still busy after its timeout: overload, worth a retry, not a bug.
            ServiceError::Db(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("database is locked") =>
            {
                tonic::Status::unavailable("the database is busy")
            }
            _ => tonic::Status::internal("internal error"),
        }
    }
}

/// The result of a grant: tokens, a refusal, or a service failure.
#[derive(Debug)]
pub enum GrantError {
    /// Refused by a protocol rule.
    OAuth(OAuthFailure),
    /// Broken infrastructure.
    Service(ServiceError),
}

impl From<OAuthFailure> for GrantError {
    fn from(f: OAuthFailure) -> Self {
        Self::OAuth(f)
    }
}

impl<E: Into<ServiceError>> From<E> for GrantError {
    fn from(e: E) -> Self {
        Self::Service(e.into())
    }
}

/// What a write transaction decided when both answers must commit: a refusal that leaves
/// its traces (a burned code, a recorded poll, a revoked family) commits as surely as a
/// grant does, so it travels in the `Ok` of the transaction and never rolls it back.
#[derive(Debug)]
pub enum Outcome<T, R = OAuthFailure> {
    /// Done: the value the caller asked for.
    Done(T),
    /// Refused by a protocol rule, with what was written kept.
    Refused(R),
}

impl<T, R> Outcome<T, R> {
    /// The outcome as a `Result`, once the transaction has committed.
    pub fn into_result(self) -> Result<T, R> {
        match self {
            Self::Done(value) => Ok(value),
            Self::Refused(refusal) => Err(refusal),
        }
    }

    /// Applies `f` to a `Done` value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U, R> {
        match self {
            Self::Done(value) => Outcome::Done(f(value)),
            Self::Refused(refusal) => Outcome::Refused(refusal),
        }
    }
}
