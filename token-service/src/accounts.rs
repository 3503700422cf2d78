//! User accounts: creation with validated fields, and password authentication with
//! throttling (shared by sign-in and the password grant).

use doorward_shared::{ErrorCode, Secret};

use crate::db;
use crate::db::models::{NewUser, UserRow};
use crate::error::{GrantError, OAuthFailure, ServiceError};
use crate::passwords::{HashError, Verified};
use crate::state::AppState;

/// `Retry-After` of the answer when the password hashing queue is full: the queue (64
/// hashes at ~16 ms on each hashing thread by default) drains within about a second.
pub const OVERLOADED_RETRY_AFTER_SECONDS: u32 = 1;

/// A field that failed validation, with the message to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field name.
    pub field: &'static str,
    /// Message.
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// What a new account needs.
#[derive(Debug)]
pub struct NewAccount {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Display name (the username when empty).
    pub name: String,
    /// Password.
    pub password: Secret,
    /// Administrator?
    pub admin: bool,
}

/// Checks the fields of a new account (not uniqueness).
pub fn validate(
    account: &NewAccount,
    config: &doorward_shared::config::PasswordConfig,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let username = account.username.as_str();
    let valid_username = (2..=255).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && username.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    if !valid_username {
        errors.push(field(
            "username",
            "must be 2 to 255 characters of letters, digits, '_', '-' or '.', starting with a letter, digit or '_'",
        ));
    }
    let email = account.email.as_str();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if !valid_email {
        errors.push(field(
            "email",
            "must be an e-mail address such as jane@example.com",
        ));
    }
    if account.name.len() > 255 {
        errors.push(field("name", "must be at most 255 characters"));
    }
    let length = account.password.expose().chars().count();
    if length < config.min_length {
        errors.push(field(
            "password",
            format!("must be at least {} characters", config.min_length),
        ));
    } else if account.password.expose().len() > config.max_length {
        errors.push(field(
            "password",
            format!("must be at most {} bytes", config.max_length),
        ));
    }
    errors
}

/// Why an account was not created.
#[derive(Debug)]
pub enum CreateError {
    /// Bad or taken fields.
    Invalid(Vec<FieldError>),
    /// Infrastructure.
    Service(ServiceError),
}

impl<E: Into<ServiceError>> From<E> for CreateError {
    fn from(e: E) -> Self {
        Self::Service(e.into())
    }
}

/// Creates an account after validating its fields and hashing its password.
pub async fn create(state: &AppState, account: NewAccount) -> Result<UserRow, CreateError> {
    let errors = validate(&account, &state.config.passwords);
    if !errors.is_empty() {
        return Err(CreateError::Invalid(errors));
    }
    let hash = state.hasher.hash(&account.password).await?;
    let state2 = state.clone();
    state
        .db(move |conn| {
            let now = state2.now();
            db::write_transaction(conn, |conn| {
                let (username_taken, email_taken) =
                    db::users::username_or_email_taken(conn, &account.username, &account.email)?;
                let mut errors = Vec::new();
                if username_taken {
                    errors.push(field("username", "has already been taken"));
                }
                if email_taken {
                    errors.push(field("email", "has already been taken"));
                }
                if !errors.is_empty() {
                    return Err(CreateError::Invalid(errors));
                }
                let name = if account.name.trim().is_empty() {
                    account.username.as_str()
                } else {
                    account.name.trim()
                };
                let email = account.email.to_lowercase();
                let inserted = db::users::insert(
                    conn,
                    &NewUser {
                        username: &account.username,
                        email: &email,
                        name,
                        password_hash: &hash,
                        admin: account.admin,
                        state: "active",
                        created_at: now,
                        updated_at: now,
                    },
                );
                match inserted {
                    Ok(user) => {
                        tracing::info!(target: "audit", event = "user_created", user_id = user.id, admin = user.admin, "an account was created");
                        Ok(user)
                    }
                    // A concurrent sign-up took the name between the check and the insert
                    // (PostgreSQL; SQLite's write transaction is exclusive).
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => Err(CreateError::Invalid(vec![field(
                        "username",
                        "or e-mail has already been taken",
                    )])),
                    Err(e) => Err(e.into()),
                }
            })
        })
        .await
}

/// Checks a login and password: throttled per account and IP before any hashing
/// (SEC-RL-01), the same work whether or not the user exists, one generic refusal.
pub async fn authenticate_password(
    state: &AppState,
    login: &str,
    password: &Secret,
    client_ip: &str,
) -> Result<UserRow, GrantError> {
    let bad_credentials =
        || OAuthFailure::with(ErrorCode::InvalidGrant, "Invalid username or password.");
    if login.len() > 255 || login.contains('\0') {
        return Err(bad_credentials().into());
    }
    let lookup = login.to_owned();
    let user = state
        .db(move |conn| Ok::<_, ServiceError>(db::users::find_by_login(conn, &lookup)?))
        .await?;
    // Counted per account, not per spelling of it: "jane" and "jane@example.com" share one
    // budget. Unknown logins are counted under what was typed.
    let account = match &user {
        Some(user) => format!("user:{}", user.id),
        None => format!("login:{}", login.to_lowercase()),
    };
    if let Err(retry_after) = state.throttle.attempt(&account, client_ip, state.now()) {
        crate::metrics::throttled(crate::metrics::Throttle::SignIn);
        tracing::warn!(target: "audit", event = "sign_in_throttled", client_ip, "too many failed sign-in attempts");
        let mut failure = OAuthFailure::with(
            ErrorCode::InvalidGrant,
            "Too many failed sign-in attempts. Try again later.",
        );
        failure.retry_after_seconds = retry_after;
        return Err(failure.into());
    }
    let verified = match state
        .hasher
        .verify(user.as_ref().map(|u| u.password_hash.as_str()), password)
        .await
    {
        Ok(v) => v,
        Err(HashError::TooLong(_)) => return Err(bad_credentials().into()),
        Err(HashError::Overloaded) => {
            state.throttle.unchecked(&account, client_ip);
            // RFC 6749 §5.2 `temporarily_unavailable`; the queue drains within about a
            // second (RFC 9110 §10.2.3 Retry-After), so clients need not hammer it.
            let mut failure = OAuthFailure::new(ErrorCode::TemporarilyUnavailable);
            failure.retry_after_seconds = OVERLOADED_RETRY_AFTER_SECONDS;
            return Err(failure.into());
        }
        Err(e) => return Err(ServiceError::from(e).into()),
    };
    let (user, rehash) = match (user, verified) {
        (Some(user), Verified::Yes(rehash)) if user.is_active() => (user, rehash),
        (user, _) => {
            // `?login`: what was typed, escaped (it may hold anything but NUL).
            tracing::info!(target: "audit", event = "sign_in_failed", login = ?login, known_user = user.is_some(), client_ip, "a sign-in failed");
            return Err(bad_credentials().into());
        }
    };
    state.throttle.succeeded(&account, client_ip);
    tracing::info!(target: "audit", event = "sign_in_succeeded", user_id = user.id, client_ip, "a user signed in");
    if let Some(new_hash) = rehash {
        let state2 = state.clone();
        let id = user.id;
        state
            .db(move |conn| {
                Ok::<_, ServiceError>(db::users::update_password_hash(
                    conn,
                    id,
                    &new_hash,
                    state2.now(),
                )?)
            })
            .await?;
    }
    Ok(user)
}
