//! Rows as Rust structs. Secrets appear only as hashes.

use diesel::prelude::*;

use doorward_shared::GrantType;

use super::schema::{
    access_grants, access_tokens, applications, device_grants, signing_keys, users,
};

/// A user row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub admin: bool,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub current_sign_in_at: Option<i64>,
    pub last_sign_in_at: Option<i64>,
}

impl UserRow {
    /// Whether the account may receive tokens (SEC-TK-09).
    pub fn is_active(&self) -> bool {
        self.state == "active"
    }
}

/// A new user.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub admin: bool,
    pub state: &'a str,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An application row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = applications)]
pub struct ApplicationRow {
    pub id: i64,
    pub uid: String,
    pub name: String,
    pub secret_hash: Option<Vec<u8>>,
    pub previous_secret_hash: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<i64>,
    pub redirect_uris: String,
    pub scopes: String,
    pub confidential: bool,
    pub trusted: bool,
    pub owner_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Allowed grant types, space separated (SEC-TK-06).
    #[diesel(deserialize_as = String)]
    pub grant_types: RegisteredGrants,
}

impl ApplicationRow {
    /// Whether the application is registered for `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.0.contains(&grant)
    }
}

/// The grant types an application is registered for: the `grant_types` column (their
/// registration names, space-separated), read as this type and never as a free string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisteredGrants(pub Vec<GrantType>);

impl RegisteredGrants {
    /// The registration names, in the stored order.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|g| g.registration_name()).collect()
    }
}

impl TryFrom<String> for RegisteredGrants {
    type Error = String;

    /// A name it does not know fails the query, naming the column and the value.
    fn try_from(stored: String) -> Result<Self, String> {
        stored
            .split_whitespace()
            .map(|name| {
                GrantType::from_registration(name)
                    .ok_or_else(|| format!("applications.grant_types: unknown value {name:?}"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl std::fmt::Display for RegisteredGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

/// A new application.
#[derive(Debug, Insertable)]
#[diesel(table_name = applications)]
pub struct NewApplication<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub secret_hash: Option<Vec<u8>>,
    pub redirect_uris: &'a str,
    pub scopes: &'a str,
    pub confidential: bool,
    pub trusted: bool,
    pub owner_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub grant_types: &'a str,
}

/// An access token row with its refresh token.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRow {
    pub jti: String,
    pub application_id: i64,
    pub user_id: Option<i64>,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub refresh_token_hash: Option<Vec<u8>>,
    pub family_id: Option<String>,
    pub family_created_at: Option<i64>,
    pub refresh_rotated_at: Option<i64>,
    pub successor_jti: Option<String>,
    pub grant_id: Option<i64>,
    /// The refresh token's scope (RFC 6749 §6: unchanged by narrowing refreshes).
    pub refresh_scopes: Option<String>,
}

/// A signing key row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub purpose: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An authorization code (stored as its SHA-256) and everything it is bound to.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_grants)]
pub struct AccessGrantRow {
    pub id: i64,
    pub code_hash: Vec<u8>,
    pub application_id: i64,
    pub user_id: i64,
    pub scopes: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new authorization code.
#[derive(Debug, Insertable)]
#[diesel(table_name = access_grants)]
pub struct NewAccessGrant<'a> {
    pub code_hash: Vec<u8>,
    pub application_id: i64,
    pub user_id: i64,
    pub scopes: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A device authorization (RFC 8628): device code and user code stored as hashes only.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = device_grants)]
pub struct DeviceGrantRow {
    pub id: i64,
    pub device_code_hash: Vec<u8>,
    pub user_code_hash: Vec<u8>,
    pub application_id: i64,
    pub scopes: String,
    pub user_id: Option<i64>,
    #[diesel(deserialize_as = String)]
    pub status: DeviceStatus,
    pub polling_interval: i64,
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Where a device authorization stands: the `status` column, read as this type and never
/// as a free string (a stored value it does not know fails the query, naming it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved; the next poll gets the tokens.
    Approved,
    /// The user denied.
    Denied,
    /// Tokens were issued: spent.
    Used,
}

impl DeviceStatus {
    /// As stored, and as the verification page's status says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Used => "used",
        }
    }
}

impl TryFrom<String> for DeviceStatus {
    type Error = String;

    fn try_from(stored: String) -> Result<Self, String> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Used]
            .into_iter()
            .find(|status| status.as_str() == stored)
            .ok_or_else(|| format!("device_grants.status: unknown value {stored:?}"))
    }
}

/// A new device authorization.
#[derive(Debug, Insertable)]
#[diesel(table_name = device_grants)]
pub struct NewDeviceGrant<'a> {
    pub device_code_hash: Vec<u8>,
    pub user_code_hash: Vec<u8>,
    pub application_id: i64,
    pub scopes: &'a str,
    pub status: &'a str,
    pub polling_interval: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use crate::db;
    use crate::error::ServiceError;
    use crate::testing::Scratch;

    /// Writes `value` into `column` of the scratch application's row, behind Diesel's back.
    async fn corrupt(scratch: &Scratch, sql: &'static str) {
        let id = scratch.app.id;
        scratch
            .run(move |conn| {
                diesel::sql_query(sql)
                    .bind::<diesel::sql_types::BigInt, _>(id)
                    .execute(conn)
            })
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_type_the_code_does_not_know_fails_the_read_naming_the_column() {
        let scratch = Scratch::new().await;
        corrupt(
            &scratch,
            "UPDATE applications SET grant_types = 'password telepathy' WHERE id = ?",
        )
        .await;
        let uid = scratch.app.uid.clone();
        let read = scratch
            .state
            .db(move |conn| Ok::<_, ServiceError>(db::applications::find_by_uid(conn, &uid)?))
            .await;
        let message = read.expect_err("a corrupt row is an error").to_string();
        assert!(
            message.contains("applications.grant_types") && message.contains("telepathy"),
            "{message}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn registered_scopes_that_do_not_parse_name_the_row_and_never_shrink_to_none() {
        let scratch = Scratch::new().await;
        corrupt(
            &scratch,
            "UPDATE applications SET scopes = 'api telepathy' WHERE id = ?",
        )
        .await;
        let uid = scratch.app.uid.clone();
        let app = scratch
            .run(move |conn| db::applications::find_by_uid(conn, &uid))
            .await
            .expect("the row reads: scopes are parsed where they are used");
        let err = crate::grants::rules::registered_scopes(&app).expect_err("no empty default");
        assert_eq!(
            err.to_string(),
            format!("stored row applications {}: scopes does not parse", app.id)
        );
    }
}
