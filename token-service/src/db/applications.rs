//! Queries on `applications`.

use diesel::prelude::*;

use super::models::{ApplicationRow, NewApplication};
use super::schema::applications;
use super::{DbConnection, TokenChanges};

/// Inserts an application and returns the stored row.
pub fn insert(conn: &mut DbConnection, app: &NewApplication<'_>) -> QueryResult<ApplicationRow> {
    diesel::insert_into(applications::table)
        .values(app)
        .execute(conn)?;
    find_by_uid(conn, app.uid)?.ok_or(diesel::result::Error::NotFound)
}

/// The application whose client_id is `uid`.
pub fn find_by_uid(conn: &mut DbConnection, uid: &str) -> QueryResult<Option<ApplicationRow>> {
    applications::table
        .filter(applications::uid.eq(uid))
        .select(ApplicationRow::as_select())
        .get_result(conn)
        .optional()
}

/// The application with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<ApplicationRow>> {
    applications::table
        .find(id)
        .select(ApplicationRow::as_select())
        .get_result(conn)
        .optional()
}

/// Every application, or those of one owner, oldest first.
pub fn list(conn: &mut DbConnection, owner_id: Option<i64>) -> QueryResult<Vec<ApplicationRow>> {
    let mut query = applications::table
        .select(ApplicationRow::as_select())
        .order(applications::id.asc())
        .into_boxed();
    if let Some(owner) = owner_id {
        query = query.filter(applications::owner_id.eq(owner));
    }
    query.load(conn)
}

/// Deletes an application; its grants and tokens go with it (foreign keys cascade).
pub fn delete(conn: &mut DbConnection, changes: &TokenChanges, uid: &str) -> QueryResult<usize> {
    changes.changed();
    diesel::delete(applications::table.filter(applications::uid.eq(uid))).execute(conn)
}

/// Replaces the secret hash; the previous one keeps working until `previous_expires_at`.
pub fn rotate_secret(
    conn: &mut DbConnection,
    uid: &str,
    new_hash: Vec<u8>,
    previous_hash: Option<Vec<u8>>,
    previous_expires_at: Option<i64>,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(applications::table.filter(applications::uid.eq(uid)))
        .set((
            applications::secret_hash.eq(Some(new_hash)),
            applications::previous_secret_hash.eq(previous_hash),
            applications::previous_secret_expires_at.eq(previous_expires_at),
            applications::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Updates the editable fields.
#[allow(clippy::too_many_arguments)]
pub fn update_fields(
    conn: &mut DbConnection,
    uid: &str,
    name: &str,
    redirect_uris: &str,
    scopes: &str,
    trusted: bool,
    grant_types: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(applications::table.filter(applications::uid.eq(uid)))
        .set((
            applications::name.eq(name),
            applications::redirect_uris.eq(redirect_uris),
            applications::scopes.eq(scopes),
            applications::trusted.eq(trusted),
            applications::grant_types.eq(grant_types),
            applications::updated_at.eq(now),
        ))
        .execute(conn)
}
