//! Queries on `signing_keys`.

use diesel::prelude::*;

use diesel::connection::SimpleConnection;

use super::DbConnection;
use super::models::SigningKeyRow;
use super::schema::signing_keys;

/// Every key: live ones first, then newest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .select(SigningKeyRow::as_select())
        // Live keys first (a rotation within the same second must still list the new key
        // first), then newest first.
        .order((
            signing_keys::retired_at.is_null().desc(),
            signing_keys::created_at.desc(),
            signing_keys::kid.asc(),
        ))
        .load(conn)
}

/// Stores a new key.
pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Retires every live key of `purpose`: they stop signing at `at` (see `keys::rotate`).
pub fn retire_live(conn: &mut DbConnection, purpose: &str, at: i64) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::purpose.eq(purpose))
            .filter(signing_keys::retired_at.is_null()),
    )
    .set(signing_keys::retired_at.eq(at))
    .execute(conn)
}

/// Marks a key compromised (see `keys::revoke`).
pub fn revoke(conn: &mut DbConnection, kid: &str, now: i64) -> QueryResult<usize> {
    diesel::update(signing_keys::table.find(kid))
        .set(signing_keys::revoked_at.eq(now))
        .execute(conn)
}

/// Serialises the writers of keys between replicas: first-start key generation, rotation
/// (`keys rotate` and the schedule, which decide again under it) and revocation. SQLite's
/// `BEGIN IMMEDIATE` already does; PostgreSQL needs a lock that conflicts with itself.
pub fn lock_for_first_key(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(pg) => {
            pg.batch_execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        }
        DbConnection::Sqlite(_) => Ok(()),
    }
}
