//! Client authentication (RFC 6749 §2.3): a confidential client proves itself with its
//! secret, compared as SHA-256 in constant time (SEC-TK-02); a public client sends only its
//! `client_id`. Unknown clients take the same path against a dummy hash.

use doorward_proto::v1 as pb;
use doorward_shared::ErrorCode;
use doorward_shared::secret::{constant_time_eq, sha256};

use crate::db::models::ApplicationRow;
use crate::db::{self, DbConnection};
use crate::error::{GrantError, OAuthFailure};

/// Compared against when the client is unknown, so that the failure takes as long.
const DUMMY_HASH: [u8; 32] = [0u8; 32];

/// Whether `secret` matches the application's current secret, or its previous one while
/// the rotation grace period lasts.
pub fn secret_matches(app: &ApplicationRow, secret: &str, now: i64) -> bool {
    let presented = sha256(secret.as_bytes());
    let current = app
        .secret_hash
        .as_deref()
        .is_some_and(|stored| constant_time_eq(&presented, stored));
    let previous = app
        .previous_secret_expires_at
        .is_some_and(|until| now < until)
        && app
            .previous_secret_hash
            .as_deref()
            .is_some_and(|stored| constant_time_eq(&presented, stored));
    current | previous
}

fn invalid_client() -> OAuthFailure {
    OAuthFailure::new(ErrorCode::InvalidClient)
}

/// Authenticates the client of a request, or refuses with `invalid_client`.
pub fn authenticate(
    conn: &mut DbConnection,
    client: Option<&pb::ClientAuthentication>,
    now: i64,
) -> Result<ApplicationRow, GrantError> {
    // No client id contains NUL (PostgreSQL text cannot even hold one).
    let client = client
        .filter(|c| !c.client_id.is_empty() && !c.client_id.contains('\0'))
        .ok_or_else(invalid_client)?;
    let Some(app) = db::applications::find_by_uid(conn, &client.client_id)? else {
        if let Some(secret) = &client.client_secret {
            let _ = constant_time_eq(&sha256(secret.as_bytes()), &DUMMY_HASH);
        }
        return Err(invalid_client().into());
    };
    // A blank secret is no secret: public clients that send `id:` in Basic are accepted.
    let secret = client.client_secret.as_deref().filter(|s| !s.is_empty());
    match (secret, app.confidential) {
        (Some(secret), true) if secret_matches(&app, secret, now) => Ok(app),
        // A public client authenticates with its client_id alone; one that sends a secret
        // sends a wrong one (it has none), as doorkeeper rules.
        (None, false) => Ok(app),
        _ => Err(invalid_client().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doorward_shared::secret::sha256;

    fn app(secret: &str, previous: Option<(&str, i64)>) -> ApplicationRow {
        ApplicationRow {
            id: 1,
            uid: "c".into(),
            name: "n".into(),
            secret_hash: Some(sha256(secret.as_bytes()).to_vec()),
            previous_secret_hash: previous.map(|(s, _)| sha256(s.as_bytes()).to_vec()),
            previous_secret_expires_at: previous.map(|(_, until)| until),
            redirect_uris: String::new(),
            scopes: "api".into(),
            confidential: true,
            trusted: false,
            grant_types: "password".into(),
            owner_id: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn sec_tk_02_secrets_are_compared_as_hashes_in_constant_time() {
        // The comparison goes through `subtle` (via `constant_time_eq`); no `==` on hashes.
        let source = include_str!("clients.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        assert!(code.contains("constant_time_eq(&presented, stored)"));
        assert!(!code.contains("== stored") && !code.contains("secret_hash =="));
        let app = app("new", Some(("old", 100)));
        assert!(secret_matches(&app, "new", 50));
        assert!(
            secret_matches(&app, "old", 50),
            "the previous secret works during its grace"
        );
        assert!(!secret_matches(&app, "old", 100), "and not after");
        assert!(!secret_matches(&app, "wrong", 50));
    }
}
