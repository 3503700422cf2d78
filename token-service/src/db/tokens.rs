//! Queries on `access_tokens`: insertion, lookup by `jti` or refresh-token hash, the
//! conditional rotation claim, and set-based revocation.

use diesel::prelude::*;

use super::models::{AccessTokenRow, UserRow};
use super::schema::{access_tokens, applications, users};
use super::{DbConnection, TokenChanges};

/// Stores a freshly minted token.
pub fn insert(conn: &mut DbConnection, row: &AccessTokenRow) -> QueryResult<()> {
    diesel::insert_into(access_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The row whose refresh token hashes to `hash`.
pub fn find_by_refresh_hash(
    conn: &mut DbConnection,
    hash: &[u8],
) -> QueryResult<Option<AccessTokenRow>> {
    access_tokens::table
        .filter(access_tokens::refresh_token_hash.eq(hash))
        .select(AccessTokenRow::as_select())
        .get_result(conn)
        .optional()
}

/// The row whose refresh token hashes to `hash`, with its user, in one query.
pub fn find_by_refresh_hash_with_user(
    conn: &mut DbConnection,
    hash: &[u8],
) -> QueryResult<Option<(AccessTokenRow, Option<UserRow>)>> {
    access_tokens::table
        .left_join(users::table)
        .filter(access_tokens::refresh_token_hash.eq(hash))
        .select((AccessTokenRow::as_select(), Option::<UserRow>::as_select()))
        .get_result(conn)
        .optional()
}

/// The row of access token `jti`.
pub fn find(conn: &mut DbConnection, jti: &str) -> QueryResult<Option<AccessTokenRow>> {
    access_tokens::table
        .find(jti)
        .select(AccessTokenRow::as_select())
        .get_result(conn)
        .optional()
}

/// A token row with its client's `uid` and its user, in one query.
pub fn find_with_owner(
    conn: &mut DbConnection,
    jti: &str,
) -> QueryResult<Option<(AccessTokenRow, String, Option<UserRow>)>> {
    access_tokens::table
        .find(jti)
        .inner_join(applications::table)
        .left_join(users::table)
        .select((
            AccessTokenRow::as_select(),
            applications::uid,
            Option::<UserRow>::as_select(),
        ))
        .get_result(conn)
        .optional()
}

/// Marks a refresh token as rotated into `successor_jti`, only if nobody did so first:
/// the one conditional update that makes rotation atomic (SEC-RT-04). Returns whether
/// this caller won.
pub fn claim_refresh(
    conn: &mut DbConnection,
    jti: &str,
    successor_jti: &str,
    now: i64,
) -> QueryResult<bool> {
    let updated = super::statements::ClaimRefresh {
        jti,
        successor_jti,
        now,
    }
    .execute(conn)?;
    Ok(updated == 1)
}

/// Serialises work on one refresh family until the transaction ends. On PostgreSQL (READ
/// COMMITTED) a family revocation could otherwise miss a successor that a concurrent
/// rotation inserted but had not committed yet; SQLite's `BEGIN IMMEDIATE` already
/// serialises every writer.
pub fn lock_family(conn: &mut DbConnection, family_id: &str) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(pg) => {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind::<diesel::sql_types::Text, _>(family_id)
                .execute(pg)?;
            Ok(())
        }
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Revokes every live token of a refresh family in one set-based statement.
pub fn revoke_family(
    conn: &mut DbConnection,
    changes: &TokenChanges,
    family_id: &str,
    now: i64,
) -> QueryResult<usize> {
    changes.changed();
    diesel::update(
        access_tokens::table
            .filter(access_tokens::family_id.eq(family_id))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// Revokes one token row (access and refresh together).
pub fn revoke(
    conn: &mut DbConnection,
    changes: &TokenChanges,
    jti: &str,
    now: i64,
) -> QueryResult<usize> {
    changes.changed();
    diesel::update(
        access_tokens::table
            .filter(access_tokens::jti.eq(jti))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(now))
    .execute(conn)
}
