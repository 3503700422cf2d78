//! Queries on `access_grants` (authorization codes): insertion, lookup by hash, the
//! conditional single-use claim, and revocation of what a code produced.

use diesel::prelude::*;

use super::models::{AccessGrantRow, NewAccessGrant, UserRow};
use super::schema::{access_grants, access_tokens, users};
use super::{DbConnection, TokenChanges};

/// Stores a new code.
pub fn insert(conn: &mut DbConnection, grant: &NewAccessGrant<'_>) -> QueryResult<()> {
    diesel::insert_into(access_grants::table)
        .values(grant)
        .execute(conn)?;
    Ok(())
}

/// The code whose SHA-256 is `hash`.
pub fn find_by_code_hash(
    conn: &mut DbConnection,
    hash: &[u8],
) -> QueryResult<Option<AccessGrantRow>> {
    access_grants::table
        .filter(access_grants::code_hash.eq(hash))
        .select(AccessGrantRow::as_select())
        .get_result(conn)
        .optional()
}

/// The code whose SHA-256 is `hash`, with its user, in one query.
pub fn find_by_code_hash_with_user(
    conn: &mut DbConnection,
    hash: &[u8],
) -> QueryResult<Option<(AccessGrantRow, Option<UserRow>)>> {
    access_grants::table
        .left_join(users::table)
        .filter(access_grants::code_hash.eq(hash))
        .select((AccessGrantRow::as_select(), Option::<UserRow>::as_select()))
        .get_result(conn)
        .optional()
}

/// Marks a code used, only if nobody did first: the one conditional update that makes a
/// code single-use under concurrency (SEC-TK-04). Returns whether this caller won.
pub fn consume(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<bool> {
    let updated = super::statements::ConsumeCode { id, now }.execute(conn)?;
    Ok(updated == 1)
}

/// RFC 6749 §4.1.2: revokes every token minted from code `grant_id` (and their refresh
/// families, which share the grant id), in one statement.
pub fn revoke_tokens_of(
    conn: &mut DbConnection,
    changes: &TokenChanges,
    grant_id: i64,
    now: i64,
) -> QueryResult<usize> {
    changes.changed();
    diesel::update(
        access_tokens::table
            .filter(access_tokens::grant_id.eq(grant_id))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// Revokes a user's authorization of an application: its unused codes and every token.
pub fn revoke_authorization(
    conn: &mut DbConnection,
    changes: &TokenChanges,
    user_id: i64,
    application_id: i64,
    now: i64,
) -> QueryResult<usize> {
    changes.changed();
    diesel::update(
        access_grants::table
            .filter(access_grants::user_id.eq(user_id))
            .filter(access_grants::application_id.eq(application_id))
            .filter(access_grants::revoked_at.is_null()),
    )
    .set(access_grants::revoked_at.eq(now))
    .execute(conn)?;
    diesel::update(
        access_tokens::table
            .filter(access_tokens::user_id.eq(user_id))
            .filter(access_tokens::application_id.eq(application_id))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// The smallest scope string of the user's unrevoked tokens for `application_id` that sorts
/// after `after` (from the first when `None`): called repeatedly, it walks the distinct scope
/// strings, one probe of `access_tokens_live_scopes_idx` each, so the cost does not grow with
/// the number of tokens.
pub fn next_live_scopes(
    conn: &mut DbConnection,
    user_id: i64,
    application_id: i64,
    after: Option<&str>,
) -> QueryResult<Option<String>> {
    // `user_id = ?` and `revoked_at IS NULL` match the partial index's condition.
    let live = access_tokens::table
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::application_id.eq(application_id))
        .filter(access_tokens::revoked_at.is_null())
        .select(access_tokens::scopes)
        .order(access_tokens::scopes.asc());
    match after {
        Some(after) => live
            .filter(access_tokens::scopes.gt(after))
            .first(conn)
            .optional(),
        None => live.first(conn).optional(),
    }
}

/// A user's live authorizations: each (application, scope string) of their live tokens once,
/// with its earliest issue time. The database groups them, so a user with thousands of
/// tokens (every refresh leaves a row until it expires) costs a few rows, not thousands.
pub fn live_authorizations(
    conn: &mut DbConnection,
    user_id: i64,
) -> QueryResult<Vec<(i64, String, i64)>> {
    let grouped: Vec<(i64, String, Option<i64>)> = access_tokens::table
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::revoked_at.is_null())
        .group_by((access_tokens::application_id, access_tokens::scopes))
        .select((
            access_tokens::application_id,
            access_tokens::scopes,
            diesel::dsl::min(access_tokens::created_at),
        ))
        .load(conn)?;
    Ok(grouped
        .into_iter()
        .map(|(app, scopes, first)| (app, scopes, first.unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::models::{AccessTokenRow, NewApplication};
    use crate::testing::Scratch;
    use doorward_shared::secret::{random_id, time_ordered_id};

    fn token(app: i64, user: i64, scopes: &str, created_at: i64) -> AccessTokenRow {
        AccessTokenRow {
            jti: time_ordered_id(),
            application_id: app,
            user_id: Some(user),
            scopes: scopes.to_owned(),
            created_at,
            expires_at: created_at + 7200,
            revoked_at: None,
            refresh_token_hash: None,
            family_id: None,
            family_created_at: None,
            refresh_rotated_at: None,
            successor_jti: None,
            grant_id: None,
            refresh_scopes: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_authorizations_are_one_row_per_application_and_scopes_with_the_first_time() {
        let scratch = Scratch::new().await;
        let (app, user) = (scratch.app.id, scratch.user.id);
        let mut listed = scratch
            .run(move |conn| {
                let other = crate::db::applications::insert(
                    conn,
                    &NewApplication {
                        uid: &random_id(),
                        name: "Other",
                        secret_hash: None,
                        redirect_uris: "https://other.example/cb",
                        scopes: "api read_user",
                        confidential: true,
                        trusted: false,
                        owner_id: None,
                        created_at: 0,
                        updated_at: 0,
                        grant_types: "authorization_code refresh_token",
                    },
                )?
                .id;
                // 1,000 refreshes' worth of rows for one authorization, a second scope
                // string, another application, a revoked token and another user's.
                for n in 0..1000 {
                    crate::db::tokens::insert(conn, &token(app, user, "api", 5000 - n))?;
                }
                crate::db::tokens::insert(conn, &token(app, user, "read_user", 7000))?;
                crate::db::tokens::insert(conn, &token(other, user, "read_user", 8000))?;
                let revoked = AccessTokenRow {
                    revoked_at: Some(9000),
                    ..token(other, user, "api", 10)
                };
                crate::db::tokens::insert(conn, &revoked)?;
                let stranger = crate::db::users::insert(
                    conn,
                    &crate::db::models::NewUser {
                        username: "bob",
                        email: "bob@example.com",
                        name: "Bob",
                        password_hash: "unused",
                        admin: false,
                        state: "active",
                        created_at: 0,
                        updated_at: 0,
                    },
                )?;
                crate::db::tokens::insert(conn, &token(app, stranger.id, "sudo", 1))?;
                Ok((other, live_authorizations(conn, user)?))
            })
            .await;
        listed.1.sort();
        let other = listed.0;
        assert_eq!(
            listed.1,
            vec![
                (app, "api".to_owned(), 4001),
                (app, "read_user".to_owned(), 7000),
                (other, "read_user".to_owned(), 8000),
            ]
        );
    }
}
