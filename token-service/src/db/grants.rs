//! Queries on `access_grants` (authorization codes): insertion, lookup by hash, the
//! conditional single-use claim, and revocation of what a code produced.

use diesel::prelude::*;

use super::DbConnection;
use super::models::{AccessGrantRow, NewAccessGrant, UserRow};
use super::schema::{access_grants, access_tokens, users};

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
pub fn revoke_tokens_of(conn: &mut DbConnection, grant_id: i64, now: i64) -> QueryResult<usize> {
    super::token_state_changed();
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
    user_id: i64,
    application_id: i64,
    now: i64,
) -> QueryResult<usize> {
    super::token_state_changed();
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

/// The scope strings of a user's live tokens for an application, with the earliest issue
/// time of each: what the user has already consented to.
pub fn live_authorizations(
    conn: &mut DbConnection,
    user_id: i64,
) -> QueryResult<Vec<(i64, String, i64)>> {
    access_tokens::table
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::revoked_at.is_null())
        .select((
            access_tokens::application_id,
            access_tokens::scopes,
            access_tokens::created_at,
        ))
        .order(access_tokens::created_at.asc())
        .load(conn)
}
