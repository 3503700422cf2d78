//! Server-wide secrets kept in the database so that every replica shares them.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::server_secrets;

/// The secret called `name`, created with `generate` if no replica has made it yet.
pub fn get_or_create(
    conn: &mut DbConnection,
    name: &str,
    generate: impl FnOnce() -> Vec<u8>,
    now: i64,
) -> QueryResult<Vec<u8>> {
    if let Some(value) = find(conn, name)? {
        return Ok(value);
    }
    let inserted = diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(generate()),
            server_secrets::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        // Another replica may have won the race; either way the stored value is the one.
        Ok(_)
        | Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => find(conn, name)?.ok_or(diesel::result::Error::NotFound),
        Err(e) => Err(e),
    }
}

fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Vec<u8>>> {
    server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .get_result(conn)
        .optional()
}
